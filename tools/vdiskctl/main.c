// SPDX-License-Identifier: GPL-2.0
/*
 * vdiskctl: attach disk images as /dev/vdiskN block devices, through the
 * "vdisk" generic netlink family.
 */
#include <stdio.h>
#include <string.h>

#include "vdiskctl.h"

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	const char *usage;
} commands[] = {
	{ "attach", cmd_attach, "attach an image file as a new device",
	  "Usage: vdiskctl attach [OPTIONS] FILE\n"
	  "Attach FILE and print the new device path.\n"
	  "\n"
	  "A qcow2 image's backing files are found as qemu-img finds them\n"
	  "(relative names against the directory of the image that names them),\n"
	  "opened read-only with your rights and attached with it, at most 16\n"
	  "layers below FILE.\n"
	  "\n"
	  "  -r, --read-only          attach read-only\n"
	  "  -o, --offset BYTES       start at this byte offset in FILE (raw)\n"
	  "  -s, --sizelimit BYTES    device size limit in bytes (raw)\n"
	  "  -f, --format FMT         auto (default), raw or qcow2\n"
	  "      --no-partscan        do not scan for partitions\n"
	  "  -b, --sector-size N      logical sector size: 512, 1024, 2048, 4096\n"
	  "      --cache MODE         none, writeback or writethrough\n"
	  "      --autoclear          detach when the last user closes the device\n"
	  "      --name NAME          a name to select the device by\n"
	  "      --index N            ask for /dev/vdiskN\n"
	  "      --snapshot NAME|ID   attach a qcow2 internal snapshot (read-only;\n"
	  "                           an ID is matched first, as qemu-img does)\n"
	  "      --cache-size BYTES   qcow2 metadata (L2 table) cache per device\n"
	  "\n"
	  "BYTES take a K, M, G, T, P, E suffix (or KiB...: powers of 1024;\n"
	  "KB...: powers of 1000).\n" },
	{ "attach-all", cmd_attach_all, "attach the devices listed in /etc/vdisktab",
	  "Usage: vdiskctl attach-all [--tab FILE] [--check] [NAME...]\n"
	  "Attach every device FILE lists (default /etc/vdisktab, see vdisktab(5)),\n"
	  "or only the NAMEs given, in the file's order.  A device already attached\n"
	  "under a line's NAME is left alone (with a warning if its image differs).\n"
	  "Lines marked noauto are attached only when named.  A bad line is\n"
	  "reported with its number and does not stop the others; the exit status\n"
	  "is 1 if any line was bad or failed.\n"
	  "\n"
	  "  -t, --tab FILE   read FILE instead of /etc/vdisktab ($VDISKTAB)\n"
	  "  -n, --check      only check FILE and print each line as an attach\n"
	  "                   command (needs no kernel module)\n" },
	{ "detach", cmd_detach, "detach devices",
	  "Usage: vdiskctl detach [--lazy] DEV...\n"
	  "       vdiskctl detach [--lazy] --all\n"
	  "Detach devices.  DEV is /dev/vdiskN, vdiskN or a NAME given at attach.\n"
	  "\n"
	  "  -a, --all    detach every device\n"
	  "  -l, --lazy   if a device is open, detach it at last close\n" },
	{ "detach-all", cmd_detach_all, "detach the devices listed in /etc/vdisktab",
	  "Usage: vdiskctl detach-all [--tab FILE] [--lazy] [NAME...]\n"
	  "Detach every device FILE lists (default /etc/vdisktab), last line first,\n"
	  "or only the devices NAMEd (the file is then not read).  Devices not\n"
	  "attached are skipped.  A device busy for a moment (udev probing it after\n"
	  "an unmount) is retried for up to 3 seconds.  The exit status is 1 if any\n"
	  "line was bad or any device could not be detached.\n"
	  "\n"
	  "  -t, --tab FILE   read FILE instead of /etc/vdisktab ($VDISKTAB)\n"
	  "  -l, --lazy       if a device is open, detach it at last close\n" },
	{ "list", cmd_list, "list attached devices (the default command)",
	  "Usage: vdiskctl list [--json] [--bytes] [DEV...]\n"
	  "List attached devices, or only the given ones.  BACKING-FILE shows a\n"
	  "qcow2 image as FILE[ @SNAPSHOT] -> LAYER1 -> LAYER2 ... (its backing\n"
	  "chain, nearest first).\n"
	  "\n"
	  "  -J, --json    print JSON\n"
	  "  -b, --bytes   print SIZE in bytes\n" },
	{ "resize", cmd_resize, "update a device's size",
	  "Usage: vdiskctl resize DEV [--size BYTES]\n"
	  "Without --size, take the new size from the backing file (after it\n"
	  "was grown or truncated).  --size grows a qcow2 image.\n"
	  "\n"
	  "  -s, --size BYTES   new virtual size (qcow2)\n" },
	{ "set", cmd_set, "change a device's settings",
	  "Usage: vdiskctl set DEV [OPTIONS]\n"
	  "\n"
	  "  -r, --read-only     make the device read-only\n"
	  "  -w, --read-write    make the device writable\n"
	  "      --cache MODE    none, writeback or writethrough\n"
	  "      --autoclear     detach when the last user closes the device\n"
	  "      --no-autoclear  do not\n" },
	{ "info", cmd_info, "describe an image file (qcow2 or raw)",
	  "Usage: vdiskctl info [--json] FILE\n"
	  "Describe FILE as qemu-img info does: format, virtual and disk size,\n"
	  "cluster size, backing file, snapshots, format details; plus the\n"
	  "backing chain as attach would resolve it (layer 0 is FILE) and the\n"
	  "qcow2 header's feature bits.  Needs no kernel module.\n"
	  "\n"
	  "  -J, --json   print one JSON object (qemu-img's key names)\n"
	  "\n"
	  "Fails if FILE cannot be parsed, or (after printing) if its backing\n"
	  "chain cannot be resolved.\n" },
	{ "monitor", cmd_monitor, "print device events as they happen",
	  "Usage: vdiskctl monitor [--json] [--count N]\n"
	  "Print one line per attach, detach, resize or change event.\n"
	  "\n"
	  "  -J, --json      print one JSON object per event\n"
	  "  -c, --count N   exit after N events\n" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

int print_usage(const char *name)
{
	const struct command *c = find_command(name);

	if (c)
		fputs(c->usage, stdout);
	return 0;
}

static void print_help(void)
{
	size_t i;

	printf("Usage: vdiskctl [COMMAND [OPTIONS] [ARGS]]\n"
	       "Attach disk images as /dev/vdiskN block devices.\n"
	       "\n"
	       "Commands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		printf("  %-11s %s\n", commands[i].name, commands[i].summary);
	printf("  %-11s %s\n", "help", "show help for a command");
	printf("\nRun 'vdiskctl COMMAND --help' for a command's options.\n"
	       "  -h, --help       show this help\n"
	       "  -V, --version    show the version\n");
}

static int cmd_help(int argc, char **argv)
{
	const struct command *c;

	if (argc > 2)
		return usage_error("help", "too many arguments");
	/* "help help" and "help --help" (which usage_error() suggests). */
	if (argc < 2 || !strcmp(argv[1], "help") ||
	    !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		print_help();
		return 0;
	}
	c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "vdiskctl: unknown command '%s' (see vdiskctl --help)\n",
			argv[1]);
		return EXIT_USAGE;
	}
	fputs(c->usage, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	static char *list_argv[] = { "list", NULL };
	const struct command *c;
	const char *name;
	int ret;

	/* Installed as a systemd generator: a symlink to this program. */
	if (argc > 0) {
		const char *base = strrchr(argv[0], '/');

		if (!strcmp(base ? base + 1 : argv[0], "vdisk-generator"))
			return generator_main(argc, argv);
	}
	if (argc < 2) {
		ret = cmd_list(1, list_argv);
		goto out;
	}
	name = argv[1];
	if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
		print_help();
		ret = 0;
		goto out;
	}
	if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
		printf("vdiskctl %s\n", VDISK_VERSION);
		ret = 0;
		goto out;
	}
	if (!strcmp(name, "help")) {
		ret = cmd_help(argc - 1, argv + 1);
		goto out;
	}
	if (name[0] == '-') {
		fprintf(stderr, "vdiskctl: unknown option '%s' (see vdiskctl --help)\n",
			name);
		return EXIT_USAGE;
	}
	c = find_command(name);
	if (!c) {
		fprintf(stderr, "vdiskctl: unknown command '%s' (see vdiskctl --help)\n",
			name);
		return EXIT_USAGE;
	}
	ret = c->fn(argc - 1, argv + 1);
out:
	/* A full disk or closed pipe on stdout must not look like success. */
	if (fflush(stdout) == EOF || ferror(stdout)) {
		if (!ret)
			perror("vdiskctl: write error");
		return ret ? ret : EXIT_OPERATION;
	}
	return ret;
}
