// SPDX-License-Identifier: GPL-2.0
/*
 * attach: open the image here, hand the kernel the descriptor.  The kernel
 * never opens paths, so permission checks on the file are the caller's,
 * exactly as for losetup.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <netlink/attr.h>

#include "nl.h"
#include "vdiskctl.h"

#define CMD "attach"

/* Give a script the node right away: 5 s in 10 ms steps. */
#define NODE_WAIT_STEPS	500
#define NODE_WAIT_NS	10000000L

struct attach_opts {
	const char *file;	/* as given, for messages */
	char *path;		/* canonical, for display by the kernel */
	int fd;
	uint32_t flags;		/* VDISK_FLAG_* */
	uint32_t format;
	bool has_offset, has_sizelimit, has_cache, has_sector_size, has_index;
	uint64_t offset, sizelimit;
	uint32_t cache, sector_size, index;
	const char *name;
	const char *snapshot;	/* qcow2: attach this internal snapshot */
	bool has_cache_size;
	uint64_t cache_size;	/* qcow2: metadata cache bytes */
	struct vdisk_chain chain;	/* qcow2: the layers below FILE */
};

enum {
	OPT_NO_PARTSCAN = 0x100, OPT_CACHE, OPT_AUTOCLEAR, OPT_NAME, OPT_INDEX,
	OPT_HELP, OPT_SNAPSHOT, OPT_CACHE_SIZE,
};

static const struct option long_opts[] = {
	{ "read-only",	 no_argument,	    NULL, 'r' },
	{ "offset",	 required_argument, NULL, 'o' },
	{ "sizelimit",	 required_argument, NULL, 's' },
	{ "format",	 required_argument, NULL, 'f' },
	{ "no-partscan", no_argument,	    NULL, OPT_NO_PARTSCAN },
	{ "sector-size", required_argument, NULL, 'b' },
	{ "cache",	 required_argument, NULL, OPT_CACHE },
	{ "autoclear",	 no_argument,	    NULL, OPT_AUTOCLEAR },
	{ "name",	 required_argument, NULL, OPT_NAME },
	{ "index",	 required_argument, NULL, OPT_INDEX },
	{ "snapshot",	 required_argument, NULL, OPT_SNAPSHOT },
	{ "cache-size",	 required_argument, NULL, OPT_CACHE_SIZE },
	{ "help",	 no_argument,	    NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

static int parse_format(const char *s, uint32_t *out)
{
	if (!strcmp(s, "auto"))
		*out = VDISK_FORMAT_AUTO;
	else if (!strcmp(s, "raw"))
		*out = VDISK_FORMAT_RAW;
	else if (!strcmp(s, "qcow2"))
		*out = VDISK_FORMAT_QCOW2;
	else
		return -EINVAL;
	return 0;
}

static int parse_opts(int argc, char **argv, struct attach_opts *o)
{
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":ro:s:f:b:h", long_opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			o->flags |= VDISK_FLAG_READ_ONLY;
			break;
		case 'o':
			ret = get_size_arg(CMD, "offset", optarg, &o->offset);
			if (ret)
				return ret;
			o->has_offset = true;
			break;
		case 's':
			ret = get_size_arg(CMD, "sizelimit", optarg, &o->sizelimit);
			if (ret)
				return ret;
			o->has_sizelimit = true;
			break;
		case 'f':
			if (parse_format(optarg, &o->format)) {
				errf(CMD, NULL, "invalid format '%s' (auto, raw or qcow2)",
				     optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_NO_PARTSCAN:
			o->flags |= VDISK_FLAG_NO_PARTSCAN;
			break;
		case 'b':
			/* Checked here too, for a message that needs no module. */
			if (parse_u32(optarg, &o->sector_size) ||
			    (o->sector_size != 512 && o->sector_size != 1024 &&
			     o->sector_size != 2048 && o->sector_size != 4096)) {
				errf(CMD, NULL, "sector size must be 512, 1024, 2048 or 4096");
				return EXIT_USAGE;
			}
			o->has_sector_size = true;
			break;
		case OPT_CACHE:
			ret = get_cache_arg(CMD, optarg, &o->cache);
			if (ret)
				return ret;
			o->has_cache = true;
			break;
		case OPT_AUTOCLEAR:
			o->flags |= VDISK_FLAG_AUTOCLEAR;
			break;
		case OPT_NAME:
			if (strlen(optarg) >= VDISK_NAME_MAX) {
				errf(CMD, NULL, "name is longer than %d bytes",
				     VDISK_NAME_MAX - 1);
				return EXIT_USAGE;
			}
			o->name = optarg;
			break;
		case OPT_INDEX:
			if (parse_u32(optarg, &o->index)) {
				errf(CMD, NULL, "invalid index '%s'", optarg);
				return EXIT_USAGE;
			}
			o->has_index = true;
			break;
		case OPT_SNAPSHOT:
			if (!*optarg) {
				errf(CMD, NULL, "empty snapshot name");
				return EXIT_USAGE;
			}
			/* Snapshots are read-only: never open the image for writing. */
			o->snapshot = optarg;
			o->flags |= VDISK_FLAG_READ_ONLY;
			break;
		case OPT_CACHE_SIZE:
			ret = get_size_arg(CMD, "cache size", optarg, &o->cache_size);
			if (ret)
				return ret;
			o->has_cache_size = true;
			break;
		case 'h':
			print_usage(CMD);
			return -1;	/* done, successfully */
		default:
			return opt_error(CMD, c, argv);
		}
	}
	if (optind == argc)
		return usage_error(CMD, "missing FILE");
	if (optind + 1 < argc)
		return usage_error(CMD, "too many arguments");
	o->file = argv[optind];
	return 0;
}

/*
 * Read-write if we may, else read-only as losetup does: the kernel makes a
 * device read-only when its descriptor is.  O_NONBLOCK only keeps a FIFO
 * from hanging the open; the kernel then rejects it with a message.
 */
static int open_image(struct attach_opts *o)
{
	int base = O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	struct stat st;
	int fd, fl;

	if (o->flags & VDISK_FLAG_READ_ONLY) {
		fd = open(o->file, O_RDONLY | base);
	} else {
		fd = open(o->file, O_RDWR | base);
		/* EPERM: an immutable or append-only file (chattr +i/+a). */
		if (fd < 0 && (errno == EACCES || errno == EROFS ||
			       errno == EPERM))
			fd = open(o->file, O_RDONLY | base);
	}
	if (fd < 0) {
		errf(CMD, o->file, "%s", errno == EISDIR ? "is a directory" :
		     strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		errf(CMD, o->file, "is a directory");
		close(fd);
		return -1;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	o->fd = fd;
	o->path = realpath(o->file, NULL);
	return 0;
}

/*
 * A qcow2 image (by its magic, or as --format says) gets its backing chain
 * opened here; a raw one has none, whatever its first bytes.
 */
static int open_chain(struct attach_opts *o)
{
	char err[512];
	int ret;

	if (o->format == VDISK_FORMAT_RAW)
		return 0;
	if (o->format == VDISK_FORMAT_AUTO) {
		ret = image_probe_qcow2(o->fd);
		if (ret < 0) {
			errf(CMD, o->file, "%s", strerror(-ret));
			return -1;
		}
		if (!ret)
			return 0;
	}
	if (chain_resolve(o->file, o->fd, &o->chain, err, sizeof(err))) {
		errf(CMD, o->file, "%s", err);
		return -1;
	}
	return 0;
}

/*
 * VDISK_ATTR_BACKING: a nested array, one nest per layer typed 1, 2, ...
 * (NLA_POLICY_NESTED_ARRAY), nearest first.  The kernel takes its own
 * references on the descriptors and re-checks paths and formats.
 */
static int put_backing(struct nl_msg *msg, const struct vdisk_chain *c)
{
	struct nlattr *chain, *layer;
	unsigned int i;

	if (!c->nr)
		return 0;
	chain = nla_nest_start(msg, VDISK_ATTR_BACKING | NLA_F_NESTED);
	if (!chain)
		return -ENOMEM;
	for (i = 0; i < c->nr; i++) {
		const struct vdisk_layer *l = &c->layer[i];

		layer = nla_nest_start(msg, (i + 1) | NLA_F_NESTED);
		if (!layer ||
		    nla_put_u32(msg, VDISK_LAYER_ATTR_FD, l->fd) < 0 ||
		    nla_put_string(msg, VDISK_LAYER_ATTR_PATH, l->path) < 0 ||
		    nla_put_u32(msg, VDISK_LAYER_ATTR_FORMAT, l->format) < 0)
			return -ENOMEM;
		nla_nest_end(msg, layer);
	}
	nla_nest_end(msg, chain);
	return 0;
}

/* The whole ADD request. */
static int attach_put_attrs(struct nl_msg *msg, const struct attach_opts *o)
{
	if (nla_put_u32(msg, VDISK_ATTR_FD, o->fd) < 0 ||
	    nla_put_string(msg, VDISK_ATTR_PATH, o->path ? o->path : o->file) < 0 ||
	    nla_put_u32(msg, VDISK_ATTR_FORMAT, o->format) < 0)
		return -ENOMEM;
	if (o->flags && nla_put_u32(msg, VDISK_ATTR_FLAGS, o->flags) < 0)
		return -ENOMEM;
	if (o->has_offset && nla_put_u64(msg, VDISK_ATTR_OFFSET, o->offset) < 0)
		return -ENOMEM;
	if (o->has_sizelimit &&
	    nla_put_u64(msg, VDISK_ATTR_SIZELIMIT, o->sizelimit) < 0)
		return -ENOMEM;
	if (o->has_cache && nla_put_u32(msg, VDISK_ATTR_CACHE, o->cache) < 0)
		return -ENOMEM;
	if (o->has_sector_size &&
	    nla_put_u32(msg, VDISK_ATTR_SECTOR_SIZE, o->sector_size) < 0)
		return -ENOMEM;
	if (o->name && nla_put_string(msg, VDISK_ATTR_NAME, o->name) < 0)
		return -ENOMEM;
	if (o->has_index && nla_put_u32(msg, VDISK_ATTR_INDEX, o->index) < 0)
		return -ENOMEM;
	if (o->snapshot && nla_put_string(msg, VDISK_ATTR_SNAPSHOT, o->snapshot) < 0)
		return -ENOMEM;
	if (o->has_cache_size &&
	    nla_put_u64(msg, VDISK_ATTR_CACHE_SIZE, o->cache_size) < 0)
		return -ENOMEM;
	return put_backing(msg, &o->chain);
}

static int got_device(struct nlattr **tb, uint8_t cmd, void *arg)
{
	(void)cmd;
	return dev_from_attrs(tb, arg);
}

/* devtmpfs creates the node on add_disk(); udev may still be renaming. */
static bool wait_for_node(const struct vdisk_info *d)
{
	const struct timespec step = { 0, NODE_WAIT_NS };
	struct stat st;
	int i;

	for (i = 0; i <= NODE_WAIT_STEPS; i++) {
		if (stat(d->dev, &st) == 0 && S_ISBLK(st.st_mode) &&
		    st.st_rdev == makedev(d->major, d->minor))
			return true;
		nanosleep(&step, NULL);
	}
	return false;
}

int cmd_attach(int argc, char **argv)
{
	struct attach_opts o = { .fd = -1, .format = VDISK_FORMAT_AUTO };
	struct vdisk_info d = { 0 };
	struct nl_msg *msg;
	struct vnl nl;
	int ret;

	ret = parse_opts(argc, argv, &o);
	if (ret)
		return ret < 0 ? 0 : ret;
	if (open_image(&o))
		return EXIT_OPERATION;
	ret = EXIT_OPERATION;
	if (open_chain(&o))
		goto out;

	if (vnl_open(&nl, CMD))
		goto out;
	msg = vnl_request(&nl, VDISK_CMD_ADD, 0);
	if (!msg || attach_put_attrs(msg, &o) < 0) {
		nlmsg_free(msg);
		errf(CMD, o.file, "%s", strerror(ENOMEM));
		goto out_nl;
	}
	if (vnl_call(&nl, msg, got_device, &d) < 0) {
		vnl_perror(&nl, o.file);
		goto out_nl;
	}
	/* The kernel holds its own references now. */
	close(o.fd);
	o.fd = -1;
	chain_close(&o.chain);
	/* A description too big for the kernel's reply arrives as nothing. */
	if (!d.dev[0]) {
		errf(CMD, o.file, "attached, but the kernel's reply named no device");
		goto out_nl;
	}

	if (!wait_for_node(&d))
		errf(CMD, o.file, "%s did not appear within 5 seconds", d.dev);
	printf("%s\n", d.dev);
	ret = 0;
out_nl:
	dev_info_free(&d);
	vnl_close(&nl);
out:
	if (o.fd >= 0)
		close(o.fd);
	chain_close(&o.chain);
	free(o.path);
	return ret;
}
