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

void attach_opts_init(struct attach_opts *o, const char *cmd)
{
	memset(o, 0, sizeof(*o));
	o->cmd = cmd;
	o->fd = -1;
	o->format = VDISK_FORMAT_AUTO;
}

/*
 * One option, from the command line or a vdisktab line: 0, or EXIT_USAGE
 * with the message printed (prefixed with o->where when set).  @val is
 * kept, not copied.
 */
int attach_set(struct attach_opts *o, enum attach_opt opt, const char *val)
{
	const char *cmd = o->cmd, *where = o->where;
	int ret;

	switch (opt) {
	case AO_READ_ONLY:
		o->flags |= VDISK_FLAG_READ_ONLY;
		break;
	case AO_OFFSET:
		ret = get_size_arg(cmd, where, "offset", val, &o->offset);
		if (ret)
			return ret;
		o->has_offset = true;
		break;
	case AO_SIZELIMIT:
		ret = get_size_arg(cmd, where, "sizelimit", val, &o->sizelimit);
		if (ret)
			return ret;
		o->has_sizelimit = true;
		break;
	case AO_FORMAT:
		if (parse_format(val, &o->format)) {
			errf(cmd, where, "invalid format '%s' (auto, raw or qcow2)", val);
			return EXIT_USAGE;
		}
		break;
	case AO_NO_PARTSCAN:
		o->flags |= VDISK_FLAG_NO_PARTSCAN;
		break;
	case AO_SECTOR_SIZE:
		/* Checked here too, for a message that needs no module. */
		if (parse_u32(val, &o->sector_size) ||
		    (o->sector_size != 512 && o->sector_size != 1024 &&
		     o->sector_size != 2048 && o->sector_size != 4096)) {
			errf(cmd, where, "sector size must be 512, 1024, 2048 or 4096");
			return EXIT_USAGE;
		}
		o->has_sector_size = true;
		break;
	case AO_CACHE:
		ret = get_cache_arg(cmd, where, val, &o->cache);
		if (ret)
			return ret;
		o->has_cache = true;
		break;
	case AO_AUTOCLEAR:
		o->flags |= VDISK_FLAG_AUTOCLEAR;
		break;
	case AO_NAME: {
		const char *why;

		if (!name_valid(val, &why)) {
			errf(cmd, where, "invalid name '%s': %s", val, why);
			return EXIT_USAGE;
		}
		o->name = val;
		break;
	}
	case AO_INDEX:
		if (parse_u32(val, &o->index)) {
			errf(cmd, where, "invalid index '%s'", val);
			return EXIT_USAGE;
		}
		o->has_index = true;
		break;
	case AO_SNAPSHOT:
		if (!*val) {
			errf(cmd, where, "empty snapshot name");
			return EXIT_USAGE;
		}
		/* Snapshots are read-only: never open the image for writing. */
		o->snapshot = val;
		o->flags |= VDISK_FLAG_READ_ONLY;
		break;
	case AO_CACHE_SIZE:
		ret = get_size_arg(cmd, where, "cache size", val, &o->cache_size);
		if (ret)
			return ret;
		o->has_cache_size = true;
		break;
	}
	return 0;
}

static int parse_opts(int argc, char **argv, struct attach_opts *o)
{
	int c, ret;

	opterr = 0;
	while ((c = next_opt(argc, argv, ":ro:s:f:b:h", long_opts)) != -1) {
		enum attach_opt opt;

		switch (c) {
		case 'r':		opt = AO_READ_ONLY; break;
		case 'o':		opt = AO_OFFSET; break;
		case 's':		opt = AO_SIZELIMIT; break;
		case 'f':		opt = AO_FORMAT; break;
		case OPT_NO_PARTSCAN:	opt = AO_NO_PARTSCAN; break;
		case 'b':		opt = AO_SECTOR_SIZE; break;
		case OPT_CACHE:		opt = AO_CACHE; break;
		case OPT_AUTOCLEAR:	opt = AO_AUTOCLEAR; break;
		case OPT_NAME:		opt = AO_NAME; break;
		case OPT_INDEX:		opt = AO_INDEX; break;
		case OPT_SNAPSHOT:	opt = AO_SNAPSHOT; break;
		case OPT_CACHE_SIZE:	opt = AO_CACHE_SIZE; break;
		case 'h':
			print_usage(CMD);
			return -1;	/* done, successfully */
		default:
			return opt_error(CMD, c, argv);
		}
		ret = attach_set(o, opt, optarg);
		if (ret)
			return ret;
	}
	if (optind == argc)
		return usage_error(CMD, "missing FILE");
	if (optind + 1 < argc)
		return usage_error(CMD, "too many arguments");
	o->file = argv[optind];
	return 0;
}

/* What messages about the image are about: the file, or "FILE:LINE: IMAGE". */
static const char *image_obj(const struct attach_opts *o)
{
	return o->obj ? o->obj : o->file;
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
		errf(o->cmd, image_obj(o), "%s",
		     errno == EISDIR ? "is a directory" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		errf(o->cmd, image_obj(o), "is a directory");
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
			errf(o->cmd, image_obj(o), "%s", strerror(-ret));
			return -1;
		}
		if (!ret)
			return 0;
	}
	if (chain_resolve(o->file, o->fd, &o->chain, err, sizeof(err))) {
		errf(o->cmd, image_obj(o), "%s", err);
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

/* The ADD reply, and the index it gave even if the rest was unreadable. */
struct added {
	struct vdisk_info *d;
	bool known;
	uint32_t index;
};

static int got_device(struct nlattr **tb, uint8_t cmd, void *arg)
{
	struct added *a = arg;

	(void)cmd;
	if (tb[VDISK_ATTR_INDEX]) {
		a->known = true;
		a->index = nla_get_u32(tb[VDISK_ATTR_INDEX]);
	}
	return dev_from_attrs(tb, a->d);
}

/*
 * The kernel attached a device but vdiskctl could not take in its reply
 * (no memory to copy it): detach it again rather than leave a device
 * nobody was told about.  One lazy DEL: udev's probe may hold it open for
 * a moment, and a retry could hit another device that got the index
 * after an autoclear.  ENODEV means it is gone already.  (A reply that
 * fails to parse at all gives no index: got_device() never runs.)
 */
static void undo_add(struct vnl *nl, struct attach_opts *o,
		     const struct added *a)
{
	struct vdisk_sel sel = { .by_index = true, .index = a->index };
	struct nl_msg *msg = vnl_request(nl, VDISK_CMD_DEL, 0);
	char dev[32];
	int err;

	snprintf(dev, sizeof(dev), VDISK_DISK_PREFIX "%u", a->index);
	if (!msg || dev_put_selector(msg, &sel) < 0 ||
	    nla_put_u32(msg, VDISK_ATTR_DEL_FLAGS, VDISK_DEL_LAZY) < 0) {
		nlmsg_free(msg);
		errf(o->cmd, image_obj(o), "%s is left attached: %s", dev,
		     strerror(ENOMEM));
		return;
	}
	err = vnl_call(nl, msg, NULL, NULL);
	if (!err || err == -ENODEV)
		errf(o->cmd, image_obj(o), "%s was attached; detached it again", dev);
	else
		errf(o->cmd, image_obj(o), "%s is left attached: %s", dev,
		     nl->reason[0] ? nl->reason : strerror(-err));
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

/*
 * The one attach path, for `attach` and `attach-all`: open the image and its
 * backing chain, send ADD on @nl (opened here if it is not yet, so that a
 * missing file is reported before a missing module), wait for the node.
 * Returns 0 with @d describing the new device (dev_info_free() it), or
 * EXIT_OPERATION with the reason printed.  @o is released either way.
 */
int attach_image(struct vnl *nl, struct attach_opts *o, struct vdisk_info *d)
{
	const char *obj = image_obj(o);
	struct added added = { .d = d };
	struct nl_msg *msg;
	int ret = EXIT_OPERATION;

	memset(d, 0, sizeof(*d));
	if (open_image(o))
		goto out;
	if (open_chain(o))
		goto out;
	if (!nl->sk && vnl_open(nl, o->cmd))
		goto out;
	msg = vnl_request(nl, VDISK_CMD_ADD, 0);
	if (!msg || attach_put_attrs(msg, o) < 0) {
		nlmsg_free(msg);
		errf(o->cmd, obj, "%s", strerror(ENOMEM));
		goto out;
	}
	if (vnl_call(nl, msg, got_device, &added) < 0) {
		vnl_perror(nl, obj);
		/* A reply came, so the kernel attached: undo it. */
		if (added.known)
			undo_add(nl, o, &added);
		goto out_dev;
	}
	/* The kernel holds its own references now. */
	close(o->fd);
	o->fd = -1;
	chain_close(&o->chain);
	/* An ACK without a reply: the kernel never answers ADD so. */
	if (!d->dev[0]) {
		errf(o->cmd, obj, "attached, but the kernel's reply named no device: see vdiskctl list");
		goto out_dev;
	}
	if (!wait_for_node(d))
		errf(o->cmd, obj, "%s did not appear within 5 seconds", d->dev);
	ret = 0;
	goto out;
out_dev:
	dev_info_free(d);
out:
	attach_opts_release(o);
	return ret;
}

void attach_opts_release(struct attach_opts *o)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	chain_close(&o->chain);
	free(o->path);
	o->path = NULL;
}

int cmd_attach(int argc, char **argv)
{
	struct attach_opts o;
	struct vdisk_info d;
	struct vnl nl = { 0 };
	int ret;

	attach_opts_init(&o, CMD);
	ret = parse_opts(argc, argv, &o);
	if (ret)
		return ret < 0 ? 0 : ret;
	ret = attach_image(&nl, &o, &d);
	if (!ret) {
		printf("%s\n", d.dev);
		dev_info_free(&d);
	}
	vnl_close(&nl);
	return ret;
}
