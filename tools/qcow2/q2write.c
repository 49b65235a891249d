// SPDX-License-Identifier: GPL-2.0
/*
 * q2write: the qcow2 write path against the judge.  KTAP on stdout.
 *
 * Workload cases: an image of some shape is made with qemu-img/qemu-io;
 * its guest contents (qemu-img convert) become the model; several threads
 * then write, zero, discard, read back and flush through the core
 * (q2_write_begin, a pwrite of the data, q2_write_commit; q2_zero with the
 * leftover written as zero data; q2_flush with an in-place-write barrier)
 * on disjoint byte ranges, the model following.  After a clean close:
 * qemu-img check reports no errors and no leaks, qemu-img convert equals
 * the model, snapshots and backing files are unchanged.
 *
 * Crash cases: the same, single-threaded, over an in-memory file that
 * records every write and flush.  Crash states are materialised: every
 * write up to some completed flush, plus an arbitrary subset, in arbitrary
 * order, of the writes after it, some torn at 512 bytes.  Each must pass
 * qemu-img check without corruption (leaks allowed), be cleaned by
 * qemu-img check -r leaks, and read back (qemu-img convert) every guest
 * write acknowledged before the last completed q2_flush.
 *
 *   q2write [-v] [-k] [-s SEED] [NAME...]   cases whose name contains NAME
 *   -v: log the commands; -k: keep the temporary directory
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "q2u.h"

#define q2_min64(a, b)	((u64)(a) < (u64)(b) ? (u64)(a) : (u64)(b))

static int verbose, keep;
static u64 base_seed = 1;
static char tmpdir[256];
static char fail_msg[512];

Q2_PRINTF(1, 2)
static void failf(const char *fmt, ...)
{
	va_list ap;

	if (fail_msg[0])
		return;
	va_start(ap, fmt);
	vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
	va_end(ap);
}

/* Run a shell command in the temporary directory; its exit status. */
Q2_PRINTF(1, 2)
static int sh(const char *fmt, ...)
{
	char cmd[2048], full[2200];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (verbose)
		fprintf(stderr, "$ %s\n", cmd);
	snprintf(full, sizeof(full), "(%s) >>cmd.log 2>&1", cmd);
	st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static u8 *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	u8 *buf = NULL;
	size_t cap = 0, n;

	*len = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (*len == cap) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap);
		}
		n = fread(buf + *len, 1, cap - *len, f);
		if (!n)
			break;
		*len += n;
	}
	fclose(f);
	return buf;
}

static int spill(const char *path, const u8 *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -1;
	ok = fwrite(buf, 1, len, f) == len;
	return (fclose(f) || !ok) ? -1 : 0;
}

/* The guest contents as qemu-img reads them. */
static u8 *guest_of(const char *img, const char *opts, size_t *len)
{
	u8 *raw;

	unlink("guest.raw");
	if (sh("qemu-img convert -O raw %s %s guest.raw", opts ? opts : "", img)) {
		failf("qemu-img convert %s failed", img);
		return NULL;
	}
	raw = slurp("guest.raw", len);
	unlink("guest.raw");
	return raw;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static u64 rnd(u64 *s)
{
	u64 z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static u64 rnd_below(u64 *s, u64 n)
{
	return n ? rnd(s) % n : 0;
}

static void fill(u64 *s, u8 *buf, size_t len)
{
	size_t i;
	u64 v = 0;

	/* Compressible runs and noise, so the pattern shows misplacement. */
	for (i = 0; i < len; i++) {
		if (!(i & 7))
			v = rnd(s);
		buf[i] = (i & 256) ? (u8)(v >> ((i & 7) * 8)) : (u8)(i >> 9) ^ (u8)v;
	}
}

/* First differing byte, or -1. */
static long long first_diff(const u8 *a, const u8 *b, size_t len)
{
	size_t i;

	if (!memcmp(a, b, len))
		return -1;
	for (i = 0; i < len && a[i] == b[i]; i++)
		;
	return (long long)i;
}

/* ---- shapes ------------------------------------------------------------- */

enum base {
	B_PLAIN,	/* qemu-io writes, zeroes, discards */
	B_EMPTY,	/* freshly created */
	B_CHAIN,	/* top over mid (qcow2) over base (raw) */
	B_COMP,		/* qemu-img convert -c */
	B_SNAP,		/* internal snapshots */
	B_PREALLOC,	/* preallocated and zero-allocated clusters */
	B_BITMAP,	/* a persistent bitmap: autoclear bit set */
	B_LAZY,		/* lazy_refcounts=on */
	B_NEARFULL,	/* prefill_kib written: near the refcount coverage */
	B_PAST4G,	/* data past 4 GiB of file: run_past_4g() */
};

struct shape {
	const char *name;
	u32 cs;
	u32 rbits;
	int v;			/* 2 or 3 */
	bool extl2;
	enum base base;
	u32 mib;		/* virtual size */
	u32 grow_mib;		/* resize to this halfway (0: no) */
	int threads;
	int ops;
	u32 maxlen;
	bool unaligned;
	u32 cache;		/* L2 cache bytes (0: default) */
	bool crash;
	int crash_points;
	bool rtgrow;		/* the refcount table must have moved */
	u32 prefill_kib;	/* B_NEARFULL: KiB written at the start */
};

/* Refcount table offset and L1 size from a header. */
static void hdr_fields(const u8 *h, u64 *rt, u32 *l1)
{
	*rt = q2_be64(h + 48);
	*l1 = q2_be32(h + 36);
}

static int hdr_of(const char *path, u64 *rt, u32 *l1)
{
	u8 h[72];
	FILE *f = fopen(path, "rb");
	int ok = f && fread(h, 1, sizeof(h), f) == sizeof(h);

	if (f)
		fclose(f);
	if (!ok)
		return -1;
	hdr_fields(h, rt, l1);
	return 0;
}

static const char *compat(const struct shape *sh_)
{
	return sh_->v == 2 ? "0.10" : "1.1";
}

static int make_image(const struct shape *s)
{
	char o[256];
	u64 cs = s->cs;
	int r = 0;

	snprintf(o, sizeof(o), "cluster_size=%u,refcount_bits=%u,compat=%s%s%s",
		 s->cs, s->rbits, compat(s), s->extl2 ? ",extended_l2=on" : "",
		 s->base == B_LAZY ? ",lazy_refcounts=on" : "");
	switch (s->base) {
	case B_CHAIN:
		r |= sh("head -c %uM /dev/urandom > base.raw", s->mib);
		r |= sh("qemu-img create -q -f qcow2 -o %s -b base.raw -F raw mid.qcow2 %uM",
			o, s->mib);
		r |= sh("qemu-io -f qcow2 -c 'write -P 0x21 %llu %llu' -c 'write -z %llu %llu' mid.qcow2",
			cs * 3 + 512, cs * 5, cs * 20, cs * 4);
		r |= sh("qemu-img create -q -f qcow2 -o %s -b mid.qcow2 -F qcow2 top.qcow2 %uM",
			o, s->mib);
		r |= sh("qemu-io -f qcow2 -c 'write -P 0x23 %llu %llu' top.qcow2",
			cs * 4, cs * 2);
		break;
	case B_COMP:
		r |= sh("python3 -c \"import random,sys; r=random.Random(7); "
			"b=bytearray(); n=%u<<20\n"
			"while len(b)<n: k=r.randrange(3); b+= bytes(r.randrange(1,9000)) if k==0 "
			"else (r.randbytes(r.randrange(1,3000)) if k==1 else bytes([r.randrange(256)])*r.randrange(1,5000))\n"
			"sys.stdout.buffer.write(bytes(b[:n]))\" > src.raw", s->mib);
		r |= sh("qemu-img convert -c -O qcow2 -o %s src.raw top.qcow2", o);
		break;
	default:
		r |= sh("qemu-img create -q -f qcow2 -o %s%s top.qcow2 %uM", o,
			s->base == B_PREALLOC ? ",preallocation=metadata" : "",
			s->mib);
		break;
	}
	if (s->base == B_PLAIN || s->base == B_SNAP || s->base == B_BITMAP ||
	    s->base == B_LAZY || s->base == B_PREALLOC)
		r |= sh("qemu-io -f qcow2 -c 'write -P 0x11 0 %llu' -c 'write -P 0x12 %llu %llu' "
			"-c 'write -P 0x13 %llu %llu' top.qcow2",
			cs * 2 + 1024, cs * 9, cs * 6, (u64)s->mib << 19, cs * 3);
	if (s->base == B_PLAIN && s->v == 3)
		r |= sh("qemu-io -f qcow2 -c 'write -z %llu %llu' -c 'discard %llu %llu' top.qcow2",
			cs * 10, cs * 2, cs * 12, cs * 2);
	if (s->base == B_PREALLOC)
		r |= sh("qemu-io -f qcow2 -c 'write -z %llu %llu' -c 'write -P 0x14 %llu %llu' top.qcow2",
			cs * 9, cs * 4, cs * 30, cs * 8);
	if (s->base == B_SNAP) {
		/* Every L2 table shared with the snapshot. */
		r |= sh("qemu-io -f qcow2 -c 'write -P 0x10 %llu %llu' top.qcow2",
			cs * 16, ((u64)s->mib << 20) - cs * 16);
		r |= sh("qemu-img snapshot -c s1 top.qcow2");
		r |= sh("qemu-io -f qcow2 -c 'write -P 0x15 %llu %llu' -c 'write -z %llu %llu' top.qcow2",
			cs, cs * 4, cs * 8, cs);
		r |= sh("qemu-img snapshot -c s2 top.qcow2");
	}
	if (s->base == B_BITMAP)
		r |= sh("qemu-img bitmap --add top.qcow2 b0");
	if (s->base == B_NEARFULL)
		r |= sh("qemu-io -f qcow2 -c 'write -P 0x16 0 %uk' top.qcow2",
			s->prefill_kib);
	if (r)
		failf("making the image failed (see cmd.log)");
	return r ? -1 : 0;
}

/* ---- the concurrent workload -------------------------------------------- */

#define MAX_THREADS	8

struct wl {
	const struct shape *s;
	struct q2u_chain c;
	struct q2_image *img;
	int fd;
	u64 size;
	u32 cs, gran;
	bool backing;
	u8 *model;
	u8 *zeros;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	u64 busy_a[MAX_THREADS], busy_b[MAX_THREADS];
	pthread_rwlock_t inplace;
	pthread_barrier_t phase;
	int failed;
	unsigned long n_write, n_zero, n_discard, n_read, n_flush, n_inplace,
		      n_alloc, n_barrier;
};

struct worker {
	struct wl *w;
	int id;
	u64 seed;
};

static void wl_barrier(void *ctx)
{
	struct wl *w = ctx;

	/* Every in-place write planned before now has completed. */
	pthread_rwlock_wrlock(&w->inplace);
	w->n_barrier++;
	pthread_rwlock_unlock(&w->inplace);
}

static int pwrite_all(int fd, const u8 *p, u64 len, u64 off)
{
	ssize_t n;

	while (len) {
		n = pwrite(fd, p, len, (off_t)off);
		if (n <= 0)
			return -EIO;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int wl_write(struct wl *w, u64 off, const u8 *buf, u64 len)
{
	struct q2_write pw;
	int ret;

	while (len) {
		pthread_rwlock_rdlock(&w->inplace);
		ret = q2_write_begin(w->img, &w->c.chain, off, len, &pw);
		if (!ret) {
			if (!pw.len || pw.len > len)
				ret = -ERANGE;
			else
				ret = pwrite_all(w->fd, buf, pw.len, pw.host_off);
			__atomic_add_fetch(pw.commit ? &w->n_alloc : &w->n_inplace,
					   1, __ATOMIC_RELAXED);
			ret = q2_write_commit(w->img, &pw, ret);
		}
		pthread_rwlock_unlock(&w->inplace);
		if (ret)
			return ret;
		off += pw.len;
		buf += pw.len;
		len -= pw.len;
	}
	return 0;
}

/* Zero through q2_zero, writing what it leaves as zero data. */
static int zero_range(struct q2_image *img, const struct q2_chain *chain,
		      u64 off, u64 len, unsigned int flags,
		      int (*wr)(void *ctx, u64 off, const u8 *buf, u64 len),
		      void *ctx, const u8 *zeros)
{
	u64 end = off + len, done, g = q2_zero_granule(img), wend;
	int ret;

	while (off < end) {
		ret = q2_zero(img, chain, off, end - off, flags, &done);
		if (ret)
			return ret;
		if (done < off || done > end)
			return -ERANGE;
		if (done == end)
			break;
		wend = done / g * g + g;
		if (wend > end)
			wend = end;
		ret = wr(ctx, done, zeros, wend - done);
		if (ret)
			return ret;
		off = wend;
	}
	return 0;
}

static int wl_wr(void *ctx, u64 off, const u8 *buf, u64 len)
{
	return wl_write(ctx, off, buf, len);
}

/* What a discard leaves: whole clusters read zeros unless v2 + backing. */
static void discard_model(u8 *model, u64 size, u32 cs, int v, bool backing,
			  u64 off, u64 len)
{
	u64 end = off + len, c;

	if (v == 2 && backing)
		return;
	for (c = off / cs * cs; c < end; c += cs) {
		u64 ce = c + cs;

		if (c >= off && (ce <= end || (end == size && ce > size)))
			memset(model + c, 0, (ce > size ? size : ce) - c);
	}
}

static void range_lock(struct wl *w, int id, u64 a, u64 b)
{
	int i;
	bool clash;

	pthread_mutex_lock(&w->lock);
	do {
		clash = false;
		for (i = 0; i < MAX_THREADS; i++)
			if (i != id && w->busy_b[i] > w->busy_a[i] &&
			    a < w->busy_b[i] && w->busy_a[i] < b)
				clash = true;
		if (clash)
			pthread_cond_wait(&w->cond, &w->lock);
	} while (clash);
	w->busy_a[id] = a;
	w->busy_b[id] = b;
	pthread_mutex_unlock(&w->lock);
}

static void range_unlock(struct wl *w, int id)
{
	pthread_mutex_lock(&w->lock);
	w->busy_a[id] = w->busy_b[id] = 0;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* A range: often in a hot spot, often cluster aligned, sectors or bytes. */
static void pick_range(struct wl *w, u64 *s, u64 *off, u64 *len)
{
	u64 unit = w->s->unaligned ? 1 : 512, size = w->size, max = w->s->maxlen;
	u64 r = rnd_below(s, 8);

	if (r < 3) {
		u64 hot = q2_min64(size, (u64)w->cs * 8);

		*off = rnd_below(s, hot / unit) * unit;
	} else {
		*off = rnd_below(s, size / unit) * unit;
	}
	if (r == 3)
		*off = *off / w->cs * w->cs;
	*len = (rnd_below(s, max / unit) + 1) * unit;
	if (rnd_below(s, 4) == 0)
		*len = (rnd_below(s, 3) + 1) * (u64)w->cs;
	if (*off >= size)
		*off = size - unit;
	if (*len > size - *off)
		*len = size - *off;
}

static void *worker_fn(void *arg)
{
	struct worker *k = arg;
	struct wl *w = k->w;
	u8 *buf = malloc(w->s->maxlen + 3 * (size_t)w->cs), *rb;
	int i, ret = 0, ops = w->s->ops / w->s->threads;

	rb = malloc(w->s->maxlen + 3 * (size_t)w->cs);
	for (i = 0; i < ops && !ret && !w->failed; i++) {
		u64 op = rnd_below(&k->seed, 100), off, len;
		unsigned int flags;

		if (w->s->grow_mib && i == ops / 2) {
			/* Quiesce, grow, go on over the larger disk. */
			if (pthread_barrier_wait(&w->phase) ==
			    PTHREAD_BARRIER_SERIAL_THREAD) {
				u64 nsize = (u64)w->s->grow_mib << 20;

				ret = q2_resize(w->img, nsize);
				if (ret) {
					failf("q2_resize: %d", ret);
					w->failed = 1;
				}
				w->model = realloc(w->model, nsize);
				memset(w->model + w->size, 0, nsize - w->size);
				w->size = nsize;
			}
			pthread_barrier_wait(&w->phase);
		}
		if (op < 5) {
			ret = q2_flush(w->img);
			__atomic_add_fetch(&w->n_flush, 1, __ATOMIC_RELAXED);
			if (ret)
				failf("q2_flush: %d", ret);
			continue;
		}
		pick_range(w, &k->seed, &off, &len);
		range_lock(w, k->id, off, off + len);
		if (op < 55) {
			fill(&k->seed, buf, len);
			ret = wl_write(w, off, buf, len);
			if (!ret)
				memcpy(w->model + off, buf, len);
			else
				failf("write %llu+%llu: %d", off, len, ret);
			__atomic_add_fetch(&w->n_write, 1, __ATOMIC_RELAXED);
		} else if (op < 70) {
			flags = rnd_below(&k->seed, 2) ? Q2_ZERO_MAY_UNMAP : 0;
			ret = zero_range(w->img, &w->c.chain, off, len, flags,
					 wl_wr, w, w->zeros);
			if (!ret)
				memset(w->model + off, 0, len);
			else
				failf("zero %llu+%llu: %d", off, len, ret);
			__atomic_add_fetch(&w->n_zero, 1, __ATOMIC_RELAXED);
		} else if (op < 80) {
			u64 done;

			ret = q2_zero(w->img, &w->c.chain, off, len, Q2_DISCARD,
				      &done);
			if (!ret && done != off + len)
				ret = -ERANGE;
			if (!ret)
				discard_model(w->model, w->size, w->cs, w->s->v,
					      w->backing, off, len);
			else
				failf("discard %llu+%llu: %d", off, len, ret);
			__atomic_add_fetch(&w->n_discard, 1, __ATOMIC_RELAXED);
		} else {
			long long d;

			ret = q2u_chain_read(&w->c, rb, off, len);
			if (ret)
				failf("read %llu+%llu: %d", off, len, ret);
			else if ((d = first_diff(rb, w->model + off, len)) >= 0) {
				failf("read back differs at %llu (read %llu+%llu)",
				      off + d, off, len);
				ret = -1;
			}
			__atomic_add_fetch(&w->n_read, 1, __ATOMIC_RELAXED);
		}
		range_unlock(w, k->id);
	}
	if (ret)
		w->failed = 1;
	if (w->s->grow_mib && i < ops / 2 + 1) {
		/* Failed before the resize: do not leave the others waiting. */
		w->failed = 1;
	}
	free(buf);
	free(rb);
	return NULL;
}

static int check_clean(const char *img)
{
	int r = sh("qemu-img check %s", img);

	if (r) {
		failf("qemu-img check %s: exit %d (%s)", img, r,
		      r == 3 ? "leaks" : r == 2 ? "corruption" : "error");
		sh("qemu-img check %s >check.out 2>&1; true", img);
	}
	return r;
}

static int run_workload(const struct shape *s, u64 seed)
{
	struct worker k[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	u8 *snap_before[2] = { NULL, NULL }, *after, *mid = NULL, *base = NULL;
	u8 *mid2, *base2;
	size_t slen[2], len, mlen = 0, blen = 0, l2;
	char err[512];
	struct stat st;
	struct wl w;
	int i, ret;
	u64 blocks_before = 0, rt0, rt1;
	u32 l10, l11;

	memset(&w, 0, sizeof(w));
	if (make_image(s))
		return -1;
	w.s = s;
	w.model = guest_of("top.qcow2", NULL, &len);
	if (!w.model || hdr_of("top.qcow2", &rt0, &l10))
		return -1;
	w.size = len;
	if (s->base == B_SNAP) {
		snap_before[0] = guest_of("top.qcow2", "-l snapshot.name=s1", &slen[0]);
		snap_before[1] = guest_of("top.qcow2", "-l snapshot.name=s2", &slen[1]);
	}
	if (s->base == B_CHAIN) {
		mid = slurp("mid.qcow2", &mlen);
		base = slurp("base.raw", &blen);
	}
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	pthread_rwlock_init(&w.inplace, NULL);
	pthread_barrier_init(&w.phase, NULL, s->threads);
	w.c.barrier = wl_barrier;
	w.c.barrier_ctx = &w;
	ret = q2u_chain_open_flags(&w.c, "top.qcow2", NULL, 0, NULL, s->cache,
				   Q2_OPEN_WRITE, err, sizeof(err));
	if (ret) {
		failf("open: %s", err);
		return -1;
	}
	w.img = w.c.layers[0].img;
	w.fd = w.c.files[0].fd;
	w.cs = q2_cluster_size(w.img);
	w.gran = q2_zero_granule(w.img);
	w.backing = w.c.nr > 1;
	w.zeros = calloc(1, s->maxlen + 3 * (size_t)w.cs);
	if (w.size != (q2_virtual_size(w.img) & ~511ULL)) {
		failf("model size %llu, image %llu", w.size, q2_virtual_size(w.img));
		return -1;
	}
	for (i = 0; i < s->threads; i++) {
		k[i].w = &w;
		k[i].id = i;
		k[i].seed = seed * 1000003 + i;
		pthread_create(&tid[i], NULL, worker_fn, &k[i]);
	}
	for (i = 0; i < s->threads; i++)
		pthread_join(tid[i], NULL);
	ret = q2u_chain_close_clean(&w.c);
	if (ret)
		failf("close: %d", ret);
	if (verbose)
		fprintf(stderr, "  %lu writes (%lu in place, %lu allocating), %lu zero, %lu discard, %lu read, %lu flush, %lu barriers\n",
			w.n_write, w.n_inplace, w.n_alloc, w.n_zero, w.n_discard,
			w.n_read, w.n_flush, w.n_barrier);
	if (!w.failed && !ret && !hdr_of("top.qcow2", &rt1, &l11)) {
		if (s->rtgrow && rt1 == rt0)
			failf("the refcount table did not grow");
		if (s->grow_mib && s->cs == 512 && l11 <= l10)
			failf("the L1 table did not grow");
	}
	if (!w.failed && !ret && s->base == B_BITMAP) {
		/*
		 * Clearing the bitmaps autoclear bit (the spec's rule for a
		 * program without bitmap support) orphans the bitmap clusters:
		 * QEMU itself then asks for qemu-img check -r.  Exactly leaks.
		 */
		if (sh("qemu-img check top.qcow2") != 3)
			failf("expected the bitmap clusters to leak");
		else if (sh("qemu-img check -r leaks top.qcow2"))
			failf("qemu-img check -r leaks did not clean the image");
	}
	if (!w.failed && !ret && !fail_msg[0] && !check_clean("top.qcow2")) {
		after = guest_of("top.qcow2", NULL, &l2);
		if (after && (l2 != w.size || first_diff(after, w.model, l2) >= 0))
			failf("qemu-img convert differs from the model at %lld",
			      l2 != w.size ? -2LL : first_diff(after, w.model, l2));
		free(after);
		for (i = 0; i < 2 && snap_before[i]; i++) {
			after = guest_of("top.qcow2", i ? "-l snapshot.name=s2" :
						     "-l snapshot.name=s1", &l2);
			if (after && (l2 != slen[i] ||
				      memcmp(after, snap_before[i], l2)))
				failf("snapshot s%d changed", i + 1);
			free(after);
		}
		if (mid) {
			mid2 = slurp("mid.qcow2", &l2);
			if (l2 != mlen || memcmp(mid, mid2, l2))
				failf("the backing image changed");
			free(mid2);
			base2 = slurp("base.raw", &l2);
			if (l2 != blen || memcmp(base, base2, l2))
				failf("the raw base changed");
			free(base2);
		}
	}
	/* (Tiny clusters free less than a page each: tmpfs keeps them.) */
	if (!fail_msg[0] && s->base == B_PLAIN && s->cs >= 4096 &&
	    !stat("top.qcow2", &st)) {
		/* Discard everything: the file must become sparse. */
		struct q2u_chain c = { 0 };
		u64 done;

		blocks_before = st.st_blocks;
		ret = q2u_chain_open_flags(&c, "top.qcow2", NULL, 0, NULL, 0,
					   Q2_OPEN_WRITE, err, sizeof(err));
		if (!ret)
			ret = q2_zero(c.layers[0].img, &c.chain, 0, w.size,
				      Q2_DISCARD, &done);
		if (!ret)
			ret = q2u_chain_close_clean(&c);
		if (ret)
			failf("discard all: %d", ret);
		else if (!check_clean("top.qcow2") && !stat("top.qcow2", &st) &&
			 (u64)st.st_blocks * 2 > blocks_before)
			failf("discarding everything left %llu of %llu blocks",
			      (u64)st.st_blocks, blocks_before);
	}
	free(w.model);
	free(w.zeros);
	free(snap_before[0]);
	free(snap_before[1]);
	free(mid);
	free(base);
	return fail_msg[0] ? -1 : 0;
}

/* ---- crash consistency --------------------------------------------------- */

enum { EV_WRITE, EV_FLUSH, EV_PUNCH };

struct event {
	int type;
	u64 off;
	u64 len;
	u8 *data;
};

/* An in-memory image file that records what reaches it. */
struct rec {
	u8 *data;
	size_t len, cap;
	struct event *ev;
	size_t nev, evcap;
};

static void rec_log(struct rec *r, int type, u64 off, u64 len, const void *d)
{
	struct event *e;

	if (r->nev == r->evcap) {
		r->evcap = r->evcap ? r->evcap * 2 : 1024;
		r->ev = realloc(r->ev, r->evcap * sizeof(*r->ev));
	}
	e = &r->ev[r->nev++];
	e->type = type;
	e->off = off;
	e->len = len;
	e->data = NULL;
	if (d) {
		e->data = malloc(len);
		memcpy(e->data, d, len);
	}
}

static void buf_write(u8 **data, size_t *len, size_t *cap, u64 off,
		      const u8 *src, u64 n)
{
	if (off + n > *cap) {
		size_t c = *cap ? *cap : 1 << 20;

		while (c < off + n)
			c *= 2;
		*data = realloc(*data, c);
		*cap = c;
	}
	if (off > *len)
		memset(*data + *len, 0, off - *len);
	if (src)
		memcpy(*data + off, src, n);
	else
		memset(*data + off, 0, n);
	if (off + n > *len)
		*len = off + n;
}

static int rec_pread(void *file, void *buf, size_t len, u64 off)
{
	struct rec *r = file;

	if (off > r->len || len > r->len - off)
		return -EIO;
	memcpy(buf, r->data + off, len);
	return 0;
}

static int rec_pwrite(void *file, const void *buf, size_t len, u64 off)
{
	struct rec *r = file;

	buf_write(&r->data, &r->len, &r->cap, off, buf, len);
	rec_log(r, EV_WRITE, off, len, buf);
	return 0;
}

static int rec_flush(void *file)
{
	rec_log(file, EV_FLUSH, 0, 0, NULL);
	return 0;
}

static int rec_punch(void *file, u64 off, u64 len)
{
	struct rec *r = file;

	if (off < r->len)
		memset(r->data + off, 0, q2_min64(len, r->len - off));
	rec_log(r, EV_PUNCH, off, len, NULL);
	return 0;
}

static u64 rec_size(void *file)
{
	return ((struct rec *)file)->len;
}

/*
 * Growing the file, as the kernel's grow op does it: [from, size) is
 * allocated (zeros past the old end, what was written stays), then
 * [fill_from, size) is written with zeros, which a crash may keep or
 * lose like any write.  A fill over metadata already written is the
 * refcount-block wipe of 2026-12-07.
 */
static int rec_grow(void *file, u64 from, u64 size, u64 fill_from)
{
	struct rec *r = file;
	u64 zero_from = q2_min64(fill_from, r->len);

	(void)from;
	if (size > zero_from) {
		buf_write(&r->data, &r->len, &r->cap, zero_from, NULL,
			  size - zero_from);
		rec_log(r, EV_WRITE, zero_from, size - zero_from, NULL);
	}
	return 0;
}

static const struct q2_file_ops rec_ops = {
	.pread = rec_pread,
	.size = rec_size,
	.pwrite = rec_pwrite,
	.flush = rec_flush,
	.punch = rec_punch,
	.grow = rec_grow,
};

/* A q2_flush: the model when it was called, the log when it returned. */
struct flushpoint {
	size_t start_ev, end_ev;
	u8 *model;
};

/* A guest operation: the log when it started, the range it changed. */
struct gop {
	size_t start_ev;
	u64 off, len;
};

struct crash {
	const struct shape *s;
	struct rec r;
	struct q2_image *img;
	struct q2_layer layers[Q2_CHAIN_MAX];
	struct q2_chain chain;
	struct q2u_chain lower;
	u64 size;
	u32 cs;
	u8 *model;
	struct flushpoint *fp;
	size_t nfp;
	struct gop *ops;
	size_t nops;
	unsigned long states, leaky;
};

static int cr_write(void *ctx, u64 off, const u8 *buf, u64 len)
{
	struct crash *c = ctx;
	struct q2_write pw;
	int ret;

	while (len) {
		ret = q2_write_begin(c->img, &c->chain, off, len, &pw);
		if (ret)
			return ret;
		ret = rec_pwrite(&c->r, buf, pw.len, pw.host_off);
		ret = q2_write_commit(c->img, &pw, ret);
		if (ret)
			return ret;
		off += pw.len;
		buf += pw.len;
		len -= pw.len;
	}
	return 0;
}

static void cr_flushpoint(struct crash *c, size_t start)
{
	c->fp = realloc(c->fp, (c->nfp + 1) * sizeof(*c->fp));
	c->fp[c->nfp].start_ev = start;
	c->fp[c->nfp].end_ev = c->r.nev;
	c->fp[c->nfp].model = malloc(c->size);
	memcpy(c->fp[c->nfp].model, c->model, c->size);
	c->nfp++;
}

/* Materialise and judge the crash states after flush event @fi. */
static int cr_judge(struct crash *c, const u8 *base, size_t blen, size_t from,
		    size_t to, u64 *seed, int subsets)
{
	u8 *img = NULL, *guest, *dirty;
	size_t ilen, icap, i, n, glen, *pick;
	const struct flushpoint *f = &c->fp[0];
	u64 sec;
	int t, r;

	/* The last q2_flush whose final flush is in the base. */
	for (i = 0; i < c->nfp; i++)
		if (c->fp[i].end_ev && c->fp[i].end_ev - 1 < from)
			f = &c->fp[i];
	dirty = calloc(1, c->size / 512 + 1);
	for (i = 0; i < c->nops; i++) {
		if (c->ops[i].start_ev < f->start_ev || c->ops[i].start_ev >= to)
			continue;
		for (sec = c->ops[i].off / 512;
		     sec * 512 < c->ops[i].off + c->ops[i].len; sec++)
			dirty[sec] = 1;
	}
	pick = malloc((to - from + 1) * sizeof(*pick));
	for (t = 0; t < subsets; t++) {
		ilen = icap = blen;
		img = malloc(icap ? icap : 1);
		memcpy(img, base, blen);
		/* A subset in random order (t == 0: all of them, in order). */
		for (n = 0, i = from; i < to; i++)
			if (c->r.ev[i].type != EV_FLUSH &&
			    (t == 0 || rnd_below(seed, 2)))
				pick[n++] = i;
		for (i = 0; t && n > 1 && i < n; i++) {
			size_t j = rnd_below(seed, n), tmp = pick[i];

			pick[i] = pick[j];
			pick[j] = tmp;
		}
		for (i = 0; i < n; i++) {
			const struct event *e = &c->r.ev[pick[i]];
			bool torn = t && rnd_below(seed, 3) == 0;
			u64 p = e->off, end = e->off + e->len, q;

			for (; p < end; p = q) {
				q = q2_min64(end, (p / 512 + 1) * 512);
				if (torn && rnd_below(seed, 2))
					continue;
				buf_write(&img, &ilen, &icap, p,
					  e->data ? e->data + (p - e->off) : NULL,
					  q - p);
			}
		}
		c->states++;
		if (spill("crash.qcow2", img, ilen)) {
			failf("cannot write crash.qcow2");
			break;
		}
		/*
		 * No corruption (exit 0, or 3 for leaks only); leaks then
		 * repaired by -r leaks, checked clean again; the guest view.
		 */
		unlink("guest.raw");
		r = sh("qemu-img check crash.qcow2; r=$?; "
		       "if [ $r = 3 ]; then qemu-img check -r leaks crash.qcow2 && "
		       "qemu-img check crash.qcow2 || exit 9; fi; [ $r = 0 -o $r = 3 ] || exit $r; "
		       "qemu-img convert -O raw crash.qcow2 guest.raw || exit 8; exit $r");
		if (r == 3)
			c->leaky++;
		if (r && r != 3) {
			sh("cp crash.qcow2 crash-failed.qcow2; qemu-img check crash.qcow2 > check.out 2>&1; true");
			failf("crash state (events %zu..%zu, %zu applied, subset %d): %s (exit %d)",
			      from, to, n, t, r == 9 ? "leaks not repaired" :
			      r == 8 ? "qemu-img convert failed" : "qemu-img check", r);
			break;
		}
		guest = slurp("guest.raw", &glen);
		if (!guest)
			break;
		for (sec = 0; sec < c->size / 512 && glen == c->size; sec++)
			if (!dirty[sec] && memcmp(guest + sec * 512,
						  f->model + sec * 512, 512))
				break;
		free(guest);
		if (glen != c->size || sec < c->size / 512) {
			sh("cp crash.qcow2 crash-failed.qcow2");
			failf("crash state (events %zu..%zu, subset %d): sector %llu lost a flushed write",
			      from, to, t, sec);
			break;
		}
		free(img);
		img = NULL;
	}
	free(img);
	free(pick);
	free(dirty);
	return fail_msg[0] ? -1 : 0;
}

static int run_crash(const struct shape *s, u64 seed)
{
	struct q2_open_args a = { 0 };
	struct crash c;
	char err[Q2_ERR_MAX], e2[512];
	u8 *buf, *zeros, *base = NULL;
	size_t len, blen = 0, bcap = 0, i, *fev = NULL, nf = 0;
	int ret = 0, op, p;

	memset(&c, 0, sizeof(c));
	c.s = s;
	c.model = guest_of("top.qcow2", NULL, &len);
	if (!c.model)
		return -1;
	c.size = len;
	c.r.data = slurp("top.qcow2", &c.r.len);
	c.r.cap = c.r.len;
	a.ops = &rec_ops;
	a.file = &c.r;
	a.flags = Q2_OPEN_WRITE;
	a.l2_cache_bytes = s->cache;
	a.err = err;
	a.err_len = sizeof(err);
	if (q2_open(&a, &c.img)) {
		failf("open: %s", err);
		return -1;
	}
	c.layers[0].img = c.img;
	c.chain.layers = c.layers;
	c.chain.nr = 1;
	if (s->base == B_CHAIN) {
		ret = q2u_chain_open(&c.lower, "mid.qcow2", NULL, 0, NULL, 0, e2,
				     sizeof(e2));
		if (ret) {
			failf("open mid: %s", e2);
			return -1;
		}
		for (i = 0; i < c.lower.nr; i++)
			c.layers[1 + i] = c.lower.layers[i];
		c.chain.nr = 1 + c.lower.nr;
	}
	c.cs = q2_cluster_size(c.img);
	buf = malloc(s->maxlen);
	zeros = calloc(1, s->maxlen);
	/* The initial state is the first flush point. */
	cr_flushpoint(&c, 0);
	c.fp[0].end_ev = 0;
	for (op = 0; op < s->ops && !ret; op++) {
		u64 r = rnd_below(&seed, 100), off, l;
		size_t start = c.r.nev;

		if (r < 12) {
			ret = q2_flush(c.img);
			cr_flushpoint(&c, start);
			continue;
		}
		off = rnd_below(&seed, c.size / 512) * 512;
		if (r < 40)
			off = rnd_below(&seed, q2_min64(c.size, 8 * (u64)c.cs) / 512) * 512;
		l = (rnd_below(&seed, s->maxlen / 512) + 1) * 512;
		if (l > c.size - off)
			l = c.size - off;
		c.ops = realloc(c.ops, (c.nops + 1) * sizeof(*c.ops));
		c.ops[c.nops].start_ev = start;
		c.ops[c.nops].off = off;
		c.ops[c.nops].len = l;
		c.nops++;
		if (r < 70) {
			fill(&seed, buf, l);
			ret = cr_write(&c, off, buf, l);
			memcpy(c.model + off, buf, l);
		} else if (r < 85) {
			ret = zero_range(c.img, &c.chain, off, l,
					 r & 1 ? Q2_ZERO_MAY_UNMAP : 0, cr_write,
					 &c, zeros);
			memset(c.model + off, 0, l);
		} else {
			u64 done;

			ret = q2_zero(c.img, &c.chain, off, l, Q2_DISCARD, &done);
			discard_model(c.model, c.size, c.cs, s->v, c.chain.nr > 1,
				      off, l);
		}
	}
	if (ret)
		failf("workload: %d", ret);
	if (!ret) {
		size_t start = c.r.nev;

		ret = q2_close_clean(c.img);
		c.img = NULL;
		if (ret)
			failf("close: %d", ret);
		cr_flushpoint(&c, start);
	}
	q2_close(c.img);

	/* Every flush event is a point a crash may follow. */
	for (i = 0; i < c.r.nev; i++)
		if (c.r.ev[i].type == EV_FLUSH) {
			fev = realloc(fev, (nf + 1) * sizeof(*fev));
			fev[nf++] = i;
		}
	/* The base before the first flush: the image as created. */
	{
		size_t l0;
		u8 *orig = slurp("top.qcow2.orig", &l0);

		base = orig;
		blen = bcap = l0;
	}
	for (p = -1, i = 0; !fail_msg[0] && p < (int)nf; p++) {
		size_t from = p < 0 ? 0 : fev[p] + 1;
		size_t to = p + 1 < (int)nf ? fev[p + 1] : c.r.nev;

		/* Bring the base up to this flush. */
		for (; i < from; i++) {
			const struct event *e = &c.r.ev[i];

			if (e->type != EV_FLUSH)
				buf_write(&base, &blen, &bcap, e->off, e->data,
					  e->len);
		}
		if (to == from)
			continue;
		if (p >= 0 && p + 1 < (int)nf && nf > (size_t)s->crash_points &&
		    rnd_below(&seed, nf) >= (u64)s->crash_points)
			continue;
		cr_judge(&c, base, blen, from, to, &seed, 2);
	}
	if (s->rtgrow) {
		u64 rt_a, rt_b;
		u32 x;

		hdr_fields(c.r.data, &rt_a, &x);
		if (hdr_of("top.qcow2.orig", &rt_b, &x) || rt_a == rt_b)
			failf("the refcount table did not grow");
	}
	if (verbose)
		fprintf(stderr, "  %zu events, %zu flushes, %lu crash states (%lu leaky)\n",
			c.r.nev, nf, c.states, c.leaky);
	printf("# %s: %lu crash states judged (%lu with leaks)\n", s->name,
	       c.states, c.leaky);
	if (!fail_msg[0] && c.states == 0)
		failf("no crash state judged");
	for (i = 0; i < c.r.nev; i++)
		free(c.r.ev[i].data);
	for (i = 0; i < c.nfp; i++)
		free(c.fp[i].model);
	if (s->base == B_CHAIN)
		q2u_chain_close(&c.lower);
	free(c.r.ev);
	free(c.r.data);
	free(c.fp);
	free(c.ops);
	free(c.model);
	free(fev);
	free(base);
	free(buf);
	free(zeros);
	return fail_msg[0] ? -1 : 0;
}

/*
 * Host offsets past 4 GiB, without writing gigabytes: an image whose
 * first @mib MiB are preallocated (metadata only, so the file is sparse)
 * and whose virtual size is then doubled.  Writes in place above 4 GiB of
 * file, and allocating writes that grow the file and so make the close
 * trim its unused tail (q2_trim_tail(): a 32-bit mask there once punched
 * everything from the allocation end modulo 4 GiB to the end of the
 * file).  After the close, qemu-img check must be clean and every write
 * must read back through qemu-io (which fails on a pattern mismatch).
 */
static int run_past_4g(const struct shape *s)
{
	u64 mib = s->mib, cs = s->cs, vsize = 2 * (mib << 20);
	u64 offs[] = { 0, (mib << 20) - cs, (mib << 20) + 3 * cs,
		       vsize - 2 * cs };
	struct q2u_chain c = { 0 };
	struct q2_image *img;
	char err[256];
	u8 *buf = malloc(cs);
	unsigned int i;
	int ret, fd;

	if (!buf || sh("qemu-img create -q -f qcow2 -o cluster_size=%llu,preallocation=metadata "
		       "top.qcow2 %lluM", (unsigned long long)cs, (unsigned long long)mib) ||
	    sh("qemu-img resize -q top.qcow2 %llu", (unsigned long long)vsize)) {
		failf("making the image failed");
		free(buf);
		return -1;
	}
	ret = q2u_chain_open_flags(&c, "top.qcow2", NULL, 0, NULL, 0, Q2_OPEN_WRITE,
				   err, sizeof(err));
	if (ret) {
		failf("open: %s", err);
		free(buf);
		return -1;
	}
	img = c.layers[0].img;
	fd = c.files[0].fd;
	for (i = 0; i < sizeof(offs) / sizeof(offs[0]) && !ret; i++) {
		struct q2_write pw;

		memset(buf, 0x40 + (int)i, cs);
		ret = q2_write_begin(img, &c.chain, offs[i], cs, &pw);
		if (ret)
			break;
		ret = pw.len != cs ? -ERANGE : pwrite_all(fd, buf, cs, pw.host_off);
		if (!ret && i == 1 && pw.host_off < (4ULL << 30))
			ret = -EDOM;	/* the image does not reach past 4 GiB */
		ret = q2_write_commit(img, &pw, ret);
	}
	if (ret)
		failf("write #%u: %d", i, ret);
	i = (unsigned int)q2u_chain_close_clean(&c);
	if (!ret && i)
		failf("close: %d", (int)i);
	free(buf);
	if (fail_msg[0])
		return -1;
	if (sh("qemu-img check -q top.qcow2")) {
		failf("qemu-img check is not clean after the close");
		sh("qemu-img check top.qcow2 >check.out 2>&1; true");
		return -1;
	}
	for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		if (sh("qemu-io -f qcow2 -c 'read -P %u %llu %llu' top.qcow2 >/dev/null",
		       0x40 + i, (unsigned long long)offs[i],
		       (unsigned long long)cs)) {
			failf("write #%u at %llu does not read back", i,
			      (unsigned long long)offs[i]);
			return -1;
		}
	return 0;
}

/* ---- the cases ---------------------------------------------------------- */

#define KIB(x)	((x) * 1024U)
#define S(n, c, rb, ver, x, b, m, g, t, o, ml, ...)			\
	{ .name = n, .cs = c, .rbits = rb, .v = ver, .extl2 = x, .base = b,	\
	  .mib = m, .grow_mib = g, .threads = t, .ops = o, .maxlen = ml,	\
	  __VA_ARGS__ }

static const struct shape shapes[] = {
	/* name, cs, rbits, v, extl2, base, MiB, grow, threads, ops, maxlen */
	S("v3 64k", 65536, 16, 3, false, B_PLAIN, 16, 0, 4, 600, KIB(256) ),
	S("v2 64k", 65536, 16, 2, false, B_PLAIN, 16, 0, 4, 400, KIB(256) ),
	S("v3 512", 512, 16, 3, false, B_PLAIN, 4, 0, 4, 500, KIB(16) ),
	S("v3 4k", 4096, 16, 3, false, B_PLAIN, 8, 0, 4, 500, KIB(64) ),
	S("v3 2M", 2U << 20, 16, 3, false, B_PLAIN, 32, 0, 3, 200, KIB(1024) ),
	S("v2 2M", 2U << 20, 16, 2, false, B_PLAIN, 32, 0, 3, 150, KIB(1024) ),
	S("refcount_bits=1", 4096, 1, 3, false, B_PLAIN, 8, 0, 4, 400, KIB(64) ),
	S("refcount_bits=2", 4096, 2, 3, false, B_PLAIN, 8, 0, 4, 300, KIB(64) ),
	S("refcount_bits=4", 4096, 4, 3, false, B_PLAIN, 8, 0, 4, 300, KIB(64) ),
	S("refcount_bits=8", 4096, 8, 3, false, B_PLAIN, 8, 0, 4, 300, KIB(64) ),
	S("refcount_bits=32", 4096, 32, 3, false, B_PLAIN, 8, 0, 4, 300, KIB(64) ),
	S("refcount_bits=64", 4096, 64, 3, false, B_PLAIN, 8, 0, 4, 300, KIB(64) ),
	S("extended_l2 64k", 65536, 16, 3, true, B_PLAIN, 16, 0, 4, 600, KIB(256) ),
	S("extended_l2 16k unaligned", 16384, 16, 3, true, B_PLAIN, 8, 0, 4, 400, KIB(40), .unaligned = true ),
	S("unaligned bytes 4k", 4096, 16, 3, false, B_PLAIN, 4, 0, 4, 400, KIB(20), .unaligned = true ),
	S("backing chain v3", 65536, 16, 3, false, B_CHAIN, 16, 0, 4, 500, KIB(256) ),
	S("backing chain v2", 4096, 16, 2, false, B_CHAIN, 8, 0, 4, 400, KIB(64) ),
	S("backing chain extended_l2", 32768, 16, 3, true, B_CHAIN, 8, 0, 4, 400, KIB(100) ),
	S("compressed", 65536, 16, 3, false, B_COMP, 8, 0, 4, 400, KIB(200) ),
	S("compressed 4k", 4096, 16, 3, false, B_COMP, 4, 0, 4, 300, KIB(32) ),
	S("compressed extended_l2", 65536, 16, 3, true, B_COMP, 8, 0, 4, 300, KIB(200) ),
	S("compressed v2", 65536, 16, 2, false, B_COMP, 8, 0, 4, 300, KIB(200) ),
	S("snapshots", 65536, 16, 3, false, B_SNAP, 16, 0, 4, 500, KIB(256) ),
	S("snapshots 512 v2", 512, 16, 2, false, B_SNAP, 2, 0, 4, 400, KIB(8) ),
	S("preallocated metadata", 65536, 16, 3, false, B_PREALLOC, 8, 0, 4, 400, KIB(256) ),
	S("bitmap autoclear", 65536, 16, 3, false, B_BITMAP, 8, 0, 2, 100, KIB(256) ),
	S("lazy_refcounts image", 65536, 16, 3, false, B_LAZY, 8, 0, 2, 150, KIB(256) ),
	/* 64 table entries: 2 MiB of file at 64 bits, 8 MiB at 16 bits. */
	S("refcount table growth 512/64", 512, 64, 3, false, B_NEARFULL, 16, 0, 2, 400, KIB(64), .rtgrow = true, .prefill_kib = 1900 ),
	S("refcount table growth 512/16", 512, 16, 3, false, B_NEARFULL, 16, 0, 2, 300, KIB(128), .rtgrow = true, .prefill_kib = 7700 ),
	S("L2 cache of 4 tables", 4096, 16, 3, false, B_PLAIN, 64, 0, 4, 500, KIB(64), .cache = 1 ),
	S("resize with L1 growth", 512, 16, 3, false, B_PLAIN, 1, 4, 3, 400, KIB(8) ),
	S("resize 64k", 65536, 16, 3, false, B_PLAIN, 16, 48, 3, 300, KIB(256) ),
	S("resize v2", 4096, 16, 2, false, B_PLAIN, 2, 64, 2, 200, KIB(32) ),
	S("host offsets past 4 GiB", 65536, 16, 3, false, B_PAST4G, 4160, 0, 1, 4, KIB(64) ),
	/* Crash consistency: single-threaded, recorded. */
	S("crash v3 64k", 65536, 16, 3, false, B_PLAIN, 4, 0, 1, 120, KIB(160), .crash = true, .crash_points = 14 ),
	S("crash v2 4k", 4096, 16, 2, false, B_PLAIN, 2, 0, 1, 120, KIB(24), .crash = true, .crash_points = 14 ),
	S("crash 512 refcount_bits=64", 512, 64, 3, false, B_NEARFULL, 4, 0, 1, 150, KIB(32), .crash = true, .crash_points = 20, .rtgrow = true, .prefill_kib = 1950 ),
	S("crash 512 refcount_bits=1 cache 4", 512, 1, 3, false, B_PLAIN, 2, 0, 1, 120, KIB(8), .cache = 1, .crash = true, .crash_points = 1000 ),
	S("crash extended_l2", 32768, 16, 3, true, B_PLAIN, 4, 0, 1, 120, KIB(80), .crash = true, .crash_points = 14 ),
	S("crash backing chain", 4096, 16, 3, false, B_CHAIN, 2, 0, 1, 120, KIB(24), .crash = true, .crash_points = 14 ),
	S("crash compressed", 4096, 16, 3, false, B_COMP, 2, 0, 1, 120, KIB(24), .crash = true, .crash_points = 14 ),
	S("crash snapshots", 4096, 8, 3, false, B_SNAP, 2, 0, 1, 120, KIB(24), .crash = true, .crash_points = 14 ),
	S("crash snapshots 512", 512, 16, 3, false, B_SNAP, 1, 0, 1, 60, KIB(4), .crash = true, .crash_points = 1000 ),
};

static bool selected(const char *name, int argc, char **argv)
{
	int i;

	if (argc <= 0)
		return true;
	for (i = 0; i < argc; i++)
		if (strstr(name, argv[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	size_t nc = sizeof(shapes) / sizeof(shapes[0]), i;
	unsigned int n = 0, failed = 0, total = 0;
	const char *base = getenv("TMPDIR");
	char cwd[512];
	double t0;
	int opt;

	while ((opt = getopt(argc, argv, "vks:")) != -1) {
		switch (opt) {
		case 'v':
			verbose = 1;
			break;
		case 'k':
			keep = 1;
			break;
		case 's':
			base_seed = strtoull(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: q2write [-v] [-k] [-s SEED] [NAME...]\n");
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	q2_shim_quiet = !verbose;
	if (!getcwd(cwd, sizeof(cwd)))
		return 1;
	if (!base && !access("/dev/shm", W_OK))
		base = "/dev/shm";
	snprintf(tmpdir, sizeof(tmpdir), "%s/q2write.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(tmpdir) || chdir(tmpdir)) {
		perror("q2write: temporary directory");
		return 1;
	}
	for (i = 0; i < nc; i++)
		total += selected(shapes[i].name, argc, argv);
	printf("KTAP version 1\n1..%u\n", total);
	fflush(stdout);
	for (i = 0; i < nc; i++) {
		const struct shape *s = &shapes[i];
		char dir[64];
		int ret;

		if (!selected(s->name, argc, argv))
			continue;
		t0 = now();
		snprintf(dir, sizeof(dir), "case%02zu", i);
		if (mkdir(dir, 0755) || chdir(dir))
			return 1;
		fail_msg[0] = 0;
		if (verbose)
			fprintf(stderr, "%s\n", s->name);
		if (s->crash) {
			/* The image as made, for the crash states' base. */
			ret = make_image(s) || sh("cp top.qcow2 top.qcow2.orig");
			if (!ret)
				ret = run_crash(s, base_seed * 7919 + i);
		} else if (s->base == B_PAST4G) {
			ret = run_past_4g(s);
		} else {
			ret = run_workload(s, base_seed * 7919 + i);
		}
		if (ret && !fail_msg[0])
			failf("failed");
		if (verbose)
			fprintf(stderr, "  %.2f s\n", now() - t0);
		if (fail_msg[0])
			printf("# %s: %s (seed %llu, kept in %s/%s)\n", s->name,
			       fail_msg, base_seed, tmpdir, dir);
		printf("%sok %u %s\n", fail_msg[0] ? "not " : "", ++n, s->name);
		fflush(stdout);
		failed += !!fail_msg[0];
		if (chdir(".."))
			return 1;
		if (!fail_msg[0] && !keep)
			sh("rm -rf %s", dir);
	}
	if (chdir(cwd))
		return 1;
	if (!failed && !keep) {
		char log[sizeof(tmpdir) + 16];

		/* The log of the "rm -rf caseNN" commands run from tmpdir. */
		snprintf(log, sizeof(log), "%s/cmd.log", tmpdir);
		unlink(log);
		if (rmdir(tmpdir))
			fprintf(stderr, "# q2write: could not remove %s: %s\n",
				tmpdir, strerror(errno));
	}
	fprintf(stderr, "# q2write: %u passed, %u failed\n", n - failed, failed);
	return failed ? 1 : 0;
}
