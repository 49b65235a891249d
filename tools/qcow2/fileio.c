// SPDX-License-Identifier: GPL-2.0
/*
 * File ops for the qcow2 core in userspace, and backing-chain assembly.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q2u.h"

static int posix_pread(void *file, void *buf, size_t len, u64 off)
{
	struct q2u_file *f = file;
	u8 *p = buf;
	ssize_t n;

	while (len) {
		n = pread(f->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;	/* short read */
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static u64 posix_size(void *file)
{
	struct q2u_file *f = file;
	struct stat st;
	u64 bytes;

	if (fstat(f->fd, &st))
		return 0;
	if (S_ISBLK(st.st_mode) && !ioctl(f->fd, BLKGETSIZE64, &bytes))
		return bytes;
	return st.st_size;
}

static int posix_pwrite(void *file, const void *buf, size_t len, u64 off)
{
	struct q2u_file *f = file;
	const u8 *p = buf;
	ssize_t n;

	while (len) {
		n = pwrite(f->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int posix_flush(void *file)
{
	struct q2u_file *f = file;

	return fdatasync(f->fd) ? -errno : 0;
}

static int posix_punch(void *file, u64 off, u64 len)
{
	struct q2u_file *f = file;

	return fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 (off_t)off, (off_t)len) ? -errno : 0;
}

static int posix_grow(void *file, u64 from, u64 size,
		      u64 fill_from __attribute__((unused)))
{
	struct q2u_file *f = file;

	return fallocate(f->fd, 0, (off_t)from, (off_t)(size - from)) ?
	       -errno : 0;
}

const struct q2_file_ops q2u_posix_ops = {
	.pread = posix_pread,
	.size = posix_size,
	.pwrite = posix_pwrite,
	.flush = posix_flush,
	.punch = posix_punch,
	.grow = posix_grow,
};

static int mem_pread(void *file, void *buf, size_t len, u64 off)
{
	const struct q2u_mem *m = file;
	u8 *p = buf;

	if (off > m->size || len > m->size - off)
		return -EIO;
	while (len) {
		size_t n;

		if (off < m->len) {
			n = m->len - off < len ? m->len - off : len;
			memcpy(p, m->data + off, n);
		} else if (m->tile && off >= m->tile_off) {
			u64 t = (off - m->tile_off) % m->tile_len;

			n = m->tile_len - t < len ? m->tile_len - t : len;
			memcpy(p, m->tile + t, n);
		} else {
			u64 stop = m->tile && m->tile_off > off ? m->tile_off : off + len;

			n = stop - off < len ? stop - off : len;
			memset(p, 0, n);
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static u64 mem_size(void *file)
{
	return ((const struct q2u_mem *)file)->size;
}

const struct q2_file_ops q2u_mem_ops = {
	.pread = mem_pread,
	.size = mem_size,
};

int q2u_wmem_init(struct q2u_wmem *m, const void *data, size_t len, size_t max)
{
	memset(m, 0, sizeof(*m));
	m->cap = len ? len : 1;
	m->data = malloc(m->cap);
	if (!m->data)
		return -ENOMEM;
	memcpy(m->data, data, len);
	m->len = len;
	m->max = max;
	return 0;
}

void q2u_wmem_free(struct q2u_wmem *m)
{
	free(m->data);
	m->data = NULL;
}

static int wmem_pread(void *file, void *buf, size_t len, u64 off)
{
	struct q2u_wmem *m = file;

	if (off > m->len || len > m->len - off)
		return -EIO;
	memcpy(buf, m->data + off, len);
	return 0;
}

static int wmem_pwrite(void *file, const void *buf, size_t len, u64 off)
{
	struct q2u_wmem *m = file;

	if (m->fail_writes && !--m->fail_writes)
		return -EIO;
	if (off > m->max || len > m->max - off)
		return -ENOSPC;
	if (off + len > m->cap) {
		size_t cap = m->cap;
		u8 *p;

		while (cap < off + len)
			cap = cap * 2 > m->max ? m->max : cap * 2;
		p = realloc(m->data, cap);
		if (!p)
			return -ENOMEM;
		m->data = p;
		m->cap = cap;
	}
	if (off > m->len)
		memset(m->data + m->len, 0, off - m->len);
	memcpy(m->data + off, buf, len);
	if (off + len > m->len)
		m->len = off + len;
	m->writes++;
	return 0;
}

static int wmem_flush(void *file)
{
	struct q2u_wmem *m = file;

	m->flushes++;
	return 0;
}

static int wmem_punch(void *file, u64 off, u64 len)
{
	struct q2u_wmem *m = file;

	if (off < m->len)
		memset(m->data + off, 0, off + len > m->len ? m->len - off : len);
	m->punched += len;
	return 0;
}

static u64 wmem_size(void *file)
{
	return ((const struct q2u_wmem *)file)->len;
}

const struct q2_file_ops q2u_wmem_ops = {
	.pread = wmem_pread,
	.size = wmem_size,
	.pwrite = wmem_pwrite,
	.flush = wmem_flush,
	.punch = wmem_punch,
};

Q2_PRINTF(3, 4)
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The backing name resolved as QEMU does: relative to the image's directory. */
static char *resolve(const char *image, const char *name)
{
	char *copy, *dir, *out;

	if (name[0] == '/')
		return strdup(name);
	copy = strdup(image);
	if (!copy)
		return NULL;
	dir = dirname(copy);
	if (asprintf(&out, "%s/%s", dir, name) < 0)
		out = NULL;
	free(copy);
	return out;
}

static int open_layer(struct q2u_chain *c, const char *path, int want_fmt,
		      const char *snapshot, u64 cache_bytes, unsigned int flags,
		      char *err, size_t err_len)
{
	unsigned int i = c->nr;
	struct q2_layer *l = &c->layers[i];
	struct q2_open_args a = { 0 };
	char msg[Q2_ERR_MAX];
	struct stat st;
	u8 magic[4];
	bool qcow2;
	int fd, ret;

	if (i >= Q2_CHAIN_MAX)
		return fail(err, err_len, "backing chain deeper than %d",
			    Q2_CHAIN_MAX);
	fd = open(path, ((flags & Q2_OPEN_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return ret;
	}
	c->files[i].fd = fd;
	c->paths[i] = strdup(path);
	c->nr++;
	if (fstat(fd, &st))
		return fail(err, err_len, "%s: cannot stat", path);
	l->id[0] = st.st_dev;
	l->id[1] = st.st_ino;
	l->path = c->paths[i];
	l->ops = &q2u_posix_ops;
	l->file = &c->files[i];
	qcow2 = posix_size(&c->files[i]) >= 4 &&
		!posix_pread(&c->files[i], magic, 4, 0) && q2_probe(magic, 4);
	if (want_fmt == 1)
		qcow2 = false;
	else if (want_fmt == 2 && !qcow2)
		return fail(err, err_len, "%s: not a qcow2 image", path);
	if (!qcow2) {
		if (snapshot)
			return fail(err, err_len, "%s: raw images have no snapshots",
				    path);
		l->raw_size = posix_size(&c->files[i]);
		return 0;
	}
	a.ops = &q2u_posix_ops;
	a.file = &c->files[i];
	a.flags = flags;
	a.barrier = c->barrier;
	a.barrier_ctx = c->barrier_ctx;
	a.snapshot = snapshot;
	a.l2_cache_bytes = cache_bytes;
	a.name = path;
	a.err = msg;
	a.err_len = sizeof(msg);
	ret = q2_open(&a, &l->img);
	if (ret)
		snprintf(err, err_len, "%s: %s", path, msg);
	return ret;
}

int q2u_chain_open(struct q2u_chain *c, const char *top,
		   const char *const *backing, unsigned int nb_backing,
		   const char *snapshot, u64 cache_bytes, char *err,
		   size_t err_len)
{
	memset(c, 0, sizeof(*c));
	return q2u_chain_open_flags(c, top, backing, nb_backing, snapshot,
				    cache_bytes, 0, err, err_len);
}

int q2u_chain_open_flags(struct q2u_chain *c, const char *top,
			 const char *const *backing, unsigned int nb_backing,
			 const char *snapshot, u64 cache_bytes,
			 unsigned int top_flags, char *err, size_t err_len)
{
	void (*barrier)(void *ctx) = c->barrier;
	void *barrier_ctx = c->barrier_ctx;
	struct q2_info info;
	unsigned int i;
	int ret, fmt;
	char *next;

	memset(c, 0, sizeof(*c));
	c->barrier = barrier;
	c->barrier_ctx = barrier_ctx;
	c->chain.layers = c->layers;
	ret = open_layer(c, top, 0, snapshot, cache_bytes, top_flags, err,
			 err_len);
	for (i = 0; !ret && i < nb_backing; i++)
		ret = open_layer(c, backing[i], 0, NULL, cache_bytes, 0, err,
				 err_len);
	/* Automatic resolution from the recorded names, iteratively. */
	while (!ret && !nb_backing && c->layers[c->nr - 1].img) {
		q2_get_info(c->layers[c->nr - 1].img, &info);
		if (!info.backing_file)
			break;
		next = resolve(c->paths[c->nr - 1], info.backing_file);
		if (!next)
			return -ENOMEM;
		fmt = 0;
		if (info.backing_format && !strcmp(info.backing_format, "raw"))
			fmt = 1;
		else if (info.backing_format && !strcmp(info.backing_format, "qcow2"))
			fmt = 2;
		else if (info.backing_format)
			ret = fail(err, err_len, "%s: unsupported backing format %s",
				   next, info.backing_format);
		if (!ret)
			ret = open_layer(c, next, fmt, NULL, cache_bytes, 0, err,
					 err_len);
		free(next);
	}
	c->chain.nr = c->nr;
	if (!ret) {
		char msg[Q2_ERR_MAX];

		ret = q2_chain_check(&c->chain, msg, sizeof(msg));
		if (ret)
			snprintf(err, err_len, "%s", msg);
	}
	if (ret)
		q2u_chain_close(c);
	return ret;
}

int q2u_chain_close_clean(struct q2u_chain *c)
{
	unsigned int i;
	int ret = 0, r;

	for (i = 0; i < c->nr; i++) {
		r = q2_close_clean(c->layers[i].img);
		if (r && !ret)
			ret = r;
		close(c->files[i].fd);
		free(c->paths[i]);
	}
	memset(c, 0, sizeof(*c));
	return ret;
}

void q2u_chain_close(struct q2u_chain *c)
{
	q2u_chain_close_clean(c);
}

int q2u_chain_read(struct q2u_chain *c, void *buf, u64 off, size_t len)
{
	struct q2_chain_extent cx;
	u8 *p = buf;
	int ret;

	while (len) {
		ret = q2_chain_map(&c->chain, off, len, &cx);
		if (ret)
			return ret;
		if (!cx.ext.len || cx.ext.len > len)
			return -EIO;	/* cannot happen: the core's contract */
		switch (cx.ext.type) {
		case Q2_DATA:
			ret = posix_pread(&c->files[cx.layer], p, cx.ext.len,
					  cx.ext.host_off);
			break;
		case Q2_COMPRESSED:
			ret = q2_read_compressed(c->layers[cx.layer].img, &cx.ext,
						 0, p, cx.ext.len);
			break;
		default:
			memset(p, 0, cx.ext.len);
			ret = 0;
			break;
		}
		if (ret)
			return ret;
		p += cx.ext.len;
		off += cx.ext.len;
		len -= cx.ext.len;
	}
	return 0;
}
