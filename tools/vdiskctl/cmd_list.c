// SPDX-License-Identifier: GPL-2.0
/* list: a dump, or one GET per DEV; printed only once all are in. */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "nl.h"
#include "vdiskctl.h"

#define CMD "list"

static const struct option long_opts[] = {
	{ "json",  no_argument, NULL, 'J' },
	{ "bytes", no_argument, NULL, 'b' },
	{ "help",  no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

/* Devices that exist are still listed when others are missing. */
static int list_some(struct vnl *nl, int argc, char **argv,
		     struct vdisk_list *list)
{
	int i, ret = 0;

	for (i = 0; i < argc; i++) {
		struct vdisk_info *d;
		struct vdisk_sel sel;
		const char *why;

		if (dev_selector(argv[i], &sel, &why)) {
			errf(CMD, argv[i], "%s", why);
			ret = EXIT_OPERATION;
			continue;
		}
		if (!nl->sk && vnl_open(nl, CMD))
			return EXIT_OPERATION;
		d = dev_list_push(list);
		if (!d) {
			errf(CMD, argv[i], "%s", strerror(ENOMEM));
			return EXIT_OPERATION;
		}
		if (dev_get(nl, &sel, d) < 0) {
			vnl_perror(nl, argv[i]);
			dev_info_free(d);
			list->n--;
			ret = EXIT_OPERATION;
		}
	}
	return ret;
}

int cmd_list(int argc, char **argv)
{
	struct vdisk_list list = { 0 };
	bool json = false, bytes = false;
	struct vnl nl = { 0 };
	int c, ret = 0;

	opterr = 0;
	while ((c = next_opt(argc, argv, ":Jbh", long_opts)) != -1) {
		switch (c) {
		case 'J':
			json = true;
			break;
		case 'b':
			bytes = true;
			break;
		case 'h':
			return print_usage(CMD);
		default:
			return opt_error(CMD, c, argv);
		}
	}

	if (optind < argc) {
		ret = list_some(&nl, argc - optind, argv + optind, &list);
	} else {
		if (vnl_open(&nl, CMD))
			return EXIT_OPERATION;
		if (dev_dump(&nl, &list) < 0) {
			vnl_perror(&nl, NULL);
			ret = EXIT_OPERATION;
			goto out;
		}
	}

	/* The devices that were found, even if some DEV was not. */
	if (json)
		print_json(list.v, list.n);
	else
		print_table(list.v, list.n, bytes);
out:
	vnl_close(&nl);
	dev_list_free(&list);
	return ret;
}
