// SPDX-License-Identifier: GPL-2.0
/*
 * attach-all, detach-all: the devices a vdisktab names, idempotently.  A
 * device is known by its name: one attached under a line's NAME is that
 * line's device and is left alone.  Every line is processed; the exit
 * status is 1 if any line was bad or failed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/attr.h>

#include "nl.h"
#include "vdiskctl.h"

static const struct option attach_all_opts[] = {
	{ "tab",   required_argument, NULL, 't' },
	{ "check", no_argument,	      NULL, 'n' },
	{ "help",  no_argument,	      NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

static const struct option detach_all_opts[] = {
	{ "tab",  required_argument, NULL, 't' },
	{ "lazy", no_argument,	     NULL, 'l' },
	{ "help", no_argument,	     NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

static const struct vdisk_info *find_attached(const struct vdisk_list *l,
					      const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].label, name))
			return &l->v[i];
	return NULL;
}

/* The entries to act on: those named, or all but noauto ones. */
static int select_entries(const char *cmd, struct tab *t, int argc,
			  char **argv, struct tab_entry ***sel, size_t *n)
{
	int i, ret = 0;
	size_t j;

	*n = 0;
	*sel = calloc(argc ? (size_t)argc : t->n + 1, sizeof(**sel));
	if (!*sel) {
		errf(cmd, NULL, "%s", strerror(ENOMEM));
		return EXIT_OPERATION;
	}
	if (!argc) {
		for (j = 0; j < t->n; j++)
			if (!t->v[j].noauto)
				(*sel)[(*n)++] = &t->v[j];
		return 0;
	}
	for (i = 0; i < argc; i++) {
		struct tab_entry *e = tab_find(t, argv[i]);

		if (!e) {
			errf(cmd, argv[i], "no valid line for it in %s", t->file);
			ret = EXIT_OPERATION;
			continue;
		}
		for (j = 0; j < *n; j++)
			if ((*sel)[j] == e)
				break;
		if (j == *n)
			(*sel)[(*n)++] = e;
	}
	return ret;
}

/* @s as one shell word. */
static void put_word(const char *s)
{
	const char *p;

	if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789_-+=.,/:@%") == strlen(s)) {
		fputs(s, stdout);
		return;
	}
	putchar('\'');
	for (p = s; *p; p++) {
		if (*p == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*p);
	}
	putchar('\'');
}

/* "--name web --read-only --offset 512": the entry as attach options. */
static void print_check(const struct tab_entry *e)
{
	const struct attach_opts *o = &e->opts;
	static const char *const formats[] = { "auto", "raw", "qcow2" };
	static const char *const caches[] = { "default", "none", "writeback",
					      "writethrough" };

	printf("%s: vdiskctl attach --name %s", e->name, e->name);
	if (o->flags & VDISK_FLAG_READ_ONLY)
		printf(" --read-only");
	if (o->flags & VDISK_FLAG_NO_PARTSCAN)
		printf(" --no-partscan");
	if (o->format != VDISK_FORMAT_AUTO && o->format <= VDISK_FORMAT_QCOW2)
		printf(" --format %s", formats[o->format]);
	if (o->has_offset)
		printf(" --offset %llu", (unsigned long long)o->offset);
	if (o->has_sizelimit)
		printf(" --sizelimit %llu", (unsigned long long)o->sizelimit);
	if (o->has_sector_size)
		printf(" --sector-size %u", o->sector_size);
	if (o->has_cache && o->cache <= VDISK_CACHE_WRITETHROUGH)
		printf(" --cache %s", caches[o->cache]);
	if (o->snapshot) {
		printf(" --snapshot ");
		put_word(o->snapshot);
	}
	if (o->has_cache_size)
		printf(" --cache-size %llu", (unsigned long long)o->cache_size);
	putchar(' ');
	put_word(e->image);
	if (e->noauto)
		printf(" (noauto)");
	putchar('\n');
}

static int attach_entry(struct vnl *nl, const struct vdisk_list *attached,
			struct tab_entry *e)
{
	const struct vdisk_info *cur = find_attached(attached, e->name);
	struct vdisk_info d;
	char *real;

	if (cur) {
		printf("%s: already attached as %s\n", e->name, cur->dev);
		/* The kernel keeps the canonical path attach gave it. */
		real = realpath(e->image, NULL);
		if (cur->has_path && strcmp(cur->path, real ? real : e->image))
			errf(NULL, NULL, "warning: %s: %s is attached as %s from %s, not %s",
			     e->where, e->name, cur->dev, cur->path, e->image);
		free(real);
		return 0;
	}
	if (attach_image(nl, &e->opts, &d))
		return EXIT_OPERATION;
	printf("%s: attached %s\n", e->name, d.dev);
	dev_info_free(&d);
	return 0;
}

int cmd_attach_all(int argc, char **argv)
{
	const char *cmd = "attach-all", *file = tab_default();
	struct vdisk_list attached = { 0 };
	struct tab_entry **sel = NULL;
	struct vnl nl = { 0 };
	bool check = false;
	struct tab t;
	int c, ret;
	size_t i, n;

	opterr = 0;
	while ((c = next_opt(argc, argv, ":t:nh", attach_all_opts)) != -1) {
		switch (c) {
		case 't':
			file = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'h':
			return print_usage(cmd);
		default:
			return opt_error(cmd, c, argv);
		}
	}
	if (tab_read(cmd, file, &t, argv + optind, argc - optind))
		return EXIT_OPERATION;
	ret = select_entries(cmd, &t, argc - optind, argv + optind, &sel, &n);
	if (t.errors)
		ret = EXIT_OPERATION;

	if (check) {
		for (i = 0; i < n; i++)
			print_check(sel[i]);
		goto out;
	}
	if (!n)
		goto out;
	if (vnl_open(&nl, cmd)) {
		ret = EXIT_OPERATION;
		goto out;
	}
	if (dev_dump(&nl, &attached) < 0) {
		vnl_perror(&nl, NULL);
		ret = EXIT_OPERATION;
		goto out;
	}
	/* In file order: a later image may live on an earlier device. */
	for (i = 0; i < n; i++)
		if (attach_entry(&nl, &attached, sel[i]))
			ret = EXIT_OPERATION;
out:
	dev_list_free(&attached);
	vnl_close(&nl);
	free(sel);
	tab_free(&t);
	return ret;
}

int cmd_detach_all(int argc, char **argv)
{
	const char *cmd = "detach-all", *file = tab_default();
	struct vdisk_list attached = { 0 };
	const char **names = NULL;
	struct vnl nl = { 0 };
	bool lazy = false, have_tab = false;
	size_t i, n = 0;
	struct tab t;
	int c, ret = 0;

	opterr = 0;
	while ((c = next_opt(argc, argv, ":t:lh", detach_all_opts)) != -1) {
		switch (c) {
		case 't':
			file = optarg;
			break;
		case 'l':
			lazy = true;
			break;
		case 'h':
			return print_usage(cmd);
		default:
			return opt_error(cmd, c, argv);
		}
	}

	if (optind < argc) {
		/*
		 * Names given: those devices, whether or not their line is
		 * still in the file (it may have changed since they were
		 * attached).  The file is not read.
		 */
		names = calloc(argc - optind, sizeof(*names));
		if (!names) {
			errf(cmd, NULL, "%s", strerror(ENOMEM));
			return EXIT_OPERATION;
		}
		for (; optind < argc; optind++) {
			const char *why;

			if (!name_valid(argv[optind], &why)) {
				errf(cmd, argv[optind], "not a device name: %s", why);
				ret = EXIT_OPERATION;
				continue;
			}
			names[n++] = argv[optind];
		}
	} else {
		if (tab_read(cmd, file, &t, NULL, 0))
			return EXIT_OPERATION;
		have_tab = true;
		if (t.errors)
			ret = EXIT_OPERATION;
		names = calloc(t.nnames + 1, sizeof(*names));
		if (!names) {
			errf(cmd, NULL, "%s", strerror(ENOMEM));
			ret = EXIT_OPERATION;
			goto out;
		}
		/*
		 * Last line first: an image may live on an earlier device.
		 * A bad line's device too, if attached: the line may have
		 * been edited since.
		 */
		for (i = t.nnames; i-- > 0;)
			names[n++] = t.names[i];
	}
	if (!n)
		goto out;

	if (vnl_open(&nl, cmd)) {
		ret = EXIT_OPERATION;
		goto out;
	}
	if (dev_dump(&nl, &attached) < 0) {
		vnl_perror(&nl, NULL);
		ret = EXIT_OPERATION;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const struct vdisk_info *d = find_attached(&attached, names[i]);

		if (!d) {
			/* Not worth a word for a bad line's name. */
			if (!have_tab || tab_find(&t, names[i]))
				printf("%s: not attached\n", names[i]);
			continue;
		}
		struct vdisk_sel sel = { .name = names[i] };

		if (dev_del(&nl, names[i], &sel, lazy, true)) {
			ret = EXIT_OPERATION;
			continue;
		}
		if (lazy && d->openers)
			printf("%s: %s will be detached at its last close\n",
			       names[i], d->dev);
		else
			printf("%s: detached %s\n", names[i], d->dev);
	}
out:
	dev_list_free(&attached);
	vnl_close(&nl);
	free(names);
	if (have_tab)
		tab_free(&t);
	return ret;
}
