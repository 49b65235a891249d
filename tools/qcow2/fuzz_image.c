// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the input is a whole image file held in memory.  Open
 * it header-only, fully, at a snapshot chosen by the input, and under a
 * raw backing layer; map the whole disk in chunks (bounded work) and read
 * every compressed cluster met (bounded too).  Besides the sanitizers, the
 * core's contract is asserted: extents are non-empty, inside the request
 * and, for data, inside the file.
 */
#include "q2u.h"

#define MAX_MAPS	4096
#define MAX_COMP_READS	64
#define MAX_CLUSTER	(2U << 20)

static u8 *cbuf;

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_image: contract violated: %s\n", what);
		abort();
	}
}

static void walk_chain(const struct q2_chain *chain, u64 file_size)
{
	u64 size = q2_layer_size(&chain->layers[0]), off = 0;
	unsigned int maps = 0, comp = 0;
	struct q2_chain_extent cx;
	u64 req;
	int ret;

	while (off < size && maps++ < MAX_MAPS) {
		req = (maps & 1) ? 1ULL << 20 : 4096 + (maps & 7) * 512;
		ret = q2_chain_map(chain, off, req, &cx);
		if (ret) {
			check(ret == -EIO || ret == -ENOMEM, "map error code");
			/* Skip past the bad spot, to keep exploring. */
			off = (off | 4095) + 1;
			continue;
		}
		check(cx.ext.len > 0 && cx.ext.len <= req, "extent length");
		check(cx.ext.type != Q2_UNALLOC, "chain returned unallocated");
		check(cx.layer <= chain->nr, "layer index");
		if (cx.ext.type == Q2_DATA && cx.layer < chain->nr &&
		    chain->layers[cx.layer].img)
			check(cx.ext.host_off + cx.ext.len <= file_size,
			      "data extent past EOF");
		if (cx.ext.type == Q2_COMPRESSED) {
			struct q2_image *img = chain->layers[cx.layer].img;

			check(cx.ext.comp_off + cx.ext.comp_len <= file_size,
			      "compressed extent past EOF");
			check(cx.ext.cluster_off + cx.ext.len <= q2_cluster_size(img),
			      "compressed extent leaves its cluster");
			if (comp++ < MAX_COMP_READS) {
				ret = q2_read_compressed(img, &cx.ext, 0, cbuf,
							 cx.ext.len);
				check(!ret || ret == -EIO || ret == -ENOMEM,
				      "compressed read error code");
				if (!ret && cx.ext.len > 1)
					q2_read_compressed(img, &cx.ext, 1, cbuf,
							   cx.ext.len - 1);
			}
		}
		off += cx.ext.len;
	}
}

static void walk(struct q2_image *img, u64 file_size)
{
	struct q2_layer l = { .img = img };
	struct q2_chain chain = { &l, 1 };

	walk_chain(&chain, file_size);
}

static struct q2_image *open_img(struct q2u_mem *m, unsigned int flags,
				 const char *snap, u64 cache)
{
	struct q2_open_args a = { 0 };
	struct q2_image *img;
	char err[Q2_ERR_MAX + 8];

	memset(err, 'X', sizeof(err));
	a.ops = &q2u_mem_ops;
	a.file = m;
	a.flags = flags;
	a.snapshot = snap;
	a.l2_cache_bytes = cache;
	a.err = err;
	a.err_len = sizeof(err);
	if (q2_open(&a, &img)) {
		check(memchr(err, 0, Q2_ERR_MAX) != NULL, "error message length");
		check(err[0] != 0, "empty error message");
		return NULL;
	}
	return img;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct q2u_mem m = { .data = data, .len = size, .size = size };
	struct q2_image *img, *hdr;
	char sel[9] = { 0 };
	struct q2_info in;
	unsigned int i;

	q2_shim_quiet = true;
	if (!cbuf)
		cbuf = malloc(MAX_CLUSTER);

	hdr = open_img(&m, Q2_OPEN_HEADER_ONLY, NULL, 0);
	if (!hdr)
		return 0;
	q2_get_info(hdr, &in);
	for (i = 0; i < 64; i++)
		q2_feature_name(hdr, i % 3, i);

	img = open_img(&m, 0, NULL, size & 1 ? 0 : 1);
	if (img) {
		/* The image over itself over a raw layer of its own bytes. */
		struct q2_layer l[3] = {
			{ .img = img, .path = "top", .id = { 1, 1 } },
			{ .img = img, .id = { 1, 2 } },
			{ .raw_size = size, .path = "raw", .id = { 1, 3 } },
		};
		struct q2_chain chain = { l, 3 };
		char err[Q2_ERR_MAX + 8];

		walk(img, size);
		l[1].path = in.backing_file ? in.backing_file : "mid";
		if (data[0] & 1)
			l[2].id[1] = 1;
		chain.nr = 1 + (data[0] >> 1) % 3;
		memset(err, 'X', sizeof(err));
		if (q2_chain_check(&chain, err, sizeof(err)))
			check(memchr(err, 0, Q2_ERR_MAX) && err[0], "chain error message");
		walk_chain(&chain, size);
		q2_close(img);
	}

	/* A snapshot chosen by the input: by id, then by name. */
	if (in.nb_snapshots) {
		const struct q2_snapshot *sn = &in.snapshots[data[size - 1] % in.nb_snapshots];

		img = open_img(&m, 0, sn->id, 0);
		if (img) {
			walk(img, size);
			q2_close(img);
		}
		img = open_img(&m, 0, sn->name, 0);
		if (img)
			q2_close(img);
	}
	/* And a selector made of the input's last bytes. */
	memcpy(sel, data + (size > 8 ? size - 8 : 0), size > 8 ? 8 : size);
	img = open_img(&m, 0, sel, 0);
	if (img) {
		walk(img, size);
		q2_close(img);
	}
	q2_close(hdr);
	return 0;
}
