// SPDX-License-Identifier: GPL-2.0
/* detach: one DEL per device; a failure does not stop the others. */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include <netlink/attr.h>

#include "nl.h"
#include "vdiskctl.h"

#define CMD "detach"

static const struct option long_opts[] = {
	{ "all",  no_argument, NULL, 'a' },
	{ "lazy", no_argument, NULL, 'l' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

static int detach_all(struct vnl *nl, bool lazy)
{
	struct vdisk_list list = { 0 };
	int ret = 0;
	size_t i;

	if (dev_dump(nl, &list) < 0) {
		vnl_perror(nl, NULL);
		dev_list_free(&list);
		return EXIT_OPERATION;
	}
	for (i = 0; i < list.n; i++) {
		struct vdisk_sel sel = { .by_index = true, .index = list.v[i].index };

		if (dev_del(nl, list.v[i].dev, &sel, lazy, false))
			ret = EXIT_OPERATION;
	}
	dev_list_free(&list);
	return ret;
}

int cmd_detach(int argc, char **argv)
{
	bool all = false, lazy = false;
	struct vnl nl = { 0 };
	int c, i, ret = 0;

	opterr = 0;
	while ((c = next_opt(argc, argv, ":alh", long_opts)) != -1) {
		switch (c) {
		case 'a':
			all = true;
			break;
		case 'l':
			lazy = true;
			break;
		case 'h':
			return print_usage(CMD);
		default:
			return opt_error(CMD, c, argv);
		}
	}
	if (all && optind < argc)
		return usage_error(CMD, "--all takes no DEV");
	if (!all && optind == argc)
		return usage_error(CMD, "missing DEV (or --all)");

	if (all) {
		if (vnl_open(&nl, CMD))
			return EXIT_OPERATION;
		ret = detach_all(&nl, lazy);
		vnl_close(&nl);
		return ret;
	}

	/* Arguments that name no vdisk fail without asking the kernel. */
	for (i = optind; i < argc; i++) {
		struct vdisk_sel sel;
		const char *why;

		if (dev_selector(argv[i], &sel, &why)) {
			errf(CMD, argv[i], "%s", why);
			ret = EXIT_OPERATION;
			continue;
		}
		if (!nl.sk && vnl_open(&nl, CMD))
			return EXIT_OPERATION;
		if (dev_del(&nl, argv[i], &sel, lazy, false))
			ret = EXIT_OPERATION;
	}
	vnl_close(&nl);
	return ret;
}
