// SPDX-License-Identifier: GPL-2.0
/*
 * vdisk-generator: the systemd generator for /etc/vdisktab (installed as a
 * symlink to vdiskctl, which runs this when called by that name).
 *
 * For every valid line it configures vdisk@NAME.service (the installed
 * template runs `vdiskctl attach-all NAME` and `detach-all NAME`) with a
 * drop-in in the generator directory:
 *
 *  - RequiresMountsFor=IMAGE, so the image's file systems are mounted first
 *    and unmounted only after the device is detached;
 *  - the ordering that lets fstab lines on the device mount at boot and be
 *    unmounted before the detach at shutdown:
 *      early  image on the root file system: Before=local-fs-pre.target,
 *             which every local fstab mount is After=;
 *      local  image on another local fstab mount: Before=local-fs.target,
 *             and every other local fstab mount that could be on a vdisk
 *             (UUID=, LABEL=, PARTUUID=, PARTLABEL=, /dev/disk/...,
 *             /dev/vdisk..., /dev/mapper/...) and does not hold the image
 *             gets After=vdisk@NAME.service;
 *      remote image on a network mount: Before=remote-fs.target, after the
 *             network; fstab lines on the device need _netdev, and those
 *             get the After= as above;
 *  - a Wants= from local-fs.target (remote-fs.target) unless the line says
 *    noauto.
 *
 * Bad lines are reported (to the kernel log, where systemd sends a
 * generator's stderr) and get no unit.  See vdisktab(5).
 */
#include <ctype.h>
#include <errno.h>
#include <mntent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdiskctl.h"

#define CMD "vdisk-generator"

#ifndef VDISK_UNITDIR
#define VDISK_UNITDIR "/lib/systemd/system"
#endif

enum tier { TIER_EARLY, TIER_LOCAL, TIER_REMOTE };

struct mnt {
	char *src, *dir, *type, *opts;
	bool net;
	char *unit;		/* "srv-images.mount" */
	char *after;		/* accumulated "After=" lines, or NULL */
};

struct fstab {
	struct mnt *v;
	size_t n;
};

static const char *const net_types[] = {
	"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "ncp", "ceph",
	"glusterfs", "fuse.glusterfs", "sshfs", "fuse.sshfs", "davfs", "afs",
	"gfs", "gfs2", "ocfs2", "lustre", "pvfs2", "iscsi",
};

static bool is_net(const struct mntent *m)
{
	size_t i;

	if (hasmntopt(m, "_netdev"))
		return true;
	for (i = 0; i < sizeof(net_types) / sizeof(net_types[0]); i++)
		if (!strcmp(m->mnt_type, net_types[i]))
			return true;
	return false;
}

/* systemd's unit name escaping: '/' becomes '-', odd bytes \xNN. */
static char *escape(const char *s, bool path)
{
	char *out = malloc(strlen(s) * 4 + 2), *o = out;

	if (!out)
		return NULL;
	if (path) {
		while (*s == '/')
			s++;
		if (!*s) {
			strcpy(out, "-");
			return out;
		}
	}
	for (; *s; s++) {
		unsigned char c = *s;

		if (path && c == '/') {
			*o++ = '-';
		} else if ((o == out && c == '.') || c == '-' || c == '\\' ||
			   !(isalnum(c) || c == ':' || c == '_' || c == '.')) {
			o += sprintf(o, "\\x%02x", c);
		} else {
			*o++ = c;
		}
	}
	*o = '\0';
	return out;
}

/*
 * "/srv//./images/" as "/srv/images": how systemd simplifies a path (its
 * path_simplify(): repeated slashes and "." components go, ".." stays).
 */
static char *simplify(const char *p)
{
	char *out = malloc(strlen(p) + 2), *o = out;

	if (!out)
		return NULL;
	while (*p) {
		if (*p == '/') {
			if (o == out || o[-1] != '/')
				*o++ = '/';
			p++;
			continue;
		}
		/* A "." component (followed by '/' or the end). */
		if (p[0] == '.' && (p[1] == '/' || !p[1]) && o > out &&
		    o[-1] == '/') {
			p++;
			continue;
		}
		*o++ = *p++;
	}
	if (o > out + 1 && o[-1] == '/')
		o--;
	*o = '\0';
	return out;
}

/* @dir holds @path: "/srv" holds "/srv/x.img", "/" holds everything. */
static bool holds(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	if (!strcmp(dir, "/"))
		return true;
	return !strncmp(dir, path, n) && (path[n] == '/' || !path[n]);
}

/* A value for a unit file: quoted, '%' as "%%", '"' and '\' escaped. */
static void put_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '%')
			fputs("%%", f);
		else if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\x%02x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* Same for text where quotes would show (Description=). */
static void put_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '%')
			fputs("%%", f);
		else if ((unsigned char)*s < 0x20)
			fputc('?', f);
		else
			fputc(*s, f);
	}
}

static int mkdir_p(const char *dir)
{
	char *p = strdup(dir), *s;
	int ret = 0;

	if (!p)
		return -ENOMEM;
	for (s = p + 1; ; s++) {
		if (*s == '/' || !*s) {
			char c = *s;

			*s = '\0';
			if (mkdir(p, 0755) < 0 && errno != EEXIST) {
				ret = -errno;
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return ret;
}

static FILE *create(const char *dir, const char *sub, const char *file)
{
	char *d = NULL, *path = NULL;
	FILE *f = NULL;

	if (asprintf(&d, "%s/%s", dir, sub) < 0) {
		d = NULL;
		goto out;
	}
	if (mkdir_p(d) < 0) {
		errf(CMD, d, "%s", strerror(errno));
		goto out;
	}
	if (asprintf(&path, "%s/%s", d, file) < 0) {
		path = NULL;
		goto out;
	}
	f = fopen(path, "we");
	if (!f)
		errf(CMD, path, "%s", strerror(errno));
out:
	free(d);
	free(path);
	return f;
}

static int link_wants(const char *dest, const char *target, const char *unit)
{
	char *d = NULL, *path = NULL;
	int ret = -ENOMEM;

	if (asprintf(&d, "%s/%s.wants", dest, target) < 0) {
		d = NULL;
		goto out;
	}
	if (asprintf(&path, "%s/%s", d, unit) < 0) {
		path = NULL;
		goto out;
	}
	ret = mkdir_p(d);
	if (!ret && symlink(VDISK_UNITDIR "/vdisk@.service", path) < 0 &&
	    errno != EEXIST)
		ret = -errno;
	if (ret)
		errf(CMD, path, "%s", strerror(-ret));
out:
	free(d);
	free(path);
	return ret;
}

static void fstab_free(struct fstab *ft)
{
	size_t i;

	for (i = 0; i < ft->n; i++) {
		free(ft->v[i].src);
		free(ft->v[i].dir);
		free(ft->v[i].type);
		free(ft->v[i].opts);
		free(ft->v[i].unit);
		free(ft->v[i].after);
	}
	free(ft->v);
}

/* The mounts of /etc/fstab ($SYSTEMD_FSTAB), swap and oddities left out. */
static int fstab_read(struct fstab *ft)
{
	const char *file = getenv("SYSTEMD_FSTAB");
	struct mntent *m;
	FILE *f;

	memset(ft, 0, sizeof(*ft));
	if (!file || !*file)
		file = "/etc/fstab";
	f = setmntent(file, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while ((m = getmntent(f))) {
		struct mnt *v, *x;

		if (m->mnt_dir[0] != '/' || !strcmp(m->mnt_type, "swap"))
			continue;
		v = realloc(ft->v, (ft->n + 1) * sizeof(*v));
		if (!v)
			break;
		ft->v = v;
		x = &ft->v[ft->n];
		memset(x, 0, sizeof(*x));
		x->src = strdup(m->mnt_fsname);
		x->dir = simplify(m->mnt_dir);
		x->type = strdup(m->mnt_type);
		x->opts = strdup(m->mnt_opts);
		x->net = is_net(m);
		x->unit = x->dir ? escape(x->dir, true) : NULL;
		ft->n++;
		if (!x->src || !x->dir || !x->type || !x->opts || !x->unit)
			break;
	}
	endmntent(f);
	if (m) {
		fstab_free(ft);
		return -ENOMEM;
	}
	return 0;
}

/* A mount of a block device, which could be one of ours. */
static bool on_block_device(const struct mnt *m)
{
	static const char *const tags[] = {
		"UUID=", "LABEL=", "PARTUUID=", "PARTLABEL=", "ID=", "/dev/vdisk",
		"/dev/disk/", "/dev/mapper/", "/dev/dm-",
	};
	size_t i;

	if (!strcmp(m->dir, "/"))
		return false;
	for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (!strncmp(m->src, tags[i], strlen(tags[i])))
			return true;
	return false;
}

/* @image simplified, as the mount points are. */
static enum tier entry_tier(const struct fstab *ft, const char *image)
{
	enum tier t = TIER_EARLY;
	size_t i;

	for (i = 0; i < ft->n; i++) {
		const struct mnt *m = &ft->v[i];

		if (strcmp(m->dir, "/") && holds(m->dir, image)) {
			if (m->net)
				return TIER_REMOTE;
			t = TIER_LOCAL;
		}
	}
	return t;
}

static int add_after(struct mnt *m, const char *unit)
{
	char *s;

	if (asprintf(&s, "%sAfter=%s\n", m->after ? m->after : "", unit) < 0)
		return -ENOMEM;
	free(m->after);
	m->after = s;
	return 0;
}

static int generate_entry(const char *dest, const char *tabfile,
			  struct fstab *ft, const struct tab_entry *e)
{
	/*
	 * The image's path simplified like the mount points: systemd
	 * simplifies RequiresMountsFor=, and "/srv//img/a.img", taken for a
	 * file on the root file system, was ordered both before
	 * local-fs-pre.target and after /srv/img's mount: a cycle.
	 */
	char *image = simplify(e->image);
	char *inst = escape(e->name, false), *unit = NULL, *sub = NULL;
	enum tier tier = image ? entry_tier(ft, image) : TIER_EARLY;
	int ret = -ENOMEM;
	FILE *f;
	size_t i;

	if (!image || !inst || asprintf(&unit, "vdisk@%s.service", inst) < 0 ||
	    asprintf(&sub, "%s.d", unit) < 0) {
		unit = sub = NULL;
		goto out;
	}
	f = create(dest, sub, "50-vdisktab.conf");
	if (!f) {
		ret = -EIO;
		goto out;
	}
	fprintf(f, "# Generated by vdisk-generator from %s:%u\n", tabfile, e->line);
	fprintf(f, "[Unit]\nSourcePath=%s\nDescription=vdisk device %s (",
		tabfile, e->name);
	put_text(f, e->image);
	fprintf(f, ")\nRequiresMountsFor=");
	put_quoted(f, e->image);
	fputc('\n', f);
	switch (tier) {
	case TIER_EARLY:
		fprintf(f, "Wants=local-fs-pre.target\n"
			   "Before=local-fs-pre.target local-fs.target\n");
		break;
	case TIER_LOCAL:
		fprintf(f, "Before=local-fs.target\n");
		break;
	case TIER_REMOTE:
		fprintf(f, "Wants=network-online.target\n"
			   "After=network-online.target remote-fs-pre.target\n"
			   "Before=remote-fs.target\n");
		break;
	}
	if (strcmp(tabfile, VDISKTAB_DEFAULT)) {
		char *env;

		if (asprintf(&env, "VDISKTAB=%s", tabfile) < 0) {
			fclose(f);
			goto out;
		}
		fprintf(f, "\n[Service]\nEnvironment=");
		put_quoted(f, env);
		fputc('\n', f);
		free(env);
	}
	if (fclose(f) == EOF) {
		ret = -errno;
		errf(CMD, sub, "%s", strerror(errno));
		goto out;
	}

	/* Mounts that may sit on this device stop before it is detached. */
	if (tier != TIER_EARLY) {
		for (i = 0; i < ft->n; i++) {
			struct mnt *m = &ft->v[i];

			if (!on_block_device(m) || holds(m->dir, image) ||
			    m->net != (tier == TIER_REMOTE))
				continue;
			if (add_after(m, unit))
				goto out;
		}
	}
	ret = 0;
	if (!e->noauto)
		ret = link_wants(dest, tier == TIER_REMOTE ? "remote-fs.target" :
				 "local-fs.target", unit);
out:
	if (ret == -ENOMEM)
		errf(CMD, e->where, "%s", strerror(ENOMEM));
	free(image);
	free(inst);
	free(unit);
	free(sub);
	return ret;
}

static int write_mount_dropins(const char *dest, struct fstab *ft)
{
	int ret = 0;
	size_t i;

	for (i = 0; i < ft->n; i++) {
		struct mnt *m = &ft->v[i];
		char *sub;
		FILE *f;

		if (!m->after)
			continue;
		if (asprintf(&sub, "%s.mount.d", m->unit) < 0)
			return -ENOMEM;
		f = create(dest, sub, "50-vdisk.conf");
		free(sub);
		if (!f) {
			ret = -EIO;
			continue;
		}
		fprintf(f, "# Generated by vdisk-generator: %s may be on a vdisk\n"
			   "# device; unmount it before that device is detached.\n"
			   "[Unit]\n%s", m->dir, m->after);
		if (fclose(f) == EOF)
			ret = -EIO;
	}
	return ret;
}

int generator_main(int argc, char **argv)
{
	const char *dest, *tabfile = tab_default();
	struct fstab ft;
	struct tab t;
	int ret = 0;
	size_t i;

	if (argc != 2 && argc != 4) {
		fprintf(stderr, "Usage: %s NORMAL_DIR [EARLY_DIR LATE_DIR]\n"
				"A systemd generator for /etc/vdisktab; see vdisktab(5).\n",
			argv[0]);
		return EXIT_USAGE;
	}
	dest = argv[1];
	if (access(tabfile, F_OK) < 0 && errno == ENOENT)
		return 0;
	if (tab_read(CMD, tabfile, &t, NULL, 0))
		return EXIT_OPERATION;
	if (fstab_read(&ft) < 0) {
		errf(CMD, "/etc/fstab", "%s", strerror(errno));
		memset(&ft, 0, sizeof(ft));
		ret = EXIT_OPERATION;
	}
	for (i = 0; i < t.n; i++)
		if (generate_entry(dest, tabfile, &ft, &t.v[i]))
			ret = EXIT_OPERATION;
	if (write_mount_dropins(dest, &ft))
		ret = EXIT_OPERATION;
	if (t.errors)
		ret = EXIT_OPERATION;
	fstab_free(&ft);
	tab_free(&t);
	return ret;
}
