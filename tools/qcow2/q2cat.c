// SPDX-License-Identifier: GPL-2.0
/*
 * q2cat: write the guest-visible contents of a qcow2 image (and its backing
 * chain) to stdout, through the same core the kernel uses.  The userspace
 * oracle vehicle: its output must equal `qemu-img convert -O raw`.
 *
 *   q2cat [--snapshot ID|NAME] [--cache BYTES] [--map] [--stats]
 *         IMAGE [BACKING...]
 */
#include <getopt.h>
#include <unistd.h>

#include "q2u.h"

#define CHUNK	(4U << 20)

static const char *type_name(enum q2_type t)
{
	static const char *const names[] = { "unalloc", "zero", "data",
					     "compressed" };

	return names[t];
}

static int write_all(const u8 *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(1, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: q2cat [--snapshot ID|NAME] [--cache BYTES] [--map] [--stats] IMAGE [BACKING...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "snapshot", required_argument, NULL, 's' },
		{ "cache", required_argument, NULL, 'c' },
		{ "map", no_argument, NULL, 'm' },
		{ "stats", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *snapshot = NULL;
	bool map = false, stats = false;
	u64 cache = 0, size, off;
	struct q2u_chain c;
	char err[512];
	u8 *buf;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "s:c:mSh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			snapshot = optarg;
			break;
		case 'c':
			cache = strtoull(optarg, NULL, 0);
			break;
		case 'm':
			map = true;
			break;
		case 'S':
			stats = true;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	ret = q2u_chain_open(&c, argv[optind],
			     (const char *const *)argv + optind + 1,
			     argc - optind - 1, snapshot, cache, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "q2cat: %s\n", err);
		return 1;
	}
	/* The block layer sees whole sectors: qemu-img rounds down too. */
	size = q2_layer_size(&c.layers[0]) & ~511ULL;

	if (map) {
		struct q2_chain_extent cx;

		for (off = 0; off < size; off += cx.ext.len) {
			ret = q2_chain_map(&c.chain, off, size - off, &cx);
			if (ret)
				break;
			printf("0x%llx 0x%llx %s layer %u", off, cx.ext.len,
			       type_name(cx.ext.type), cx.layer);
			if (cx.ext.type == Q2_DATA)
				printf(" host 0x%llx", cx.ext.host_off);
			if (cx.ext.type == Q2_COMPRESSED)
				printf(" comp 0x%llx+%u", cx.ext.comp_off,
				       cx.ext.comp_len);
			printf("\n");
		}
	} else {
		buf = malloc(CHUNK);
		if (!buf)
			return 1;
		for (off = 0, ret = 0; off < size && !ret; off += CHUNK) {
			size_t n = size - off < CHUNK ? size - off : CHUNK;

			ret = q2u_chain_read(&c, buf, off, n);
			if (!ret && write_all(buf, n)) {
				perror("q2cat: write");
				ret = -EIO;
			}
		}
		free(buf);
	}
	if (ret)
		fprintf(stderr, "q2cat: %s: read failed: %s\n", argv[optind],
			strerror(-ret));
	if (stats) {
		unsigned int i;

		for (i = 0; i < c.nr; i++) {
			struct q2_cache_stats st;

			if (!c.layers[i].img)
				continue;
			q2_cache_stats(c.layers[i].img, &st);
			fprintf(stderr, "layer %u: L2 cache %llu hits %llu misses, %u/%u tables\n",
				i, st.hits, st.misses, st.used, st.tables);
		}
	}
	q2u_chain_close(&c);
	return ret ? 1 : 0;
}
