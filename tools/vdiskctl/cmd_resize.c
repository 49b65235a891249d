// SPDX-License-Identifier: GPL-2.0
/*
 * resize: without --size, the kernel re-reads the backing file's size
 * (after truncate); --size sets a qcow2 image's virtual size.
 */
#include <getopt.h>

#include "vdiskctl.h"

#define CMD "resize"

static const struct option long_opts[] = {
	{ "size", required_argument, NULL, 's' },
	{ "help", no_argument,	     NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

int cmd_resize(int argc, char **argv)
{
	struct vdisk_change ch = { 0 };
	int c, ret;

	opterr = 0;
	while ((c = next_opt(argc, argv, ":s:h", long_opts)) != -1) {
		switch (c) {
		case 's':
			ret = get_size_arg(CMD, NULL, "size", optarg, &ch.size);
			if (ret)
				return ret;
			ch.has_size = true;
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
	if (!ch.has_size)
		ch.set_flags = VDISK_SET_REFRESH_SIZE;
	return set_device(CMD, argv[optind], &ch);
}
