// SPDX-License-Identifier: GPL-2.0
/*
 * Backing chains, resolved here because the kernel never opens paths: read
 * each qcow2 header with the format core (header only), find the file it
 * names the way qemu-img does, open it with the caller's rights, probe it,
 * and go on until a layer names nothing or is raw.  The kernel re-checks
 * the result (names, formats, identities) against its own parse, so this
 * file is about clear messages and qemu-img's resolution rules.
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "vdiskctl.h"

Q2_PRINTF(4, 5)
static int fail(char *err, size_t len, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return ret;
}

int image_probe_qcow2(int fd)
{
	unsigned char magic[Q2_MAGIC_LEN];
	ssize_t n;

	do
		n = pread(fd, magic, sizeof(magic), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* Shorter than the magic: only raw can be that small. */
	return n == (ssize_t)sizeof(magic) && q2_probe(magic, sizeof(magic));
}

int q2_header_open(struct q2_header *h, int fd, char *err, size_t len)
{
	struct q2_open_args a = {
		.ops = &q2u_posix_ops,
		.file = &h->file,
		.flags = Q2_OPEN_HEADER_ONLY,
	};
	char msg[Q2_ERR_MAX] = "";
	int ret;

	h->file.fd = fd;
	h->img = NULL;
	a.err = msg;
	a.err_len = sizeof(msg);
	ret = q2_open(&a, &h->img);
	if (ret) {
		h->img = NULL;
		return fail(err, len, ret, "%s", msg[0] ? msg : strerror(-ret));
	}
	return 0;
}

void q2_header_close(struct q2_header *h)
{
	if (h->img)
		q2_close(h->img);
	h->img = NULL;
}

/* O_NONBLOCK only kept a FIFO from hanging the open; reads should block. */
void clear_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/*
 * Names qemu would hand to a protocol driver rather than open as files:
 * "json:{...}", URLs, and qemu's own rule (a ':' before the first '/',
 * as in "nbd:host:10809").  None of them is a file the kernel could use.
 */
static bool is_protocol(const char *name)
{
	return !strncmp(name, "json:", 5) || strstr(name, "://") ||
	       name[strcspn(name, ":/")] == ':';
}

/* "file:" is qemu's explicit spelling of a plain file name. */
static const char *strip_file_protocol(const char *name)
{
	return strncmp(name, "file:", 5) ? name : name + 5;
}

/*
 * qemu-img's path_combine(): an absolute name as it is, a relative one
 * against the directory of the image that names it (not the cwd).  That
 * image's path is the one it was opened by, so a symlinked top image
 * resolves next to the link, as in qemu.  The directory is made absolute
 * so that messages name the file unambiguously.
 */
static char *combine(const char *image, const char *name)
{
	char *copy, *parent, *dir, *out = NULL;

	if (name[0] == '/')
		return strdup(name);
	copy = strdup(image);
	if (!copy)
		return NULL;
	parent = dirname(copy);
	dir = realpath(parent, NULL);
	if (!dir)
		dir = strdup(parent);
	if (dir && asprintf(&out, "%s/%s", strcmp(dir, "/") ? dir : "", name) < 0)
		out = NULL;
	free(dir);
	free(copy);
	return out;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/*
 * The layer's PATH for the kernel: its canonical path, unless the file is
 * a symlink to a differently named file.  The kernel matches the final
 * component against the name recorded above, so keep that component and
 * canonicalise only the directory.
 */
static char *canonical(const char *file)
{
	char *real = realpath(file, NULL), *copy, *dir, *out = NULL;

	if (real && !strcmp(base_name(real), base_name(file)))
		return real;
	free(real);
	copy = strdup(file);
	if (!copy)
		return NULL;
	dir = realpath(dirname(copy), NULL);
	if (dir && asprintf(&out, "%s/%s", strcmp(dir, "/") ? dir : "",
			    base_name(file)) < 0)
		out = NULL;
	free(dir);
	free(copy);
	return out ? out : strdup(file);
}

static uint32_t format_by_name(const char *name)
{
	if (!strcmp(name, "raw"))
		return VDISK_FORMAT_RAW;
	if (!strcmp(name, "qcow2"))
		return VDISK_FORMAT_QCOW2;
	return VDISK_FORMAT_AUTO;	/* one vdisk cannot read */
}

/* The backing file and backing format that the header on @fd records. */
static int read_names(int fd, const char *image, char **name, char **fmt,
		      char *err, size_t len)
{
	struct q2_header h;
	struct q2_info in;
	char msg[Q2_ERR_MAX];
	int ret;

	*name = *fmt = NULL;
	ret = q2_header_open(&h, fd, msg, sizeof(msg));
	if (ret && image)
		return fail(err, len, ret, "backing file %s: %s", image, msg);
	if (ret)
		return fail(err, len, ret, "%s", msg);
	q2_get_info(h.img, &in);
	if (in.backing_file)
		*name = strdup(in.backing_file);
	if (in.backing_format)
		*fmt = strdup(in.backing_format);
	q2_header_close(&h);
	if ((in.backing_file && !*name) || (in.backing_format && !*fmt)) {
		free(*name);
		free(*fmt);
		*name = *fmt = NULL;
		return fail(err, len, -ENOMEM, "%s", strerror(ENOMEM));
	}
	return 0;
}

void chain_close(struct vdisk_chain *c)
{
	unsigned int i;

	for (i = 0; i < c->nr; i++) {
		if (c->layer[i].fd >= 0)
			close(c->layer[i].fd);
		free(c->layer[i].path);
		free(c->layer[i].file);
	}
	c->nr = 0;
}

/*
 * Open @file read-only if it is a regular file or a block device (the
 * kernel takes no other layer): the descriptor, -EISDIR or -EINVAL for
 * anything else, which is not opened, or -errno.
 */
static int open_layer_file(const char *file)
{
	char proc[64];
	struct stat st;
	int pfd, fd;

	pfd = open(file, O_PATH | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	if (fstat(pfd, &st)) {
		fd = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		fd = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	/* Without /proc (early boot, a chroot): the name again. */
	if (fd < 0 && errno == ENOENT)
		fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		fd = -errno;
out:
	close(pfd);
	return fd;
}

/*
 * Open the layer @name (recorded by @image) names, below the @c->nr layers
 * already open.  @ids holds the (st_dev, st_ino) of the top and of each
 * open layer, to refuse loops before the kernel sees them.
 */
static int open_layer(struct vdisk_chain *c, dev_t ids[][2], const char *image,
		      const char *name, const char *fmt, char *err, size_t len)
{
	struct vdisk_layer *l = &c->layer[c->nr];
	uint32_t want = fmt ? format_by_name(fmt) : VDISK_FORMAT_AUTO;
	const char *f = strip_file_protocol(name);
	struct stat st;
	unsigned int i;
	int ret;

	if (is_protocol(f))
		return fail(err, len, -EINVAL,
			    "backing file '%s' of %s is not a local file name (json: and protocol names are not supported)",
			    name, image);
	if (fmt && want == VDISK_FORMAT_AUTO)
		return fail(err, len, -EOPNOTSUPP,
			    "%s says its backing file '%s' is %s, which vdisk cannot read",
			    image, name, fmt);
	if (c->nr == VDISK_BACKING_MAX)
		return fail(err, len, -ELOOP,
			    "backing chain is deeper than %d layers",
			    VDISK_BACKING_MAX);

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->file = combine(image, f);
	if (!l->file)
		return fail(err, len, -ENOMEM, "%s", strerror(ENOMEM));
	c->nr++;	/* from here on chain_close() cleans up */
	/*
	 * Same rights as the caller, read-only: layers are never written.
	 * The name comes from an image's header: it is resolved once (O_PATH,
	 * which opens no device), its type checked, and only then opened for
	 * reading through /proc/self/fd, so that a header naming
	 * /dev/watchdog or a tape drive (or a symlink swapped to one) opens
	 * nothing but regular files and block devices.
	 */
	l->fd = open_layer_file(l->file);
	if (l->fd < 0)
		return fail(err, len, l->fd, "backing file %s: %s", l->file,
			    l->fd == -EISDIR ? "is a directory" :
			    l->fd == -EINVAL ? "is not a regular file or block device" :
			    strerror(-l->fd));
	if (fstat(l->fd, &st))
		return fail(err, len, -errno, "backing file %s: %s", l->file,
			    strerror(errno));
	clear_nonblock(l->fd);
	for (i = 0; i < c->nr; i++)
		if (ids[i][0] == st.st_dev && ids[i][1] == st.st_ino)
			return fail(err, len, -ELOOP,
				    "backing chain loops: %s is also layer %u",
				    l->file, i);
	ids[c->nr][0] = st.st_dev;
	ids[c->nr][1] = st.st_ino;

	ret = image_probe_qcow2(l->fd);
	if (ret < 0)
		return fail(err, len, ret, "backing file %s: %s", l->file,
			    strerror(-ret));
	l->format = ret ? VDISK_FORMAT_QCOW2 : VDISK_FORMAT_RAW;
	if (want != VDISK_FORMAT_AUTO && want != l->format)
		return fail(err, len, -EINVAL, "backing file %s is %s, but %s says %s",
			    l->file, format_name(l->format), image, fmt);
	l->path = canonical(l->file);
	if (!l->path)
		return fail(err, len, -ENOMEM, "%s", strerror(ENOMEM));
	if (strlen(l->path) >= VDISK_PATH_MAX)
		return fail(err, len, -ENAMETOOLONG, "backing file %s: %s",
			    l->file, strerror(ENAMETOOLONG));
	return 0;
}

int chain_resolve(const char *file, int fd, struct vdisk_chain *c, char *err,
		  size_t len)
{
	dev_t ids[VDISK_BACKING_MAX + 1][2];
	const char *image = file;
	char *name, *fmt;
	struct stat st;
	int ret;

	c->nr = 0;
	if (fstat(fd, &st))
		return fail(err, len, -errno, "%s", strerror(errno));
	ids[0][0] = st.st_dev;
	ids[0][1] = st.st_ino;
	for (;;) {
		ret = read_names(fd, c->nr ? image : NULL, &name, &fmt, err, len);
		if (ret || !name)
			break;
		ret = open_layer(c, ids, image, name, fmt, err, len);
		free(name);
		free(fmt);
		if (ret)
			break;
		if (c->layer[c->nr - 1].format == VDISK_FORMAT_RAW)
			return 0;
		image = c->layer[c->nr - 1].file;
		fd = c->layer[c->nr - 1].fd;
	}
	if (ret)
		chain_close(c);
	return ret;
}
