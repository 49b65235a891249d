// SPDX-License-Identifier: GPL-2.0
/* set: change the settings of an attached device. */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include <netlink/attr.h>

#include "nl.h"
#include "vdiskctl.h"

#define CMD "set"

enum { OPT_CACHE = 0x100, OPT_AUTOCLEAR, OPT_NO_AUTOCLEAR };

static const struct option long_opts[] = {
	{ "read-only",	  no_argument,	     NULL, 'r' },
	{ "read-write",	  no_argument,	     NULL, 'w' },
	{ "cache",	  required_argument, NULL, OPT_CACHE },
	{ "autoclear",	  no_argument,	     NULL, OPT_AUTOCLEAR },
	{ "no-autoclear", no_argument,	     NULL, OPT_NO_AUTOCLEAR },
	{ "help",	  no_argument,	     NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

/* Shared with resize: both are a SET; the reply is not needed. */
int set_device(const char *cmd, const char *dev, const struct vdisk_change *ch)
{
	struct vdisk_sel sel;
	struct nl_msg *msg;
	const char *why;
	struct vnl nl;
	int ret = EXIT_OPERATION;

	if (dev_selector(dev, &sel, &why)) {
		errf(cmd, dev, "%s", why);
		return EXIT_OPERATION;
	}
	if (vnl_open(&nl, cmd))
		return EXIT_OPERATION;
	msg = vnl_request(&nl, VDISK_CMD_SET, 0);
	if (!msg || dev_put_selector(msg, &sel) < 0 ||
	    (ch->set_flags &&
	     nla_put_u32(msg, VDISK_ATTR_SET_FLAGS, ch->set_flags) < 0) ||
	    (ch->has_cache && nla_put_u32(msg, VDISK_ATTR_CACHE, ch->cache) < 0) ||
	    (ch->has_size && nla_put_u64(msg, VDISK_ATTR_SIZE, ch->size) < 0)) {
		nlmsg_free(msg);
		errf(cmd, dev, "%s", strerror(ENOMEM));
		goto out;
	}
	if (vnl_call(&nl, msg, NULL, NULL) < 0) {
		vnl_perror(&nl, dev);
		goto out;
	}
	ret = 0;
out:
	vnl_close(&nl);
	return ret;
}

int cmd_set(int argc, char **argv)
{
	struct vdisk_change ch = { 0 };
	int c, ret;

	opterr = 0;
	while ((c = next_opt(argc, argv, ":rwh", long_opts)) != -1) {
		switch (c) {
		case 'r':
			ch.set_flags |= VDISK_SET_READ_ONLY;
			break;
		case 'w':
			ch.set_flags |= VDISK_SET_READ_WRITE;
			break;
		case OPT_CACHE:
			ret = get_cache_arg(CMD, NULL, optarg, &ch.cache);
			if (ret)
				return ret;
			ch.has_cache = true;
			break;
		case OPT_AUTOCLEAR:
			ch.set_flags |= VDISK_SET_AUTOCLEAR;
			break;
		case OPT_NO_AUTOCLEAR:
			ch.set_flags |= VDISK_SET_NO_AUTOCLEAR;
			break;
		case 'h':
			return print_usage(CMD);
		default:
			return opt_error(CMD, c, argv);
		}
	}
	if (optind == argc)
		return usage_error(CMD, "missing DEV");
	if (optind + 1 < argc)
		return usage_error(CMD, "too many arguments");
	if ((ch.set_flags & VDISK_SET_READ_ONLY) && (ch.set_flags & VDISK_SET_READ_WRITE))
		return usage_error(CMD, "--read-only and --read-write exclude each other");
	if ((ch.set_flags & VDISK_SET_AUTOCLEAR) && (ch.set_flags & VDISK_SET_NO_AUTOCLEAR))
		return usage_error(CMD, "--autoclear and --no-autoclear exclude each other");
	if (!ch.set_flags && !ch.has_cache)
		return usage_error(CMD, "nothing to change");
	return set_device(CMD, argv[optind], &ch);
}
