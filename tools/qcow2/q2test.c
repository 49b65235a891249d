// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the qcow2 core: images built in memory (good ones and
 * hostile ones), opened through in-memory file ops, checked field by field.
 * KTAP on stdout; exit status 1 if any case fails.  Built with ASan and
 * UBSan.
 *
 *   q2test                     run every case
 *   q2test NAME...             run the cases whose name contains NAME
 *   q2test --write-seeds DIR   write every image built as a fuzzing seed
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include "q2u.h"
#include "q2_priv.h"	/* on-disk constants: the tests are white-box */

/* ---- image builder ------------------------------------------------------ */

struct tb {
	u8 *buf;
	size_t len;
	u32 cb, cs;
	u32 version;
	bool ext;
	u64 vsize;
	u64 l1_off;
	u32 l1_size;
	u64 rt_off;
	u32 hdr_len;
	u32 ext_pos;		/* next header extension goes here */
	u64 size_override;	/* file size seen by the core, if nonzero */
	const u8 *tile;		/* see struct q2u_mem */
	size_t tile_len;
};

static void tb_grow(struct tb *t, size_t len)
{
	if (len <= t->len)
		return;
	t->buf = realloc(t->buf, len);
	memset(t->buf + t->len, 0, len - t->len);
	t->len = len;
}

static void tb_be16(struct tb *t, u64 off, u16 v)
{
	tb_grow(t, off + 2);
	t->buf[off] = v >> 8;
	t->buf[off + 1] = v;
}

static void tb_be32(struct tb *t, u64 off, u32 v)
{
	tb_grow(t, off + 4);
	q2_put_be32(t->buf + off, v);
}

static void tb_be64(struct tb *t, u64 off, u64 v)
{
	tb_grow(t, off + 8);
	q2_put_be64(t->buf + off, v);
}

static u64 tb_rd64(struct tb *t, u64 off)
{
	return q2_be64(t->buf + off);
}

static u32 tb_l2_entries(const struct tb *t)
{
	return t->cs / (t->ext ? 16 : 8);
}

/* Append @n zeroed clusters; returns the first one's offset. */
static u64 tb_alloc(struct tb *t, u32 n)
{
	u64 off = (t->len + t->cs - 1) & ~(u64)(t->cs - 1);

	tb_grow(t, off + (u64)n * t->cs);
	return off;
}

/*
 * A fresh, valid image: header in cluster 0, refcount table in 1, a
 * refcount block in 2, the L1 table from 3.
 */
static void tb_init(struct tb *t, u32 version, u32 cb, u64 vsize, bool ext)
{
	u64 span;
	u32 l1_clusters;

	free(t->buf);
	memset(t, 0, sizeof(*t));
	t->version = version;
	t->cb = cb;
	t->cs = 1U << cb;
	t->ext = ext;
	t->vsize = vsize;
	span = (u64)t->cs * tb_l2_entries(t);
	t->l1_size = (vsize + span - 1) / span;
	l1_clusters = ((u64)t->l1_size * 8 + t->cs - 1) / t->cs;
	if (!l1_clusters)
		l1_clusters = 1;
	t->rt_off = t->cs;
	t->l1_off = 3ULL * t->cs;
	tb_grow(t, (3ULL + l1_clusters) * t->cs);
	t->hdr_len = version == 2 ? 72 : 112;
	t->ext_pos = t->hdr_len;

	tb_be32(t, 0, Q2_MAGIC);
	tb_be32(t, 4, version);
	tb_be32(t, 20, cb);
	tb_be64(t, 24, vsize);
	tb_be32(t, 36, t->l1_size);
	tb_be64(t, 40, t->l1_off);
	tb_be64(t, 48, t->rt_off);
	tb_be32(t, 56, 1);
	if (version == 3) {
		tb_be64(t, 72, ext ? Q2_INCOMPAT_EXTL2 : 0);
		tb_be32(t, 96, 4);
		tb_be32(t, 100, t->hdr_len);
	}
	tb_be64(t, t->rt_off, 2ULL * t->cs);
}

/* The L2 table covering @guest, allocated on first use. */
static u64 tb_l2(struct tb *t, u64 guest)
{
	u64 idx = guest / ((u64)t->cs * tb_l2_entries(t));
	u64 l1e = t->l1_off + idx * 8, l2;

	l2 = tb_rd64(t, l1e) & Q2_OFFSET_MASK;
	if (!l2) {
		l2 = tb_alloc(t, 1);
		tb_be64(t, l1e, l2 | Q2_OFLAG_COPIED);
	}
	return l2;
}

static u64 tb_entry_off(struct tb *t, u64 guest)
{
	u64 l2 = tb_l2(t, guest);
	u64 i = (guest / t->cs) % tb_l2_entries(t);

	return l2 + i * (t->ext ? 16 : 8);
}

static void tb_set(struct tb *t, u64 guest, u64 entry, u64 bitmap)
{
	u64 e = tb_entry_off(t, guest);

	tb_be64(t, e, entry);
	if (t->ext)
		tb_be64(t, e + 8, bitmap);
}

/* A data cluster for @guest filled with @pat; returns its host offset. */
static u64 tb_data(struct tb *t, u64 guest, u8 pat)
{
	u64 e = tb_entry_off(t, guest);	/* the L2 table first */
	u64 host = tb_alloc(t, 1);

	memset(t->buf + host, pat, t->cs);
	tb_be64(t, e, host | Q2_OFLAG_COPIED);
	if (t->ext)
		tb_be64(t, e + 8, 0xffffffffULL);
	return host;
}

static void tb_ext(struct tb *t, u32 magic, const void *data, u32 len)
{
	tb_be32(t, t->ext_pos, magic);
	tb_be32(t, t->ext_pos + 4, len);
	tb_grow(t, t->ext_pos + 8 + len);
	memcpy(t->buf + t->ext_pos + 8, data, len);
	t->ext_pos += 8 + ((len + 7) & ~7U);
	tb_be64(t, t->ext_pos, 0);	/* end marker */
}

static void tb_backing(struct tb *t, const char *name, const char *fmt)
{
	u32 len = strlen(name);
	u32 off;

	if (fmt)
		tb_ext(t, Q2_EXT_BACKING_FORMAT, fmt, strlen(fmt));
	off = t->ext_pos + 8;
	memcpy(t->buf + off, name, len);
	tb_be64(t, 8, off);
	tb_be32(t, 16, len);
}

static void tb_feature_name(struct tb *t, u8 type, u8 bit, const char *name)
{
	u8 rec[48] = { type, bit };

	memcpy(rec + 2, name, strlen(name));
	tb_ext(t, Q2_EXT_FEATURE_TABLE, rec, sizeof(rec));
}

static size_t compress_cluster(int type, const u8 *src, size_t len, u8 *dst,
			       size_t cap)
{
	if (type == Q2_COMP_ZSTD) {
		size_t n = ZSTD_compress(dst, cap, src, len, 3);

		return ZSTD_isError(n) ? 0 : n;
	} else {
		z_stream zs = { 0 };
		size_t n;

		deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
			     Z_DEFAULT_STRATEGY);
		zs.next_in = (u8 *)src;
		zs.avail_in = len;
		zs.next_out = dst;
		zs.avail_out = cap;
		n = deflate(&zs, Z_FINISH) == Z_STREAM_END ? cap - zs.avail_out : 0;
		deflateEnd(&zs);
		return n;
	}
}

/*
 * A compressed cluster for @guest holding @data (one cluster), placed at
 * an odd offset, followed by @garbage bytes of junk; returns the entry.
 */
static u64 tb_compressed(struct tb *t, u64 guest, const u8 *data, int type,
			 u32 garbage)
{
	size_t cap = 2 * t->cs + 1024, n;
	u8 *tmp = malloc(cap);
	u64 base, coff, nb, entry;
	u32 shift = 62 - (t->cb - 8);

	n = compress_cluster(type, data, t->cs, tmp, cap);
	base = tb_alloc(t, (n + garbage + 200) / t->cs + 1);
	coff = base + 136;
	memcpy(t->buf + coff, tmp, n);
	memset(t->buf + coff + n, 0x5a, garbage);
	free(tmp);
	nb = ((coff + n + garbage - 1) >> 9) - (coff >> 9);
	entry = Q2_OFLAG_COMPRESSED | (nb << shift) | coff;
	tb_set(t, guest, entry, 0);
	return entry;
}

/* ---- test harness ------------------------------------------------------- */

static int cur_failed;
static char cur_err[256];
static const char *seed_dir;
static unsigned int seed_nr;

#define EXPECT(cond) do {						\
	if (!(cond)) {							\
		printf("    # %s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
		cur_failed = 1;						\
	}								\
} while (0)

#define EXPECT_EQ(a, b) do {						\
	long long _a = (long long)(a), _b = (long long)(b);		\
	if (_a != _b) {							\
		printf("    # %s:%d: %s == %lld, expected %lld\n",	\
		       __FILE__, __LINE__, #a, _a, _b);			\
		cur_failed = 1;						\
	}								\
} while (0)

static void seed_write(const struct tb *t, const char *name)
{
	char path[512];
	FILE *f;

	if (!seed_dir)
		return;
	snprintf(path, sizeof(path), "%s/q2test-%03u-%s", seed_dir, seed_nr++,
		 name);
	for (char *p = path + strlen(seed_dir) + 1; *p; p++)
		if (*p == ' ' || *p == '/' || *p == '(' || *p == ')')
			*p = '_';
	f = fopen(path, "wb");
	if (f) {
		fwrite(t->buf, 1, t->len, f);
		fclose(f);
	}
}

/* Memory files live as long as the image opened over them. */
struct tfile {
	struct q2u_mem mem;
};

static struct tfile *tb_file(const struct tb *t)
{
	struct tfile *f = calloc(1, sizeof(*f));

	f->mem.data = t->buf;
	f->mem.len = t->len;
	f->mem.size = t->size_override ? t->size_override : t->len;
	f->mem.tile = t->tile;
	f->mem.tile_len = t->tile_len;
	f->mem.tile_off = t->len;
	return f;
}

/* Open @t; returns the q2_open result and the message in cur_err. */
static int tb_open(const struct tb *t, unsigned int flags, const char *snap,
		   u64 cache, struct q2_image **img, struct tfile **file)
{
	struct q2_open_args a = { 0 };
	struct tfile *f = tb_file(t);
	int ret;

	seed_write(t, snap ? snap : "img");
	a.ops = &q2u_mem_ops;
	a.file = &f->mem;
	a.flags = flags;
	a.snapshot = snap;
	a.l2_cache_bytes = cache;
	a.name = "q2test";
	a.err = cur_err;
	a.err_len = sizeof(cur_err);
	memset(cur_err, 0, sizeof(cur_err));
	ret = q2_open(&a, img);
	if (ret) {
		/* Every refusal says why, in at most 75 characters. */
		EXPECT(cur_err[0]);
		EXPECT(strlen(cur_err) <= 75);
		free(f);
		f = NULL;
	}
	*file = f;
	return ret;
}

static void tclose(struct q2_image *img, struct tfile *f)
{
	q2_close(img);
	free(f);
}

/* Open must fail with @ret and a message containing @msg. */
static void expect_refused(const struct tb *t, int ret, const char *msg)
{
	struct q2_image *img;
	struct tfile *f;
	int r = tb_open(t, 0, NULL, 0, &img, &f);

	EXPECT_EQ(r, ret);
	if (!strstr(cur_err, msg)) {
		printf("    # message '%s' lacks '%s'\n", cur_err, msg);
		cur_failed = 1;
	}
	if (!r)
		tclose(img, f);
}

/* Read guest bytes through the core, like q2cat. */
static int read_guest(struct q2_image *img, const struct tfile *f, u64 off,
		      u8 *buf, size_t len)
{
	struct q2_extent e;
	int ret;

	while (len) {
		ret = q2_map(img, off, len, &e);
		if (ret)
			return ret;
		if (!e.len || e.len > len)
			return -1000;
		if (e.type == Q2_DATA) {
			if (e.host_off + e.len > f->mem.size)
				return -1001;
			ret = q2u_mem_ops.pread((void *)&f->mem, buf, e.len,
						e.host_off);
		} else if (e.type == Q2_COMPRESSED) {
			ret = q2_read_compressed(img, &e, 0, buf, e.len);
		} else {
			memset(buf, 0, e.len);
			ret = 0;
		}
		if (ret)
			return ret;
		buf += e.len;
		off += e.len;
		len -= e.len;
	}
	return 0;
}

static bool all_bytes(const u8 *p, size_t len, u8 v)
{
	while (len--)
		if (*p++ != v)
			return false;
	return true;
}

/* ---- good images -------------------------------------------------------- */

static struct tb T;

static void test_basic_v3(void)
{
	struct q2_image *img;
	struct tfile *f;
	struct q2_extent e;
	struct q2_info in;
	u8 *buf = malloc(3 * 65536);
	u64 h0;

	tb_init(&T, 3, 16, 16 << 20, false);
	h0 = tb_data(&T, 0, 0xa1);
	tb_data(&T, 65536, 0xa2);
	if (tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT(0);
		free(buf);
		return;
	}
	q2_get_info(img, &in);
	EXPECT_EQ(in.version, 3);
	EXPECT_EQ(in.virtual_size, 16 << 20);
	EXPECT_EQ(in.cluster_size, 65536);
	EXPECT_EQ(in.refcount_bits, 16);
	EXPECT_EQ(in.header_length, 112);
	EXPECT_EQ(in.l1_size, 1);
	EXPECT(!in.dirty && !in.corrupt && !in.extended_l2);
	EXPECT(!in.backing_file);
	EXPECT_EQ(q2_virtual_size(img), 16 << 20);

	EXPECT_EQ(q2_map(img, 100, 1000, &e), 0);
	EXPECT_EQ(e.type, Q2_DATA);
	EXPECT_EQ(e.len, 1000);
	EXPECT_EQ(e.host_off, h0 + 100);
	/* Second cluster is the next host cluster: one extent. */
	EXPECT_EQ(q2_map(img, 0, 3 * 65536, &e), 0);
	EXPECT_EQ(e.type, Q2_DATA);
	EXPECT_EQ(e.len, 2 * 65536);
	EXPECT_EQ(q2_map(img, 2 * 65536, 16 << 20, &e), 0);
	EXPECT_EQ(e.type, Q2_UNALLOC);
	EXPECT_EQ(e.len, (16 << 20) - 2 * 65536);
	/* Clipped to the disk; outside is -EINVAL. */
	EXPECT_EQ(q2_map(img, (16 << 20) - 10, 100, &e), 0);
	EXPECT_EQ(e.len, 10);
	EXPECT_EQ(q2_map(img, 16 << 20, 1, &e), -EINVAL);
	EXPECT_EQ(q2_map(img, 0, 0, &e), -EINVAL);

	EXPECT_EQ(read_guest(img, f, 0, buf, 3 * 65536), 0);
	EXPECT(all_bytes(buf, 65536, 0xa1));
	EXPECT(all_bytes(buf + 65536, 65536, 0xa2));
	EXPECT(all_bytes(buf + 2 * 65536, 65536, 0));
	tclose(img, f);
	free(buf);
}

static void test_basic_v2(void)
{
	struct q2_image *img;
	struct tfile *f;
	struct q2_extent e;
	struct q2_info in;

	tb_init(&T, 2, 12, 1 << 20, false);
	tb_data(&T, 8192, 0xb1);
	if (tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT(0);
		return;
	}
	q2_get_info(img, &in);
	EXPECT_EQ(in.version, 2);
	EXPECT_EQ(in.header_length, 72);
	EXPECT_EQ(in.refcount_bits, 16);
	EXPECT_EQ(q2_map(img, 0, 1 << 20, &e), 0);
	EXPECT_EQ(e.type, Q2_UNALLOC);
	EXPECT_EQ(e.len, 8192);
	EXPECT_EQ(q2_map(img, 8192, 1 << 20, &e), 0);
	EXPECT_EQ(e.type, Q2_DATA);
	EXPECT_EQ(e.len, 4096);
	tclose(img, f);
}

static void test_cluster_sizes(void)
{
	static const u32 bits[] = { 9, 12, 16, 21 };
	u8 buf[1024];
	unsigned int i;

	for (i = 0; i < 4; i++) {
		struct q2_image *img;
		struct tfile *f;
		u64 cs = 1ULL << bits[i];

		tb_init(&T, 3, bits[i], 64ULL << 20, false);
		tb_data(&T, cs * 3, 0x30 + i);
		/* Far enough to need a second L2 table, where the disk allows. */
		if (cs * (cs / 8) + cs < (64ULL << 20))
			tb_data(&T, cs * (cs / 8) + cs, 0x40 + i);
		if (tb_open(&T, 0, NULL, 0, &img, &f)) {
			EXPECT(0);
			continue;
		}
		EXPECT_EQ(read_guest(img, f, cs * 3 + cs - 512, buf, 1024), 0);
		EXPECT(all_bytes(buf, 512, 0x30 + i));
		EXPECT(all_bytes(buf + 512, 512, 0));
		if (cs * (cs / 8) + cs < (64ULL << 20)) {
			EXPECT_EQ(read_guest(img, f, cs * (cs / 8) + cs, buf, 512), 0);
			EXPECT(all_bytes(buf, 512, 0x40 + i));
		}
		tclose(img, f);
	}
}

static void test_coalesce(void)
{
	struct q2_image *img;
	struct tfile *f;
	struct q2_extent e;
	u32 cs = 4096;

	tb_init(&T, 3, 12, 64 << 20, false);
	/* Clusters 0-2 contiguous, 3 elsewhere, 4 contiguous with 3. */
	tb_data(&T, 0, 1);
	tb_data(&T, cs, 2);
	tb_data(&T, 2 * cs, 3);
	tb_alloc(&T, 1);
	tb_data(&T, 3 * cs, 4);
	tb_data(&T, 4 * cs, 5);
	/* Zero clusters 10-12 then unallocated; a zero run across tables. */
	tb_set(&T, 10 * cs, Q2_OFLAG_ZERO, 0);
	tb_set(&T, 11 * cs, Q2_OFLAG_ZERO, 0);
	tb_set(&T, 12 * cs, Q2_OFLAG_ZERO, 0);
	tb_set(&T, 511 * cs, Q2_OFLAG_ZERO, 0);
	tb_set(&T, 512 * cs, Q2_OFLAG_ZERO, 0);
	if (tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT(0);
		return;
	}
	EXPECT_EQ(q2_map(img, 100, 10 * cs, &e), 0);
	EXPECT_EQ(e.type, Q2_DATA);
	EXPECT_EQ(e.len, 3 * cs - 100);
	EXPECT_EQ(q2_map(img, 3 * cs, 10 * cs, &e), 0);
	EXPECT_EQ(e.type, Q2_DATA);
	EXPECT_EQ(e.len, 2 * cs);
	EXPECT_EQ(q2_map(img, 5 * cs, 100 * cs, &e), 0);
	EXPECT_EQ(e.type, Q2_UNALLOC);
	EXPECT_EQ(e.len, 5 * cs);
	EXPECT_EQ(q2_map(img, 10 * cs + 7, 100 * cs, &e), 0);
	EXPECT_EQ(e.type, Q2_ZERO);
	EXPECT_EQ(e.len, 3 * cs - 7);
	/* A uniform run stops at the L2 table boundary. */
	EXPECT_EQ(q2_map(img, 511 * cs, 100 * cs, &e), 0);
	EXPECT_EQ(e.type, Q2_ZERO);
	EXPECT_EQ(e.len, cs);
	/* Empty L1 entries coalesce up to the end of the request. */
	EXPECT_EQ(q2_map(img, 4 << 20, 60 << 20, &e), 0);
	EXPECT_EQ(e.type, Q2_UNALLOC);
	EXPECT_EQ(e.len, 60 << 20);
	tclose(img, f);
}

static void test_extended_l2(void)
{
	struct q2_image *img;
	struct tfile *f;
	struct q2_extent e;
	u32 cs = 65536, sc = cs / 32;
	u64 h;
	u8 buf[4096];

	tb_init(&T, 3, 16, 16 << 20, true);
	h = tb_alloc(&T, 2);
	memset(T.buf + h, 0xc1, 2 * cs);
	/* sc 0-3 allocated, 4-5 zero, 6-31 unallocated. */
	tb_set(&T, 0, h, 0x0000000fULL | (0x30ULL << 32));
	/* Next cluster: all allocated, contiguous on the host. */
	tb_set(&T, cs, h + cs, 0xffffffffULL);
	/* Cluster 2: zero bits without an offset. */
	tb_set(&T, 2 * cs, 0, 0xffffffffULL << 32);
	if (tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT(0);
		return;
	}
	EXPECT_EQ(q2_map(img, 0, cs, &e), 0);
	EXPECT_EQ(e.type, Q2_DATA);
	EXPECT_EQ(e.len, 4 * sc);
	EXPECT_EQ(q2_map(img, 4 * sc, cs, &e), 0);
	EXPECT_EQ(e.type, Q2_ZERO);
	EXPECT_EQ(e.len, 2 * sc);
	EXPECT_EQ(q2_map(img, 6 * sc, cs, &e), 0);
	EXPECT_EQ(e.type, Q2_UNALLOC);
	EXPECT_EQ(e.len, 26 * sc);
	EXPECT_EQ(q2_map(img, cs + 5, 3 * cs, &e), 0);
	EXPECT_EQ(e.type, Q2_DATA);
	EXPECT_EQ(e.len, cs - 5);
	EXPECT_EQ(e.host_off, h + cs + 5);
	EXPECT_EQ(q2_map(img, 2 * cs, 3 * cs, &e), 0);
	EXPECT_EQ(e.type, Q2_ZERO);
	EXPECT_EQ(e.len, cs);
	EXPECT_EQ(read_guest(img, f, 4 * sc - 2048, buf, 4096), 0);
	EXPECT(all_bytes(buf, 2048, 0xc1));
	EXPECT(all_bytes(buf + 2048, 2048, 0));
	tclose(img, f);
}

/* QEMU does not always write whole clusters: data past EOF reads as zeros. */
static void test_file_ends_in_cluster(void)
{
	struct q2_image *img;
	struct tfile *f;
	struct q2_extent e;
	u64 h;

	tb_init(&T, 3, 16, 16 << 20, true);
	tb_l2(&T, 0);
	h = tb_alloc(&T, 1);
	memset(T.buf + h, 0xd1, 65536);
	tb_set(&T, 0, h, 0x3);	/* subclusters 0 and 1 */
	T.len = h + 3000;	/* the file ends inside subcluster 1 */
	if (tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT(0);
		return;
	}
	EXPECT_EQ(q2_map(img, 0, 65536, &e), 0);
	EXPECT_EQ(e.type, Q2_DATA);
	EXPECT_EQ(e.len, 3000);
	EXPECT_EQ(q2_map(img, 3000, 65536, &e), 0);
	EXPECT_EQ(e.type, Q2_ZERO);
	EXPECT_EQ(e.len, 4096 - 3000);
	EXPECT_EQ(q2_map(img, 4096, 65536, &e), 0);
	EXPECT_EQ(e.type, Q2_UNALLOC);
	tclose(img, f);
}

static void compressed_case(int type, u32 cb, u32 garbage)
{
	struct q2_image *img;
	struct tfile *f;
	struct q2_extent e;
	u32 cs = 1U << cb, i;
	u8 *data = malloc(cs), *out = malloc(cs);
	struct q2_info in;

	for (i = 0; i < cs; i++)
		data[i] = (i / 100) * 7 + (i % 3);
	tb_init(&T, 3, cb, 8 << 20, false);
	if (type == Q2_COMP_ZSTD) {
		tb_be64(&T, 72, Q2_INCOMPAT_COMPRESSION);
		T.buf[104] = 1;
	}
	tb_compressed(&T, cs, data, type, garbage);
	tb_data(&T, 2 * cs, 0xee);
	if (tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT(0);
		goto out;
	}
	q2_get_info(img, &in);
	EXPECT_EQ(in.compression_type, type);
	EXPECT_EQ(q2_map(img, cs + 10, 5 * cs, &e), 0);
	EXPECT_EQ(e.type, Q2_COMPRESSED);
	EXPECT_EQ(e.len, cs - 10);
	EXPECT_EQ(e.cluster_off, 10);
	memset(out, 0, cs);
	EXPECT_EQ(q2_read_compressed(img, &e, 0, out, e.len), 0);
	EXPECT(!memcmp(out, data + 10, cs - 10));
	/* Page-sized pieces through one decompression. */
	EXPECT_EQ(q2_read_compressed(img, &e, 100, out, 200), 0);
	EXPECT(!memcmp(out, data + 110, 200));
	EXPECT_EQ(q2_read_compressed(img, &e, 0, out, cs), -EINVAL);
	EXPECT_EQ(read_guest(img, f, 0, out, cs), 0);
	EXPECT(all_bytes(out, cs, 0));
	EXPECT_EQ(read_guest(img, f, cs, out, cs), 0);
	EXPECT(!memcmp(out, data, cs));
	tclose(img, f);
out:
	free(data);
	free(out);
}

static void test_compressed_deflate(void)
{
	compressed_case(Q2_COMP_DEFLATE, 16, 0);
	compressed_case(Q2_COMP_DEFLATE, 9, 0);
	compressed_case(Q2_COMP_DEFLATE, 21, 0);
}

static void test_compressed_zstd(void)
{
	compressed_case(Q2_COMP_ZSTD, 16, 0);
	compressed_case(Q2_COMP_ZSTD, 12, 0);
	compressed_case(Q2_COMP_ZSTD, 21, 0);
}

static void test_compressed_trailing(void)
{
	compressed_case(Q2_COMP_DEFLATE, 16, 700);
	compressed_case(Q2_COMP_ZSTD, 16, 700);
	compressed_case(Q2_COMP_ZSTD, 14, 3);
}

static void test_l2_cache(void)
{
	struct q2_cache_stats st;
	struct q2_image *img;
	struct tfile *f;
	u32 cs = 512, span = cs * (cs / 8), i;
	u8 buf[512];

	tb_init(&T, 3, 9, 16ULL * span, false);
	for (i = 0; i < 16; i++)
		tb_data(&T, (u64)i * span + cs * i, 0x10 + i);
	/* A budget of one byte still caches Q2_L2_MIN tables. */
	if (tb_open(&T, 0, NULL, 1, &img, &f)) {
		EXPECT(0);
		return;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (i = 0; i < 16; i++) {
			EXPECT_EQ(read_guest(img, f, (u64)i * span + cs * i, buf, 512), 0);
			EXPECT(all_bytes(buf, 512, 0x10 + i));
		}
	}
	q2_cache_stats(img, &st);
	EXPECT_EQ(st.tables, Q2_L2_MIN);
	EXPECT_EQ(st.used, Q2_L2_MIN);
	EXPECT_EQ(st.misses, 32);
	/* Repeated hits on one table. */
	for (i = 0; i < 10; i++)
		EXPECT_EQ(read_guest(img, f, 0, buf, 512), 0);
	q2_cache_stats(img, &st);
	EXPECT_EQ(st.hits, 9);
	tclose(img, f);

	/* Default budget: 1 MiB of 512-byte tables, but no more than L1. */
	if (!tb_open(&T, 0, NULL, 0, &img, &f)) {
		q2_cache_stats(img, &st);
		EXPECT_EQ(st.tables, 16);
		tclose(img, f);
	}
}

/* q2_map_nowait(): q2_map()'s answer from cached tables, else -EAGAIN. */
static void test_map_nowait(void)
{
	struct q2_extent a, b;
	struct q2_image *img;
	struct tfile *f;
	u32 cs = 512, span = cs * (cs / 8);

	tb_init(&T, 3, 9, 4ULL * span, false);
	tb_data(&T, 0, 0x21);
	tb_data(&T, cs, 0x22);
	tb_data(&T, span + cs, 0x23);
	if (tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT(0);
		return;
	}
	/* Nothing cached yet: no answer without I/O. */
	EXPECT_EQ(q2_map_nowait(img, 0, 2 * cs, &a), -EAGAIN);
	EXPECT_EQ(q2_map_nowait(img, span, cs, &a), -EAGAIN);
	/* An empty L1 entry needs no table. */
	EXPECT_EQ(q2_map_nowait(img, 2ULL * span, cs, &a), 0);
	EXPECT_EQ(a.type, Q2_UNALLOC);
	/* Cached by q2_map(): the same extent both ways. */
	EXPECT_EQ(q2_map(img, 0, 3 * cs, &b), 0);
	EXPECT_EQ(q2_map_nowait(img, 0, 3 * cs, &a), 0);
	EXPECT_EQ(a.type, b.type);
	EXPECT_EQ(a.len, b.len);
	EXPECT_EQ(a.host_off, b.host_off);
	EXPECT_EQ(a.type, Q2_DATA);
	EXPECT_EQ(q2_map_nowait(img, 4ULL * span, cs, &a), -EINVAL);
	tclose(img, f);
}

/* Snapshot table entry at @off; returns the next entry's offset. */
static u64 tb_snapshot(struct tb *t, u64 off, const char *id, const char *name,
		       u64 l1_off, u32 l1_size, u32 extra, u64 disk_size)
{
	u32 il = strlen(id), nl = strlen(name);

	tb_be64(t, off, l1_off);
	tb_be32(t, off + 8, l1_size);
	tb_be16(t, off + 12, il);
	tb_be16(t, off + 14, nl);
	tb_be32(t, off + 16, 1700000000);
	tb_be32(t, off + 20, 5);
	tb_be64(t, off + 24, 3000000000ULL);
	tb_be32(t, off + 32, 77);
	tb_be32(t, off + 36, extra);
	if (extra >= 16) {
		tb_be64(t, off + 40, 1234);
		tb_be64(t, off + 48, disk_size);
	}
	tb_grow(t, off + 40 + extra + il + nl);
	memcpy(t->buf + off + 40 + extra, id, il);
	memcpy(t->buf + off + 40 + extra + il, name, nl);
	return off + ((40 + extra + il + nl + 7) & ~7U);
}

/* Active: cluster 0 = 0x01.  Snapshot "2"/id 1: 0x02; "1"/id 2: 0x03. */
static void build_snapshots(struct tb *t)
{
	u64 l1a, l1b, tab, next;
	u32 cs = 65536;
	u64 h;

	tb_init(t, 3, 16, 4 << 20, false);
	tb_data(t, 0, 0x01);
	/* Snapshot L1 tables, each with one L2 table and one cluster. */
	l1a = tb_alloc(t, 1);
	h = tb_alloc(t, 2);
	tb_be64(t, l1a, h);
	memset(t->buf + h + cs, 0x02, cs);
	tb_be64(t, h, h + cs);
	l1b = tb_alloc(t, 1);
	h = tb_alloc(t, 2);
	tb_be64(t, l1b, h);
	memset(t->buf + h + cs, 0x03, cs);
	tb_be64(t, h, h + cs);
	tab = tb_alloc(t, 1);
	next = tb_snapshot(t, tab, "1", "2", l1a, 1, 24, 2 << 20);
	tb_snapshot(t, next, "2", "1", l1b, 1, 16, 4 << 20);
	tb_be32(t, 60, 2);
	tb_be64(t, 64, tab);
}

static void test_snapshots(void)
{
	struct q2_image *img;
	struct tfile *f;
	struct q2_info in;
	u8 buf[512];

	build_snapshots(&T);
	if (tb_open(&T, Q2_OPEN_HEADER_ONLY, NULL, 0, &img, &f)) {
		EXPECT(0);
		return;
	}
	q2_get_info(img, &in);
	EXPECT_EQ(in.nb_snapshots, 2);
	EXPECT(!strcmp(in.snapshots[0].id, "1"));
	EXPECT(!strcmp(in.snapshots[0].name, "2"));
	EXPECT_EQ(in.snapshots[0].disk_size, 2 << 20);
	EXPECT_EQ(in.snapshots[0].vm_state_size, 1234);
	EXPECT_EQ(in.snapshots[0].date_sec, 1700000000);
	EXPECT_EQ(in.snapshots[0].date_nsec, 5);
	EXPECT_EQ(in.snapshots[0].vm_clock_nsec, 3000000000ULL);
	EXPECT_EQ(in.snapshots[1].icount, ~0ULL);
	EXPECT_EQ(in.open_snapshot, -1);
	tclose(img, f);

	/* "1" is snapshot id 1 (named "2"), not the one named "1". */
	if (!tb_open(&T, 0, "1", 0, &img, &f)) {
		q2_get_info(img, &in);
		EXPECT_EQ(in.open_snapshot, 0);
		EXPECT_EQ(q2_virtual_size(img), 2 << 20);
		EXPECT_EQ(read_guest(img, f, 0, buf, 512), 0);
		EXPECT(all_bytes(buf, 512, 0x02));
		tclose(img, f);
	} else {
		EXPECT(0);
	}
	/* By name. */
	if (!tb_open(&T, 0, "2", 0, &img, &f)) {
		q2_get_info(img, &in);
		EXPECT_EQ(in.open_snapshot, 1);
		EXPECT_EQ(read_guest(img, f, 0, buf, 512), 0);
		EXPECT(all_bytes(buf, 512, 0x03));
		tclose(img, f);
	} else {
		EXPECT(0);
	}
	/* The active state. */
	if (!tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT_EQ(read_guest(img, f, 0, buf, 512), 0);
		EXPECT(all_bytes(buf, 512, 0x01));
		tclose(img, f);
	}
}

static void test_snapshot_not_found(void)
{
	struct q2_image *img;
	struct tfile *f;

	build_snapshots(&T);
	EXPECT_EQ(tb_open(&T, 0, "nope", 0, &img, &f), -ENOENT);
	EXPECT(strstr(cur_err, "snapshot 'nope' not found"));
	tb_init(&T, 3, 16, 1 << 20, false);
	EXPECT_EQ(tb_open(&T, 0, "1", 0, &img, &f), -ENOENT);
}

static void test_header_only(void)
{
	struct q2_image *img;
	struct tfile *f;
	struct q2_extent e;
	struct q2_info in;
	u8 buf[8];

	tb_init(&T, 3, 16, 1 << 20, false);
	tb_be32(&T, 32, Q2_CRYPT_LUKS);
	tb_ext(&T, Q2_EXT_CRYPTO, "\0\0\0\0\0\x05\0\0\0\0\0\0\0\0\x10\0", 16);
	if (tb_open(&T, Q2_OPEN_HEADER_ONLY, NULL, 0, &img, &f)) {
		EXPECT(0);
		return;
	}
	q2_get_info(img, &in);
	EXPECT_EQ(in.crypt_method, Q2_CRYPT_LUKS);
	EXPECT(in.has_crypto_header);
	EXPECT_EQ(q2_map(img, 0, 512, &e), -EINVAL);
	e.type = Q2_COMPRESSED;
	e.len = 8;
	e.comp_len = 8;
	EXPECT_EQ(q2_read_compressed(img, &e, 0, buf, 8), -EINVAL);
	tclose(img, f);
}

static void test_info_extensions(void)
{
	struct q2_image *img;
	struct tfile *f;
	struct q2_info in;

	tb_init(&T, 3, 16, 1 << 20, false);
	tb_be64(&T, 72, Q2_INCOMPAT_DIRTY | Q2_INCOMPAT_CORRUPT);
	tb_be64(&T, 80, Q2_COMPAT_LAZY_REFCOUNTS | (1ULL << 5));
	tb_be64(&T, 88, Q2_AUTOCLEAR_BITMAPS | (1ULL << 9));
	tb_feature_name(&T, Q2_FEAT_COMPAT, 5, "shiny");
	tb_ext(&T, 0x12345678, "unknown!", 8);
	tb_ext(&T, Q2_EXT_BITMAPS, "0123456789abcdef01234567", 24);
	tb_ext(&T, Q2_EXT_DATA_FILE, "data.raw", 8);
	tb_backing(&T, "../base/base.qcow2", "qcow2");
	if (tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT(0);
		return;
	}
	q2_get_info(img, &in);
	EXPECT(in.dirty && in.corrupt && in.lazy_refcounts && in.has_bitmaps);
	EXPECT(in.backing_file && !strcmp(in.backing_file, "../base/base.qcow2"));
	EXPECT(in.backing_format && !strcmp(in.backing_format, "qcow2"));
	EXPECT(in.data_file && !strcmp(in.data_file, "data.raw"));
	EXPECT(!in.has_data_file);
	EXPECT(!strcmp(q2_feature_name(img, Q2_FEAT_COMPAT, 5), "shiny"));
	EXPECT(!strcmp(q2_feature_name(img, Q2_FEAT_INCOMPAT, 4),
		       "extended L2 entries"));
	EXPECT(!q2_feature_name(img, Q2_FEAT_AUTOCLEAR, 9));
	tclose(img, f);
}

/* ---- chains ------------------------------------------------------------- */

struct layer_img {
	struct tb t;
	struct q2_image *img;
	struct tfile *f;
};

static void test_chain_map(void)
{
	struct layer_img top = { 0 }, mid = { 0 };
	struct q2_layer l[3] = { 0 };
	struct q2_chain chain = { l, 3 };
	struct q2_chain_extent cx;
	char err[Q2_ERR_MAX];
	u32 cs = 65536;

	/* top 8M, over mid 2M, over a raw 1M base. */
	tb_init(&top.t, 3, 16, 8 << 20, false);
	tb_data(&top.t, 0, 0x71);
	tb_set(&top.t, 2 * cs, Q2_OFLAG_ZERO, 0);
	tb_backing(&top.t, "mid.qcow2", "qcow2");
	tb_init(&mid.t, 3, 16, 2 << 20, false);
	tb_data(&mid.t, cs, 0x72);
	tb_backing(&mid.t, "dir/base.raw", "raw");
	if (tb_open(&top.t, 0, NULL, 0, &top.img, &top.f) ||
	    tb_open(&mid.t, 0, NULL, 0, &mid.img, &mid.f)) {
		EXPECT(0);
		return;
	}
	l[0].img = top.img;
	l[0].path = "/x/top.qcow2";
	l[0].id[1] = 1;
	l[1].img = mid.img;
	l[1].path = "/y/mid.qcow2";
	l[1].id[1] = 2;
	l[2].raw_size = 1 << 20;
	l[2].path = "/z/base.raw";
	l[2].id[1] = 3;
	EXPECT_EQ(q2_chain_check(&chain, err, sizeof(err)), 0);

	EXPECT_EQ(q2_chain_map(&chain, 0, 8 << 20, &cx), 0);
	EXPECT_EQ(cx.layer, 0);
	EXPECT_EQ(cx.ext.type, Q2_DATA);
	EXPECT_EQ(cx.ext.len, cs);
	EXPECT_EQ(q2_chain_map(&chain, cs, 8 << 20, &cx), 0);
	EXPECT_EQ(cx.layer, 1);
	EXPECT_EQ(cx.ext.type, Q2_DATA);
	EXPECT_EQ(cx.ext.len, cs);
	EXPECT_EQ(q2_chain_map(&chain, 2 * cs, 8 << 20, &cx), 0);
	EXPECT_EQ(cx.layer, 0);
	EXPECT_EQ(cx.ext.type, Q2_ZERO);
	EXPECT_EQ(cx.ext.len, cs);
	/* Unallocated in top and mid: the raw base, up to its 1M end. */
	EXPECT_EQ(q2_chain_map(&chain, 3 * cs, 8 << 20, &cx), 0);
	EXPECT_EQ(cx.layer, 2);
	EXPECT_EQ(cx.ext.type, Q2_DATA);
	EXPECT_EQ(cx.ext.host_off, 3 * cs);
	EXPECT_EQ(cx.ext.len, (1 << 20) - 3 * cs);
	/* Past the base's end, inside mid: zeros decided by the base. */
	EXPECT_EQ(q2_chain_map(&chain, 1 << 20, 8 << 20, &cx), 0);
	EXPECT_EQ(cx.layer, 2);
	EXPECT_EQ(cx.ext.type, Q2_ZERO);
	EXPECT_EQ(cx.ext.len, 1 << 20);
	/* Past mid's end. */
	EXPECT_EQ(q2_chain_map(&chain, 2 << 20, 8 << 20, &cx), 0);
	EXPECT_EQ(cx.layer, 1);
	EXPECT_EQ(cx.ext.type, Q2_ZERO);
	EXPECT_EQ(cx.ext.len, 6 << 20);
	EXPECT_EQ(q2_chain_map(&chain, 8 << 20, 1, &cx), -EINVAL);

	/* A chain of one qcow2 image: unallocated reads as zeros. */
	chain.nr = 1;
	EXPECT_EQ(q2_chain_map(&chain, cs, 8 << 20, &cx), 0);
	EXPECT_EQ(cx.layer, 1);
	EXPECT_EQ(cx.ext.type, Q2_ZERO);

	/* Consistency checks. */
	EXPECT_EQ(q2_chain_check(&chain, err, sizeof(err)), -EINVAL);
	EXPECT(strstr(err, "needs its backing file 'mid.qcow2'"));
	chain.nr = 3;
	l[1].path = "/y/other.qcow2";
	EXPECT_EQ(q2_chain_check(&chain, err, sizeof(err)), -EINVAL);
	EXPECT(strstr(err, "backing name says"));
	l[1].path = NULL;
	EXPECT_EQ(q2_chain_check(&chain, err, sizeof(err)), -EINVAL);
	l[1].path = "mid.qcow2";
	l[2].id[1] = 1;
	EXPECT_EQ(q2_chain_check(&chain, err, sizeof(err)), -ELOOP);
	EXPECT(strstr(err, "loop"));
	l[2].id[1] = 3;
	/* The base recorded as raw but given as qcow2. */
	l[2].img = top.img;
	EXPECT_EQ(q2_chain_check(&chain, err, sizeof(err)), -EINVAL);
	EXPECT(strstr(err, "backing format is raw but layer 2 is qcow2"));
	l[2].img = NULL;
	/* A raw layer with a layer below it, and a layer too many. */
	struct q2_layer l4[4];

	memcpy(l4, l, sizeof(l));
	l4[3] = l[2];
	l4[3].id[1] = 4;
	chain.layers = l4;
	chain.nr = 4;
	EXPECT_EQ(q2_chain_check(&chain, err, sizeof(err)), -EINVAL);
	EXPECT(strstr(err, "layer 2 is raw"));
	chain.layers = l;
	chain.nr = 2;
	EXPECT_EQ(q2_chain_check(&chain, err, sizeof(err)), -EINVAL);
	EXPECT(strstr(err, "layer 1 needs its backing file 'base.raw'"));
	chain.nr = 0;
	EXPECT_EQ(q2_chain_check(&chain, err, sizeof(err)), -EINVAL);
	chain.nr = Q2_CHAIN_MAX + 1;
	EXPECT_EQ(q2_chain_check(&chain, err, sizeof(err)), -EINVAL);
	/* A qcow2 layer without a backing name, followed by a layer. */
	{
		struct layer_img plain = { 0 };

		tb_init(&plain.t, 3, 16, 1 << 20, false);
		if (!tb_open(&plain.t, 0, NULL, 0, &plain.img, &plain.f)) {
			l[0].img = plain.img;
			chain.nr = 2;
			EXPECT_EQ(q2_chain_check(&chain, err, sizeof(err)), -EINVAL);
			EXPECT(strstr(err, "layer 0 has no backing file"));
			tclose(plain.img, plain.f);
		}
		free(plain.t.buf);
	}

	tclose(top.img, top.f);
	tclose(mid.img, mid.f);
	free(top.t.buf);
	free(mid.t.buf);
}

/* ---- concurrency -------------------------------------------------------- */

struct thr {
	struct q2_image *img;
	struct tfile *f;
	const u8 *data;
	int failed;
};

static void *thr_fn(void *arg)
{
	struct thr *th = arg;
	u8 buf[8192];
	int i;

	for (i = 0; i < 400; i++) {
		u64 c = (i * 7) % 16;
		u64 off = c * 65536 + (i % 8) * 4096;

		if (read_guest(th->img, th->f, off, buf, sizeof(buf)) ||
		    memcmp(buf, th->data + (c & 1) * 65536 + (i % 8) * 4096,
			   sizeof(buf)))
			th->failed = 1;
	}
	return NULL;
}

static void test_threads(void)
{
	struct thr th[4];
	pthread_t tid[4];
	u8 *data = malloc(2 * 65536);
	struct q2_image *img;
	struct tfile *f;
	int i;

	for (i = 0; i < 2 * 65536; i++)
		data[i] = i * 13 / 1000;
	tb_init(&T, 3, 16, 16 << 20, false);
	/* Even clusters compressed, odd clusters plain. */
	for (i = 0; i < 16; i++) {
		if (i & 1) {
			u64 h = tb_data(&T, (u64)i * 65536, 0);

			memcpy(T.buf + h, data + 65536, 65536);
		} else {
			tb_compressed(&T, (u64)i * 65536, data, Q2_COMP_DEFLATE, 0);
		}
	}
	if (tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT(0);
		free(data);
		return;
	}
	for (i = 0; i < 4; i++) {
		th[i] = (struct thr){ img, f, data, 0 };
		pthread_create(&tid[i], NULL, thr_fn, &th[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		EXPECT(!th[i].failed);
	}
	tclose(img, f);
	free(data);
}

/* ---- hostile images refused at open ------------------------------------- */

struct hostile {
	const char *name;
	void (*build)(struct tb *t);
	int ret;
	const char *msg;
};

static void base_img(struct tb *t)
{
	tb_init(t, 3, 16, 16 << 20, false);
	tb_data(t, 0, 0x11);
}

#define H(fn) static void fn(struct tb *t)
H(h_magic) { base_img(t); tb_be32(t, 0, 0x514649fa); }
H(h_version1) { base_img(t); tb_be32(t, 4, 1); }
H(h_version4) { base_img(t); tb_be32(t, 4, 4); }
H(h_cb8) { base_img(t); tb_be32(t, 20, 8); }
H(h_cb22) { base_img(t); tb_be32(t, 20, 22); }
H(h_cb200) { base_img(t); tb_be32(t, 20, 200); }
H(h_hdrlen_small) { base_img(t); tb_be32(t, 100, 100); }
H(h_hdrlen_big) { base_img(t); tb_be32(t, 100, 65536 + 8); }
H(h_refcount_order) { base_img(t); tb_be32(t, 96, 7); }
H(h_l1_huge) { base_img(t); tb_be32(t, 36, Q2_MAX_L1_ENTRIES + 1); }
H(h_l1_zero) { base_img(t); tb_be32(t, 36, 0); }
H(h_l1_small) { base_img(t); tb_be64(t, 24, 4ULL << 30); }
H(h_l1_unaligned) { base_img(t); tb_be64(t, 40, t->l1_off + 8); }
H(h_l1_header) { base_img(t); tb_be64(t, 40, 0); }
H(h_l1_eof) { base_img(t); tb_be64(t, 40, 1ULL << 40); }
H(h_l1_wrap) { base_img(t); tb_be64(t, 40, 0xffffffffffff0000ULL); }
H(h_l1_partial_eof)
{
	tb_init(t, 3, 16, 64ULL << 30, false);	/* 128 L1 entries */
	tb_be64(t, 40, t->len - 65536);
	tb_be32(t, 36, 16384);
	tb_be64(t, 24, 16384ULL * 512 << 20);
}
H(h_rt_unaligned) { base_img(t); tb_be64(t, 48, t->rt_off + 512); }
H(h_rt_header) { base_img(t); tb_be64(t, 48, 0); }
H(h_rt_eof) { base_img(t); tb_be64(t, 48, 1ULL << 40); }
H(h_rt_zero) { base_img(t); tb_be32(t, 56, 0); }
H(h_rt_huge) { base_img(t); tb_be32(t, 56, 129); }
H(h_rt_over_l1) { base_img(t); tb_be64(t, 48, t->l1_off); }
H(h_rt_partial_eof) { base_img(t); tb_be32(t, 56, 100); }
H(h_vsize_huge) { base_img(t); tb_be64(t, 24, 1ULL << 62); }
H(h_vsize_max) { base_img(t); tb_be64(t, 24, ~0ULL); }
H(h_backing_long)
{
	base_img(t);
	tb_be64(t, 8, 1024);
	tb_be32(t, 16, 1024);
}
H(h_backing_cluster)
{
	base_img(t);
	tb_be64(t, 8, 65536 - 10);
	tb_be32(t, 16, 20);
}
H(h_backing_eof)
{
	tb_init(t, 3, 16, 16 << 20, false);
	tb_be64(t, 8, 300);
	tb_be32(t, 16, 100);
	t->len = 350;
}
H(h_backing_nul)
{
	base_img(t);
	tb_backing(t, "abc", NULL);
	t->buf[q2_be64(t->buf + 8) + 1] = 0;
}
H(h_backing_in_header)
{
	base_img(t);
	tb_be64(t, 8, 50);
	tb_be32(t, 16, 10);
}
H(h_only_header_v2) { tb_init(t, 2, 16, 16 << 20, false); t->len = 72; }
H(h_only_header_v3) { tb_init(t, 3, 16, 16 << 20, false); t->len = 104; }
H(h_tiny) { tb_init(t, 3, 16, 16 << 20, false); t->len = 50; }
H(h_v3_short) { tb_init(t, 3, 16, 16 << 20, false); t->len = 90; }
H(h_incompat) { base_img(t); tb_be64(t, 72, 1ULL << 7); }
H(h_incompat_named)
{
	base_img(t);
	tb_be64(t, 72, 1ULL << 7);
	tb_feature_name(t, Q2_FEAT_INCOMPAT, 7, "foo");
}
H(h_aes) { base_img(t); tb_be32(t, 32, Q2_CRYPT_AES); }
H(h_luks) { base_img(t); tb_be32(t, 32, Q2_CRYPT_LUKS); }
H(h_crypt3) { base_img(t); tb_be32(t, 32, 3); }
H(h_crypto_ext)
{
	base_img(t);
	tb_ext(t, Q2_EXT_CRYPTO, "0123456789abcdef", 16);
}
H(h_data_file)
{
	base_img(t);
	tb_be64(t, 72, Q2_INCOMPAT_DATA_FILE);
	tb_ext(t, Q2_EXT_DATA_FILE, "data.raw", 8);
}
H(h_comp_type2)
{
	base_img(t);
	tb_be64(t, 72, Q2_INCOMPAT_COMPRESSION);
	t->buf[104] = 2;
}
H(h_zstd_no_bit) { base_img(t); t->buf[104] = 1; }
H(h_comp_bit_zlib) { base_img(t); tb_be64(t, 72, Q2_INCOMPAT_COMPRESSION); }
H(h_extl2_small)
{
	tb_init(t, 3, 13, 16 << 20, true);
}
H(h_ext_overrun) { base_img(t); tb_be32(t, 112, 0x11111111); tb_be32(t, 116, 65536); }
H(h_ext_no_room)
{
	base_img(t);
	tb_be64(t, 112, 0xdeadbeef);	/* an extension header cut short */
	tb_be64(t, 8, 116);
	tb_be32(t, 16, 4);
}
H(h_backing_fmt_long)
{
	base_img(t);
	tb_ext(t, Q2_EXT_BACKING_FORMAT, "qcow2qcow2qcow2qcow2", 20);
}
H(h_l1_empty_unaligned) { tb_init(t, 3, 16, 0, false); tb_be64(t, 40, 3 * 65536 + 8); }
H(h_snap_empty_unaligned) { base_img(t); tb_be64(t, 64, 65536 * 4 + 8); }
H(h_snap_empty_huge) { base_img(t); tb_be64(t, 64, 1ULL << 63); }
H(h_snap_count) { base_img(t); tb_be32(t, 60, 65537); tb_be64(t, 64, 65536 * 4); }
H(h_snap_unaligned) { base_img(t); tb_be32(t, 60, 1); tb_be64(t, 64, 65536 * 4 + 8); }
H(h_snap_truncated)
{
	u64 tab;

	base_img(t);
	tab = tb_alloc(t, 1);
	tb_snapshot(t, tab, "1", "one", t->l1_off, 1, 16, 16 << 20);
	tb_be32(t, 60, 2000);
	tb_be64(t, 64, tab);
}
H(h_snap_truncated_strings)
{
	u64 tab;

	base_img(t);
	tab = tb_alloc(t, 1);
	tb_snapshot(t, tab, "1", "one", t->l1_off, 1, 16, 16 << 20);
	tb_be16(t, tab + 14, 65535);
	t->len = tab + 100;
	tb_be32(t, 60, 1);
	tb_be64(t, 64, tab);
}
H(h_snap_extra)
{
	u64 tab;

	base_img(t);
	tab = tb_alloc(t, 1);
	tb_snapshot(t, tab, "1", "one", t->l1_off, 1, 16, 16 << 20);
	tb_be32(t, tab + 36, 2000);
	tb_be32(t, 60, 1);
	tb_be64(t, 64, tab);
}

static u8 big_snap_tile[1064];

H(h_snap_64m)
{
	base_img(t);
	/* 65536 entries of 1064 bytes: past QEMU's 64 MiB table limit. */
	tb_be32(t, 60, 65536);
	tb_be64(t, 64, t->len);
	q2_put_be32(big_snap_tile + 36, 1024);
	t->tile = big_snap_tile;
	t->tile_len = sizeof(big_snap_tile);
	t->size_override = t->len + 65536ULL * 1064;
}

static const struct hostile hostile[] = {
	{ "bad magic", h_magic, -EINVAL, "not a qcow2 image" },
	{ "version 1", h_version1, -EOPNOTSUPP, "unsupported qcow2 version 1" },
	{ "version 4", h_version4, -EOPNOTSUPP, "unsupported qcow2 version 4" },
	{ "cluster_bits 8", h_cb8, -EINVAL, "cluster_bits 8 out of range 9..21" },
	{ "cluster_bits 22", h_cb22, -EINVAL, "cluster_bits 22 out of range" },
	{ "cluster_bits 200", h_cb200, -EINVAL, "cluster_bits 200 out of range" },
	{ "header_length < 104", h_hdrlen_small, -EINVAL, "header_length 100 too small" },
	{ "header_length > cluster", h_hdrlen_big, -EINVAL, "header_length 65544 exceeds" },
	{ "refcount_order 7", h_refcount_order, -EINVAL, "refcount_order 7 out of range 0..6" },
	{ "l1_size huge", h_l1_huge, -EFBIG, "l1_size 4194305 exceeds the 32 MiB" },
	{ "l1_size 0, size 16M", h_l1_zero, -EINVAL, "l1_size 0 too small" },
	{ "l1_size too small", h_l1_small, -EINVAL, "l1_size 1 too small for virtual size 4294967296" },
	{ "L1 unaligned", h_l1_unaligned, -EINVAL, "L1 table at 0x30008 is not cluster aligned" },
	{ "L1 in header", h_l1_header, -EINVAL, "L1 table at 0x0 overlaps the header" },
	{ "L1 past EOF", h_l1_eof, -EINVAL, "L1 table at 0x10000000000+0x8 is past end of file" },
	{ "L1 offset wraps", h_l1_wrap, -EINVAL, "past end of file" },
	{ "L1 partly past EOF", h_l1_partial_eof, -EINVAL, "+0x20000 is past end of file" },
	{ "refcount table unaligned", h_rt_unaligned, -EINVAL, "refcount table at 0x10200 is not cluster aligned" },
	{ "refcount table in header", h_rt_header, -EINVAL, "refcount table at 0x0 overlaps the header" },
	{ "refcount table past EOF", h_rt_eof, -EINVAL, "refcount table at 0x10000000000+0x10000 is past" },
	{ "refcount table empty", h_rt_zero, -EINVAL, "refcount_table_clusters is 0" },
	{ "refcount table > 8 MiB", h_rt_huge, -EFBIG, "refcount table of 129 clusters exceeds 8 MiB" },
	{ "refcount table over L1", h_rt_over_l1, -EINVAL, "overlaps the L1 table" },
	{ "refcount table partly past EOF", h_rt_partial_eof, -EINVAL, "is past end of file" },
	{ "virtual size 2^62", h_vsize_huge, -EFBIG, "virtual size 4611686018427387904 too large" },
	{ "virtual size 2^64-1", h_vsize_max, -EFBIG, "too large (max 2251799813685248)" },
	{ "backing name > 1023", h_backing_long, -EINVAL, "backing file name length 1024 exceeds 1023" },
	{ "backing name past cluster", h_backing_cluster, -EINVAL, "outside the header cluster" },
	{ "backing name past EOF", h_backing_eof, -EINVAL, "backing file name at 0x12c+100 is past end of file" },
	{ "backing name NUL", h_backing_nul, -EINVAL, "backing file name contains a NUL byte" },
	{ "backing name in header", h_backing_in_header, -EINVAL, "overlaps the header" },
	{ "only a v2 header (72 bytes)", h_only_header_v2, -EINVAL, "past end of file" },
	{ "only a v3 header (104 bytes)", h_only_header_v3, -EINVAL, "past end of file" },
	{ "50-byte file", h_tiny, -EINVAL, "file of 50 bytes is too small for a qcow2 header" },
	{ "90-byte v3", h_v3_short, -EINVAL, "too small for a v3 header" },
	{ "unknown incompatible bit", h_incompat, -EOPNOTSUPP, "unknown incompatible feature bit 7" },
	{ "unknown incompatible bit, named", h_incompat_named, -EOPNOTSUPP, "unknown incompatible feature bit 7 (foo)" },
	{ "AES encryption", h_aes, -EOPNOTSUPP, "image is encrypted (AES); decrypt it with qemu-img convert first" },
	{ "LUKS encryption", h_luks, -EOPNOTSUPP, "image is encrypted (LUKS); decrypt it with qemu-img convert first" },
	{ "crypt_method 3", h_crypt3, -EINVAL, "unknown crypt_method 3" },
	{ "crypto extension unencrypted", h_crypto_ext, -EINVAL, "without LUKS" },
	{ "external data file", h_data_file, -EOPNOTSUPP, "external data file; qemu-img convert it first" },
	{ "compression type 2", h_comp_type2, -EOPNOTSUPP, "unknown compression_type 2" },
	{ "zstd without the bit", h_zstd_no_bit, -EINVAL, "compression_type 1 without" },
	{ "compression bit with zlib", h_comp_bit_zlib, -EINVAL, "compression type bit set" },
	{ "extended L2, 8K clusters", h_extl2_small, -EINVAL, "extended L2 needs cluster_bits >= 14, not 13" },
	{ "extension overruns", h_ext_overrun, -EINVAL, "length 65536 too large" },
	{ "extension header cut short", h_ext_no_room, -EINVAL, "overruns the header area" },
	{ "backing format too long", h_backing_fmt_long, -EINVAL, "backing format extension too long (20 bytes)" },
	{ "empty L1 unaligned (as QEMU)", h_l1_empty_unaligned, -EINVAL, "L1 table at 0x30008 is not cluster aligned" },
	{ "empty snapshot table unaligned (as QEMU)", h_snap_empty_unaligned, -EINVAL, "snapshot table at 0x40008 is not cluster aligned" },
	{ "empty snapshot table at 2^63 (as QEMU)", h_snap_empty_huge, -EINVAL, "snapshot table offset 0x8000000000000000 is invalid" },
	{ "snapshot count absurd", h_snap_count, -EFBIG, "nb_snapshots 65537 exceeds 65536" },
	{ "snapshot table unaligned", h_snap_unaligned, -EINVAL, "snapshot table at 0x40008 is not cluster aligned" },
	{ "snapshot table truncated", h_snap_truncated, -EINVAL, "snapshot table truncated at entry" },
	{ "snapshot strings truncated", h_snap_truncated_strings, -EINVAL, "snapshot table truncated at entry 0" },
	{ "snapshot extra data", h_snap_extra, -EINVAL, "snapshot 0: extra data size 2000 exceeds 1024" },
	{ "snapshot table > 64 MiB", h_snap_64m, -EFBIG, "snapshot table exceeds 64 MiB" },
};

static void run_hostile(const struct hostile *h)
{
	struct tb t = { 0 };

	h->build(&t);
	expect_refused(&t, h->ret, h->msg);
	free(t.buf);
}

/* Snapshot-level refusals: only when that snapshot is selected. */
static void test_snapshot_bad_l1(void)
{
	struct q2_image *img;
	struct tfile *f;

	build_snapshots(&T);
	/* Snapshot id 1's L1 unaligned, id 2's disk size absurd. */
	tb_be64(&T, q2_be64(T.buf + 64), q2_be64(T.buf + q2_be64(T.buf + 64)) + 8);
	tb_be64(&T, q2_be64(T.buf + 64) + 72 + 48, 1ULL << 62);
	EXPECT_EQ(tb_open(&T, 0, NULL, 0, &img, &f), 0);
	if (f)
		tclose(img, f);
	EXPECT_EQ(tb_open(&T, 0, "1", 0, &img, &f), -EINVAL);
	EXPECT(strstr(cur_err, "snapshot L1 table at 0x"));
	EXPECT(strstr(cur_err, "not cluster aligned"));
	EXPECT_EQ(tb_open(&T, 0, "2", 0, &img, &f), -EFBIG);
	EXPECT(strstr(cur_err, "snapshot 1: disk size 4611686018427387904 too large"));
}

/* ---- hostile mappings: the open succeeds, the map or read fails -------- */

/* Map @off of @t; expect @ret (and -EIO leaves nothing half-done). */
static void expect_map(struct tb *t, u64 off, int ret, bool rest)
{
	struct q2_image *img;
	struct tfile *f;
	struct q2_extent e;
	unsigned long warned = q2_shim_warnings;

	if (tb_open(t, 0, NULL, 0, &img, &f)) {
		printf("    # open failed: %s\n", cur_err);
		cur_failed = 1;
		return;
	}
	EXPECT_EQ(q2_map(img, off, 65536, &e), ret);
	if (ret == -EIO)
		EXPECT(q2_shim_warnings > warned);	/* one line logged */
	/* The rest of the disk is still readable. */
	if (rest)
		EXPECT_EQ(q2_map(img, 8 << 20, 4096, &e), 0);
	tclose(img, f);
}

static void test_map_l2_entry_past_eof(void)
{
	base_img(&T);
	tb_set(&T, 65536, (1ULL << 40) | Q2_OFLAG_COPIED, 0);
	expect_map(&T, 65536, -EIO, true);
	/* Exactly at EOF. */
	tb_set(&T, 65536, (T.len + 65535) & ~65535ULL, 0);
	expect_map(&T, 65536, -EIO, true);
}

static void test_map_l2_entry_unaligned(void)
{
	base_img(&T);
	tb_set(&T, 65536, 3 * 65536 + 512, 0);
	expect_map(&T, 65536, -EIO, true);
	/* A zero cluster with an unaligned preallocation offset, like QEMU. */
	tb_set(&T, 65536, 3 * 65536 + 512 + Q2_OFLAG_ZERO, 0);
	expect_map(&T, 65536, -EIO, true);
}

static void test_map_l2_entry_metadata(void)
{
	base_img(&T);
	tb_set(&T, 65536, T.l1_off, 0);		/* the L1 table */
	expect_map(&T, 65536, -EIO, true);
	tb_set(&T, 65536, T.rt_off, 0);		/* the refcount table */
	expect_map(&T, 65536, -EIO, true);
}

static void test_map_l2_table_bad(void)
{
	base_img(&T);
	tb_be64(&T, T.l1_off, T.l1_off + 512);	/* unaligned */
	expect_map(&T, 0, -EIO, false);
	tb_be64(&T, T.l1_off, 1ULL << 40);	/* past EOF */
	expect_map(&T, 0, -EIO, false);
	tb_be64(&T, T.l1_off, T.rt_off);	/* the refcount table */
	expect_map(&T, 0, -EIO, false);
	tb_be64(&T, T.l1_off, T.l1_off);	/* itself */
	expect_map(&T, 0, -EIO, false);
	/* Reserved L1 bits are ignored, as QEMU does. */
	base_img(&T);
	tb_be64(&T, T.l1_off, tb_rd64(&T, T.l1_off) | (0x7fULL << 56) | 0x1ff);
	expect_map(&T, 0, 0, true);
	/* An L2 table cut by EOF. */
	base_img(&T);
	T.len -= 100;
	tb_set(&T, 0, 0, 0);
	T.len = q2_be64(T.buf + T.l1_off) & Q2_OFFSET_MASK;
	T.len += 1000;
	expect_map(&T, 0, -EIO, false);
}

static void test_map_v2_zero_flag(void)
{
	tb_init(&T, 2, 16, 16 << 20, false);
	tb_data(&T, 0, 0x12);
	tb_set(&T, 0, tb_rd64(&T, tb_entry_off(&T, 0)) | Q2_OFLAG_ZERO, 0);
	expect_map(&T, 0, -EIO, true);	/* QEMU: "Zero cluster entry found in pre-v3 image" */
}

static void test_map_compressed_bad(void)
{
	u32 shift = 62 - (16 - 8);
	u8 *data = calloc(1, 65536);
	struct q2_image *img;
	struct tfile *f;
	struct q2_extent e;
	u8 *out = malloc(65536);
	u64 ent;

	base_img(&T);
	/* Past EOF. */
	tb_set(&T, 65536, Q2_OFLAG_COMPRESSED | (1ULL << 40), 0);
	expect_map(&T, 65536, -EIO, true);
	/* Into the header cluster. */
	tb_set(&T, 65536, Q2_OFLAG_COMPRESSED | 100, 0);
	expect_map(&T, 65536, -EIO, true);
	/* Into the L1 table. */
	tb_set(&T, 65536, Q2_OFLAG_COMPRESSED | (T.l1_off + 8), 0);
	expect_map(&T, 65536, -EIO, true);
	/* Absurd sector count: clipped to EOF; the stream is still whole. */
	ent = tb_compressed(&T, 65536, data, Q2_COMP_DEFLATE, 0);
	tb_set(&T, 65536, ent | (255ULL << shift), 0);
	if (!tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT_EQ(q2_map(img, 65536, 65536, &e), 0);
		EXPECT_EQ(e.type, Q2_COMPRESSED);
		EXPECT(e.comp_off + e.comp_len <= f->mem.size);
		/* Trailing bytes after a raw deflate stream are fine. */
		EXPECT_EQ(q2_read_compressed(img, &e, 0, out, 65536), 0);
		tclose(img, f);
	}
	/* Too short: one sector for a stream that needs more. */
	memset(data, 0, 65536);
	for (int i = 0; i < 65536; i++)
		data[i] = (u8)(i * 2654435761U >> 13);
	ent = tb_compressed(&T, 65536, data, Q2_COMP_DEFLATE, 0);
	tb_set(&T, 65536, ent & ~(255ULL << shift), 0);
	if (!tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT_EQ(q2_map(img, 65536, 65536, &e), 0);
		EXPECT_EQ(q2_read_compressed(img, &e, 0, out, 65536), -EIO);
		tclose(img, f);
	}
	/* Garbage instead of a stream: both decoders refuse it. */
	ent = tb_compressed(&T, 65536, data, Q2_COMP_DEFLATE, 0);
	memset(T.buf + (ent & ((1ULL << shift) - 1)), 0xff, 64);
	if (!tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT_EQ(q2_map(img, 65536, 65536, &e), 0);
		EXPECT_EQ(q2_read_compressed(img, &e, 0, out, 65536), -EIO);
		/* A failed cluster is not cached as good. */
		EXPECT_EQ(q2_read_compressed(img, &e, 0, out, 65536), -EIO);
		tclose(img, f);
	}
	tb_be64(&T, 72, Q2_INCOMPAT_COMPRESSION);
	T.buf[104] = 1;
	if (!tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT_EQ(q2_map(img, 65536, 65536, &e), 0);
		EXPECT_EQ(q2_read_compressed(img, &e, 0, out, 65536), -EIO);
		tclose(img, f);
	}
	/* A zstd frame that decodes to less than a cluster. */
	{
		u8 small[100];
		size_t n = ZSTD_compress(small, sizeof(small), data, 10, 1);
		u64 coff = tb_alloc(&T, 1) + 8;

		memcpy(T.buf + coff, small, n);
		tb_set(&T, 65536, Q2_OFLAG_COMPRESSED | coff, 0);
		if (!tb_open(&T, 0, NULL, 0, &img, &f)) {
			EXPECT_EQ(q2_map(img, 65536, 65536, &e), 0);
			EXPECT_EQ(q2_read_compressed(img, &e, 0, out, 65536), -EIO);
			tclose(img, f);
		}
	}
	/* 512-byte clusters: offset field reaches bit 60; bits 56+ corrupt. */
	tb_init(&T, 3, 9, 1 << 20, false);
	tb_set(&T, 0, Q2_OFLAG_COMPRESSED | (1ULL << 57) | 4096, 0);
	if (!tb_open(&T, 0, NULL, 0, &img, &f)) {
		EXPECT_EQ(q2_map(img, 0, 512, &e), -EIO);
		tclose(img, f);
	}
	free(data);
	free(out);
}

static void test_map_extended_bad(void)
{
	u64 h;

	tb_init(&T, 3, 16, 16 << 20, true);
	h = tb_alloc(&T, 1);
	tb_set(&T, 0, h, 0x1ULL | (0x1ULL << 32));	/* alloc and zero */
	expect_map(&T, 0, -EIO, true);
	tb_set(&T, 0, 0, 0x1ULL);			/* alloc without offset */
	expect_map(&T, 0, -EIO, true);
	tb_set(&T, 0, Q2_OFLAG_COMPRESSED | (h + 10), 0x1ULL);	/* bitmap */
	expect_map(&T, 0, -EIO, true);
	tb_set(&T, 0, h + 512, 0x1ULL);			/* unaligned */
	expect_map(&T, 0, -EIO, true);
	/* Fine again. */
	tb_set(&T, 0, h, 0x1ULL | (0x2ULL << 32));
	expect_map(&T, 0, 0, true);
}

/* ---- the write path ----------------------------------------------------- */

/*
 * Make @t's refcounts exact at 2^@order bits: every cluster of the file
 * is in use (tb images hold only metadata and data) and counted once, in
 * the one refcount block at cluster 2.
 */
static void tb_refcounts(struct tb *t, u32 order)
{
	u64 n = (t->len + t->cs - 1) / t->cs, i;
	u8 *blk;

	if (t->version == 3)
		tb_be32(t, 96, order);
	tb_grow(t, n * t->cs);
	blk = t->buf + 2ULL * t->cs;
	memset(blk, 0, t->cs);
	for (i = 0; i < n; i++)
		q2_rc_set(blk, order, i, 1);
}

/* The reference layout: QEMU's get_refcount_ro0..ro6. */
static u64 ref_get(const u8 *b, u32 order, u64 i)
{
	switch (order) {
	case 0: return (b[i / 8] >> (i % 8)) & 1;
	case 1: return (b[i / 4] >> (2 * (i % 4))) & 3;
	case 2: return (b[i / 2] >> (4 * (i % 2))) & 15;
	case 3: return b[i];
	case 4: return (u64)b[2 * i] << 8 | b[2 * i + 1];
	case 5: return q2_be32(b + 4 * i);
	default: return q2_be64(b + 8 * i);
	}
}

static void test_refcount_packing(void)
{
	u8 blk[256], copy[256];
	u32 order;
	u64 i, n, v, max, seed = 5;

	for (order = 0; order <= 6; order++) {
		n = sizeof(blk) * 8 >> order;
		max = order == 6 ? ~0ULL : (1ULL << (1U << order)) - 1;
		memset(blk, 0, sizeof(blk));
		for (i = 0; i < n; i++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			v = (seed >> 11) & max;
			memcpy(copy, blk, sizeof(blk));
			q2_rc_set(blk, order, i, v);
			EXPECT_EQ(q2_rc_get(blk, order, i), v);
			EXPECT_EQ(ref_get(blk, order, i), v);
			/* Nothing else moved. */
			q2_rc_set(copy, order, i, v);
			EXPECT(!memcmp(copy, blk, sizeof(blk)));
		}
		for (i = 0; i < n; i++)
			EXPECT_EQ(q2_rc_get(blk, order, i), ref_get(blk, order, i));
	}
	/* Byte layout: LSB first below 8 bits, big-endian from 8. */
	memset(blk, 0, sizeof(blk));
	q2_rc_set(blk, 0, 0, 1);
	q2_rc_set(blk, 0, 7, 1);
	EXPECT_EQ(blk[0], 0x81);
	memset(blk, 0, sizeof(blk));
	q2_rc_set(blk, 1, 1, 3);
	EXPECT_EQ(blk[0], 0x0c);
	memset(blk, 0, sizeof(blk));
	q2_rc_set(blk, 2, 1, 0xa);
	EXPECT_EQ(blk[0], 0xa0);
	q2_rc_set(blk, 4, 1, 0x1234);
	EXPECT(blk[2] == 0x12 && blk[3] == 0x34);
	q2_rc_set(blk, 6, 1, 0x0102030405060708ULL);
	EXPECT(blk[8] == 1 && blk[15] == 8);
}

struct wfile {
	struct q2u_wmem m;
};

/* Open @t writable over an in-memory copy (kept in *@f). */
static int tb_open_w(const struct tb *t, u64 cache, struct q2_image **img,
		     struct wfile **f, void (*barrier)(void *), void *ctx)
{
	struct q2_open_args a = { 0 };
	struct wfile *w = calloc(1, sizeof(*w));
	int ret;

	seed_write(t, "write");
	q2u_wmem_init(&w->m, t->buf, t->len, 256ULL << 20);
	a.ops = &q2u_wmem_ops;
	a.file = &w->m;
	a.flags = Q2_OPEN_WRITE;
	a.l2_cache_bytes = cache;
	a.name = "q2test";
	a.err = cur_err;
	a.err_len = sizeof(cur_err);
	a.barrier = barrier;
	a.barrier_ctx = ctx;
	memset(cur_err, 0, sizeof(cur_err));
	ret = q2_open(&a, img);
	if (ret) {
		EXPECT(cur_err[0] && strlen(cur_err) <= 75);
		q2u_wmem_free(&w->m);
		free(w);
		w = NULL;
	}
	*f = w;
	return ret;
}

static void wclose(struct q2_image *img, struct wfile *f, int expect)
{
	EXPECT_EQ(q2_close_clean(img), expect);
	q2u_wmem_free(&f->m);
	free(f);
}

/* Write @len bytes of @pat at @off through begin/commit. */
static int wr(struct q2_image *img, struct wfile *f, u64 off, u64 len, u8 pat)
{
	struct q2_write w;
	u8 *buf = malloc(len);
	int ret = 0;

	memset(buf, pat, len);
	while (len && !ret) {
		ret = q2_write_begin(img, NULL, off, len, &w);
		if (ret)
			break;
		ret = q2u_wmem_ops.pwrite(&f->m, buf, w.len, w.host_off);
		ret = q2_write_commit(img, &w, ret);
		off += w.len;
		len -= w.len;
	}
	free(buf);
	return ret;
}

/* Read guest bytes of a writable image. */
static int rd(struct q2_image *img, struct wfile *f, u64 off, u8 *buf, u64 len)
{
	struct q2_extent e;
	int ret;

	while (len) {
		ret = q2_map(img, off, len, &e);
		if (ret)
			return ret;
		if (e.type == Q2_DATA)
			ret = q2u_wmem_ops.pread(&f->m, buf, e.len, e.host_off);
		else if (e.type == Q2_COMPRESSED)
			ret = q2_read_compressed(img, &e, 0, buf, e.len);
		else
			memset(buf, 0, e.len);
		if (ret)
			return ret;
		buf += e.len;
		off += e.len;
		len -= e.len;
	}
	return 0;
}

static u64 refcount_of(struct q2_image *img, u64 host)
{
	u64 rc = ~0ULL;

	q2_mutex_lock(&img->meta);
	if (q2_refcount(img, host >> img->cluster_bits, &rc))
		rc = ~0ULL;
	q2_mutex_unlock(&img->meta);
	return rc;
}

static void test_write_refusals(void)
{
	struct q2_open_args a = { 0 };
	struct q2_image *img;
	struct wfile *f;
	struct tfile *rf;
	struct q2_write w;
	u64 done;

	tb_init(&T, 3, 16, 16 << 20, false);
	tb_data(&T, 0, 0x11);
	tb_refcounts(&T, 4);
	tb_be64(&T, 72, Q2_INCOMPAT_DIRTY);
	EXPECT_EQ(tb_open_w(&T, 0, &img, &f, NULL, NULL), -EROFS);
	EXPECT(!strcmp(cur_err, "image is dirty; run qemu-img check -r all"));
	tb_be64(&T, 72, Q2_INCOMPAT_CORRUPT);
	EXPECT_EQ(tb_open_w(&T, 0, &img, &f, NULL, NULL), -EROFS);
	EXPECT(strstr(cur_err, "corrupt") != NULL);
	tb_be64(&T, 72, 0);
	/* Reserved bits in a refcount table entry. */
	tb_be64(&T, T.rt_off, 2ULL * T.cs | 1);
	EXPECT_EQ(tb_open_w(&T, 0, &img, &f, NULL, NULL), -EINVAL);
	EXPECT(strstr(cur_err, "reserved") != NULL);
	tb_be64(&T, T.rt_off, 2ULL * T.cs);
	/* The header cluster counted as free. */
	q2_rc_set(T.buf + 2 * T.cs, 4, 0, 0);
	EXPECT_EQ(tb_open_w(&T, 0, &img, &f, NULL, NULL), -EINVAL);
	EXPECT(strstr(cur_err, "refcount 0") != NULL);
	q2_rc_set(T.buf + 2 * T.cs, 4, 0, 1);
	/* A refcount block outside the file. */
	tb_be64(&T, T.rt_off + 8, 1ULL << 40);
	EXPECT_EQ(tb_open_w(&T, 0, &img, &f, NULL, NULL), -EINVAL);
	tb_be64(&T, T.rt_off + 8, 0);

	/* Header-only and write; ops that cannot write. */
	rf = tb_file(&T);
	a.ops = &q2u_mem_ops;
	a.file = &rf->mem;
	a.flags = Q2_OPEN_WRITE | Q2_OPEN_HEADER_ONLY;
	a.err = cur_err;
	a.err_len = sizeof(cur_err);
	EXPECT_EQ(q2_open(&a, &img), -EINVAL);
	a.flags = Q2_OPEN_WRITE;
	EXPECT_EQ(q2_open(&a, &img), -EROFS);
	EXPECT(strstr(cur_err, "cannot write") != NULL);
	free(rf);

	/* Read-only images refuse the write calls. */
	EXPECT_EQ(tb_open(&T, 0, NULL, 0, &img, &rf), 0);
	if (img) {
		EXPECT_EQ(q2_write_begin(img, NULL, 0, 512, &w), -EROFS);
		EXPECT_EQ(q2_zero(img, NULL, 0, 512, 0, &done), -EROFS);
		EXPECT_EQ(q2_flush(img), -EROFS);
		EXPECT_EQ(q2_resize(img, 32 << 20), -EROFS);
		EXPECT(!q2_writable(img));
		tclose(img, rf);
	}
	/* A backing file needs the chain. */
	tb_backing(&T, "base.raw", "raw");
	if (!tb_open_w(&T, 0, &img, &f, NULL, NULL)) {
		EXPECT_EQ(q2_write_begin(img, NULL, 0, 512, &w), -EINVAL);
		EXPECT_EQ(q2_zero(img, NULL, 0, 512, 0, &done), -EINVAL);
		wclose(img, f, 0);
	} else {
		EXPECT(0);
	}
}

static void test_write_snapshot_refused(void)
{
	struct q2_image *img;
	struct wfile *f;
	struct q2_open_args a = { 0 };
	u64 sn = 0;

	tb_init(&T, 3, 16, 16 << 20, false);
	tb_data(&T, 0, 0x11);
	/* One snapshot entry sharing the active L1. */
	sn = tb_alloc(&T, 1);
	tb_be64(&T, sn, T.l1_off);
	tb_be32(&T, sn + 8, T.l1_size);
	tb_be16(&T, sn + 12, 1);
	tb_be16(&T, sn + 14, 1);
	T.buf[sn + 40] = '1';
	T.buf[sn + 41] = 's';
	tb_be32(&T, 60, 1);
	tb_be64(&T, 64, sn);
	tb_refcounts(&T, 4);
	(void)a;
	seed_write(&T, "snap-write");
	{
		struct q2_open_args b = { 0 };
		struct q2u_wmem m;

		q2u_wmem_init(&m, T.buf, T.len, T.len * 2);
		b.ops = &q2u_wmem_ops;
		b.file = &m;
		b.flags = Q2_OPEN_WRITE;
		b.snapshot = "s";
		b.err = cur_err;
		b.err_len = sizeof(cur_err);
		EXPECT_EQ(q2_open(&b, &img), -EROFS);
		EXPECT(strstr(cur_err, "read-only") != NULL);
		EXPECT(strlen(cur_err) <= 75);
		q2u_wmem_free(&m);
	}
	/* The active state is writable. */
	EXPECT_EQ(tb_open_w(&T, 0, &img, &f, NULL, NULL), 0);
	if (img)
		wclose(img, f, 0);
}

/*
 * A hostile image against the allocator and the write path
 * (test_qcow2_11 in the VM): metadata whose refcount is 0 is never given
 * out, a COPIED entry naming a refcount block is not written in place,
 * a reference to metadata is never dropped, and past the end of the file
 * refcounts are ignored (counted from 0).
 */
static void test_alloc_guards(void)
{
	u64 rb = 2ULL * 65536, off, end, rc, lim;
	struct q2_image *img;
	struct q2_write w;
	struct wfile *f;
	u32 got;
	bool fresh;
	u8 *blk;

	tb_init(&T, 3, 16, 1 << 30, false);
	tb_data(&T, 0, 0x21);
	tb_set(&T, 65536, rb | Q2_OFLAG_COPIED, 0);
	/* The second L2 table is the refcount block, too. */
	tb_be64(&T, T.l1_off + 8, rb | Q2_OFLAG_COPIED);
	tb_refcounts(&T, 4);
	end = T.len;
	blk = T.buf + rb;
	q2_rc_set(blk, 4, rb >> 16, 0);		/* the block counts itself 0 */
	for (lim = end >> 16; lim < (end >> 16) + 64; lim++)
		q2_rc_set(blk, 4, lim, 7);	/* garbage past the end */
	if (tb_open_w(&T, 0, &img, &f, NULL, NULL)) {
		EXPECT(0);
		return;
	}
	EXPECT_EQ(q2_write_begin(img, NULL, 65536, 512, &w), -EIO);
	EXPECT_EQ(q2_write_begin(img, NULL, 512 << 20, 512, &w), -EIO);
	q2_mutex_lock(&img->meta);
	img->free_hint = 0;
	EXPECT_EQ(q2_alloc_clusters(img, 1, false, &off, &got, &fresh), 0);
	EXPECT_EQ(off, end);
	EXPECT_EQ(q2_refcount(img, off >> 16, &rc), 0);
	EXPECT_EQ(rc, 1);
	/* Dropped references to metadata are kept when applied. */
	EXPECT_EQ(q2_drop(img, 0, 1), 0);
	EXPECT_EQ(q2_drop(img, T.l1_off, 1), 0);
	EXPECT_EQ(q2_sync_locked(img), 0);
	EXPECT_EQ(q2_refcount(img, 0, &rc), 0);
	EXPECT_EQ(rc, 1);
	EXPECT_EQ(q2_refcount(img, T.l1_off >> 16, &rc), 0);
	EXPECT_EQ(rc, 1);
	q2_mutex_unlock(&img->meta);
	wclose(img, f, 0);
}

static void test_alloc_free(void)
{
	u32 order;

	for (order = 0; order <= 6; order++) {
		struct q2_image *img;
		struct wfile *f;
		u64 off, off2, end, rc;
		u32 got;
		bool fresh;
		u8 *blk;

		tb_init(&T, 3, 16, 16 << 20, false);
		tb_data(&T, 0, 0x21);
		tb_refcounts(&T, order);
		end = T.len;
		if (tb_open_w(&T, 0, &img, &f, NULL, NULL)) {
			EXPECT(0);
			continue;
		}
		/* A no-op discard sets the write state up. */
		EXPECT_EQ(q2_zero(img, NULL, 8 << 20, 65536, Q2_DISCARD, &off), 0);
		q2_mutex_lock(&img->meta);
		/* Nothing free inside the file: three at its end, fresh. */
		EXPECT_EQ(q2_alloc_clusters(img, 3, false, &off, &got, &fresh), 0);
		EXPECT_EQ(off, end);
		EXPECT_EQ(got, 3);
		EXPECT(fresh);
		EXPECT_EQ(q2_refcount(img, off >> 16, &rc), 0);
		EXPECT_EQ(rc, 1);
		/* Freed now: reused at once (hint lowered). */
		q2_free_now(img, off + 65536, 1);
		EXPECT_EQ(q2_refcount(img, (off >> 16) + 1, &rc), 0);
		EXPECT_EQ(rc, 0);
		EXPECT_EQ(q2_alloc_clusters(img, 1, false, &off2, &got, &fresh), 0);
		EXPECT_EQ(off2, off + 65536);
		EXPECT(!fresh);
		/* Dropped: decremented by the sync, then quarantined. */
		EXPECT_EQ(q2_drop(img, off, 1), 0);
		EXPECT_EQ(q2_refcount(img, off >> 16, &rc), 0);
		EXPECT_EQ(rc, 1);
		EXPECT_EQ(q2_sync_locked(img), 0);
		EXPECT_EQ(q2_refcount(img, off >> 16, &rc), 0);
		EXPECT_EQ(rc, 0);
		EXPECT_EQ(q2_alloc_clusters(img, 1, false, &off2, &got, &fresh), 0);
		EXPECT(off2 != off);
		q2_quar_lift(img, img->quar_seq);
		EXPECT_EQ(q2_alloc_clusters(img, 1, false, &off2, &got, &fresh), 0);
		EXPECT_EQ(off2, off);
		/* Exact runs skip shorter holes. */
		q2_free_now(img, off, 1);
		EXPECT_EQ(q2_alloc_clusters(img, 2, true, &off2, &got, &fresh), 0);
		EXPECT(off2 > off);
		EXPECT_EQ(got, 2);
		/* Overflow at the width's maximum (1-bit: 1). */
		if (order == 0)
			EXPECT_EQ(q2_refcount_add(img, off2 >> 16, 1, &rc), -ERANGE);
		EXPECT_EQ(q2_refcount_add(img, off >> 16, -1, &rc), -EIO);
		EXPECT_EQ(q2_rb_writeback(img), 0);
		q2_mutex_unlock(&img->meta);
		/* On disk, in the reference layout. */
		blk = f->m.data + 2 * 65536;
		EXPECT_EQ(ref_get(blk, order, off >> 16), 0);
		EXPECT_EQ(ref_get(blk, order, off2 >> 16), 1);
		EXPECT_EQ(ref_get(blk, order, 0), 1);
		wclose(img, f, 0);
	}
}

static void test_write_basic(void)
{
	static const u32 bits[] = { 9, 12, 16, 21 };
	unsigned int i;

	for (i = 0; i < 4; i++) {
		u64 cs = 1ULL << bits[i], h0, done;
		struct q2_image *img;
		struct wfile *f;
		struct q2_extent e;
		u8 *buf = malloc(3 * cs);

		tb_init(&T, i & 1 ? 2 : 3, bits[i], 64ULL << 20, false);
		h0 = tb_data(&T, 0, 0x31);
		tb_refcounts(&T, 4);
		if (tb_open_w(&T, 0, &img, &f, NULL, NULL)) {
			EXPECT(0);
			free(buf);
			continue;
		}
		/* In place into the owned cluster. */
		EXPECT_EQ(wr(img, f, cs / 2, cs / 4, 0x32), 0);
		EXPECT_EQ(q2_map(img, 0, cs, &e), 0);
		EXPECT_EQ(e.host_off, h0);
		/* Allocating, across clusters, with copy-on-write edges. */
		EXPECT_EQ(wr(img, f, cs + 100, cs, 0x33), 0);
		EXPECT_EQ(rd(img, f, 0, buf, 3 * cs), 0);
		EXPECT(all_bytes(buf, cs / 2, 0x31));
		EXPECT(all_bytes(buf + cs / 2, cs / 4, 0x32));
		EXPECT(all_bytes(buf + cs / 2 + cs / 4, cs / 4, 0x31));
		EXPECT(all_bytes(buf + cs, 100, 0));
		EXPECT(all_bytes(buf + cs + 100, cs, 0x33));
		EXPECT(all_bytes(buf + 2 * cs + 100, cs - 100, 0));
		/* Zero the first cluster: v3 zero flag, v2 deallocation. */
		EXPECT_EQ(q2_zero(img, NULL, 0, cs, 0, &done), 0);
		EXPECT_EQ(done, cs);
		EXPECT_EQ(q2_map(img, 0, cs, &e), 0);
		EXPECT_EQ(e.type, i & 1 ? Q2_UNALLOC : Q2_ZERO);
		/* A partial head is left to the caller. */
		EXPECT_EQ(q2_zero(img, NULL, cs + 200, 2 * cs, 0, &done), 0);
		EXPECT_EQ(done, cs + 200);
		EXPECT_EQ(q2_flush(img), 0);
		EXPECT_EQ(rd(img, f, 0, buf, cs), 0);
		EXPECT(all_bytes(buf, cs, 0));
		wclose(img, f, 0);
		free(buf);
	}
}

struct bar_ctx {
	struct q2_image *img;
	struct wfile *f;
	u64 stale;
	int calls;
	bool reused;
};

static void bar_fn(void *ctx)
{
	struct bar_ctx *b = ctx;
	struct q2_write w;

	/*
	 * Called without the core's locks; the stale in-place write lands
	 * now.  Until we return, the freed cluster is not handed out.
	 */
	b->calls++;
	q2u_wmem_ops.pwrite(&b->f->m, "stale", 5, b->stale);
	if (!q2_write_begin(b->img, NULL, 6 << 16, 4096, &w)) {
		b->reused |= w.host_off >> 16 == b->stale >> 16;
		q2_write_commit(b->img, &w, 0);
	}
}

static void test_barrier(void)
{
	struct bar_ctx b = { 0 };
	struct q2_image *img;
	struct wfile *f;
	struct q2_write w;
	u64 done;
	u8 buf[512];

	tb_init(&T, 3, 16, 16 << 20, false);
	tb_data(&T, 0, 0x41);
	tb_data(&T, 65536, 0x42);
	tb_refcounts(&T, 4);
	if (tb_open_w(&T, 0, &img, &f, bar_fn, &b)) {
		EXPECT(0);
		return;
	}
	b.img = img;
	b.f = f;
	/* An in-place write planned, still "in flight"... */
	EXPECT_EQ(q2_write_begin(img, NULL, 100, 10, &w), 0);
	EXPECT(!w.commit);
	b.stale = w.host_off;
	/* ...while its cluster is discarded and released. */
	EXPECT_EQ(q2_zero(img, NULL, 0, 65536, Q2_DISCARD, &done), 0);
	EXPECT_EQ(q2_flush(img), 0);
	EXPECT_EQ(b.calls, 1);
	EXPECT(!b.reused);
	/* After the barrier the cluster is reused. */
	EXPECT_EQ(q2_write_begin(img, NULL, 7 << 16, 512, &w), 0);
	EXPECT_EQ(w.host_off >> 16, b.stale >> 16);
	EXPECT_EQ(q2_write_commit(img, &w, 0), 0);
	/* The discarded range reads zeros; the stale bytes are nowhere. */
	EXPECT_EQ(rd(img, f, 0, buf, sizeof(buf)), 0);
	EXPECT(all_bytes(buf, sizeof(buf), 0));
	/* A flush with nothing freed calls no barrier. */
	EXPECT_EQ(q2_flush(img), 0);
	EXPECT_EQ(b.calls, 1);
	wclose(img, f, 0);
}

struct waiter {
	struct q2_image *img;
	struct wfile *f;
	struct q2_write w;
	int ret;
	volatile int done;
};

static void *waiter_fn(void *arg)
{
	struct waiter *x = arg;

	x->ret = q2_write_begin(x->img, NULL, 3 << 16 | 4096, 512, &x->w);
	x->done = 1;
	return NULL;
}

static void test_inflight_wait(void)
{
	struct q2_image *img;
	struct wfile *f;
	struct q2_write w;
	struct waiter x = { 0 };
	pthread_t t;
	int i;

	tb_init(&T, 3, 16, 16 << 20, false);
	tb_data(&T, 0, 0x51);
	tb_refcounts(&T, 4);
	if (tb_open_w(&T, 0, &img, &f, NULL, NULL)) {
		EXPECT(0);
		return;
	}
	/* First writer allocates cluster 3 and holds its plan. */
	EXPECT_EQ(q2_write_begin(img, NULL, 3 << 16, 512, &w), 0);
	EXPECT(w.commit);
	x.img = img;
	x.f = f;
	pthread_create(&t, NULL, waiter_fn, &x);
	for (i = 0; i < 20 && !x.done; i++)
		usleep(2000);
	EXPECT(!x.done);	/* same guest cluster: sleeps */
	EXPECT_EQ(q2u_wmem_ops.pwrite(&f->m, "abc", 3, w.host_off), 0);
	EXPECT_EQ(q2_write_commit(img, &w, 0), 0);
	pthread_join(t, NULL);
	EXPECT_EQ(x.ret, 0);
	/* It re-planned: now in place, in the cluster the first one made. */
	EXPECT(!x.w.commit);
	EXPECT_EQ(x.w.host_off, w.host_off + 4096);
	/* A failed data write frees the new cluster, mapping unchanged. */
	EXPECT_EQ(q2_write_begin(img, NULL, 5 << 16, 512, &w), 0);
	EXPECT_EQ(q2_write_commit(img, &w, -EIO), -EIO);
	EXPECT_EQ(refcount_of(img, w.host_off & ~0xffffULL), 0);
	wclose(img, f, 0);
}

static void test_write_failure(void)
{
	struct q2_image *img;
	struct wfile *f;
	struct q2_write w;
	struct q2_info in;
	u8 buf[512];

	tb_init(&T, 3, 16, 16 << 20, false);
	tb_data(&T, 0, 0x61);
	tb_refcounts(&T, 4);
	if (tb_open_w(&T, 0, &img, &f, NULL, NULL)) {
		EXPECT(0);
		return;
	}
	EXPECT_EQ(wr(img, f, 5 << 16, 4096, 0x62), 0);
	f->m.fail_writes = 1;		/* the next write: a refcount block */
	EXPECT_EQ(q2_flush(img), -EIO);
	q2_get_info(img, &in);
	EXPECT(in.failed && !q2_writable(img));
	EXPECT_EQ(q2_write_begin(img, NULL, 0, 512, &w), -EIO);
	EXPECT_EQ(q2_flush(img), -EIO);
	/* Reads go on; the header says corrupt. */
	EXPECT_EQ(rd(img, f, 5 << 16, buf, sizeof(buf)), 0);
	EXPECT(all_bytes(buf, sizeof(buf), 0x62));
	EXPECT(q2_be64(f->m.data + 72) & Q2_INCOMPAT_CORRUPT);
	wclose(img, f, -EIO);
}

static void test_resize(void)
{
	struct q2_image *img;
	struct wfile *f;
	struct q2_info in;
	u64 old_l1, rc;
	u8 buf[512];

	/* 512-byte clusters: one L1 entry maps 32 KiB; two for 48 KiB. */
	tb_init(&T, 3, 9, 48 << 10, false);
	tb_data(&T, 1024, 0x71);
	tb_refcounts(&T, 4);
	if (tb_open_w(&T, 0, &img, &f, NULL, NULL)) {
		EXPECT(0);
		return;
	}
	old_l1 = T.l1_off;
	EXPECT_EQ(q2_resize(img, 32 << 10), -EOPNOTSUPP);
	EXPECT_EQ(q2_resize(img, (64 << 10) + 100), -EINVAL);
	/* Within the L1 table's two entries: the size only. */
	EXPECT_EQ(q2_resize(img, 64 << 10), 0);
	q2_get_info(img, &in);
	EXPECT_EQ(in.l1_table_offset, old_l1);
	EXPECT_EQ(in.l1_size, 2);
	EXPECT_EQ(q2_be64(f->m.data + 24), 64 << 10);
	/* Past them: a new L1 table, the old one freed. */
	EXPECT_EQ(q2_resize(img, 8 << 20), 0);
	q2_get_info(img, &in);
	EXPECT_EQ(in.virtual_size, 8 << 20);
	EXPECT_EQ(in.l1_size, 256);
	EXPECT(in.l1_table_offset != old_l1);
	EXPECT_EQ(q2_be64(f->m.data + 24), 8 << 20);
	EXPECT_EQ(q2_be32(f->m.data + 36), 256);
	EXPECT_EQ(q2_be64(f->m.data + 40), in.l1_table_offset);
	rc = refcount_of(img, old_l1);
	EXPECT_EQ(rc, 0);
	EXPECT_EQ(refcount_of(img, in.l1_table_offset), 1);
	/* Old data still there; the new range writable. */
	EXPECT_EQ(rd(img, f, 1024, buf, sizeof(buf)), 0);
	EXPECT(all_bytes(buf, sizeof(buf), 0x71));
	EXPECT_EQ(wr(img, f, (8 << 20) - 512, 512, 0x72), 0);
	EXPECT_EQ(rd(img, f, (8 << 20) - 512, buf, sizeof(buf)), 0);
	EXPECT(all_bytes(buf, sizeof(buf), 0x72));
	wclose(img, f, 0);
}

static void test_zero_extended(void)
{
	struct q2_image *img;
	struct wfile *f;
	struct q2_extent e;
	u64 done, sc = 65536 / 32, h0;
	u8 buf[64];

	tb_init(&T, 3, 16, 16 << 20, true);
	h0 = tb_data(&T, 0, 0x81);
	tb_refcounts(&T, 4);
	if (tb_open_w(&T, 0, &img, &f, NULL, NULL)) {
		EXPECT(0);
		return;
	}
	EXPECT_EQ(q2_zero_granule(img), sc);
	/* Whole subclusters get the zero bit; a partial tail is left. */
	EXPECT_EQ(q2_zero(img, NULL, sc, 2 * sc + 100, 0, &done), 0);
	EXPECT_EQ(done, 3 * sc);
	EXPECT_EQ(q2_map(img, sc, sc, &e), 0);
	EXPECT_EQ(e.type, Q2_ZERO);
	EXPECT_EQ(q2_map(img, 3 * sc, sc, &e), 0);
	EXPECT_EQ(e.type, Q2_DATA);
	/* Writing an unallocated subcluster of an owned cluster: reuse. */
	EXPECT_EQ(wr(img, f, 65536 + sc, 100, 0x82), 0);
	EXPECT_EQ(wr(img, f, sc + 10, 10, 0x83), 0);
	EXPECT_EQ(q2_map(img, sc, sc, &e), 0);
	EXPECT_EQ(e.type, Q2_DATA);
	EXPECT_EQ(e.host_off, h0 + sc);		/* same cluster, reused */
	EXPECT_EQ(rd(img, f, sc, buf, sizeof(buf)), 0);
	EXPECT(all_bytes(buf, 10, 0) && all_bytes(buf + 10, 10, 0x83) &&
	       all_bytes(buf + 20, 44, 0));
	wclose(img, f, 0);
}

/* ---- driver ------------------------------------------------------------- */

struct tcase {
	const char *name;
	void (*fn)(void);
};

static const struct tcase cases[] = {
	{ "basic v3", test_basic_v3 },
	{ "basic v2", test_basic_v2 },
	{ "cluster sizes 512 B..2 MiB", test_cluster_sizes },
	{ "coalescing", test_coalesce },
	{ "extended L2 subclusters", test_extended_l2 },
	{ "file ending inside a cluster", test_file_ends_in_cluster },
	{ "compressed deflate", test_compressed_deflate },
	{ "compressed zstd", test_compressed_zstd },
	{ "compressed with trailing bytes", test_compressed_trailing },
	{ "L2 cache eviction and counters", test_l2_cache },
	{ "map without blocking", test_map_nowait },
	{ "snapshots", test_snapshots },
	{ "snapshot not found", test_snapshot_not_found },
	{ "snapshot with bad L1 or size", test_snapshot_bad_l1 },
	{ "header-only open", test_header_only },
	{ "info and extensions", test_info_extensions },
	{ "backing chains", test_chain_map },
	{ "concurrent readers", test_threads },
	{ "map: L2 entry past EOF", test_map_l2_entry_past_eof },
	{ "map: L2 entry unaligned", test_map_l2_entry_unaligned },
	{ "map: L2 entry on metadata", test_map_l2_entry_metadata },
	{ "map: bad L2 table offset", test_map_l2_table_bad },
	{ "map: zero flag in v2", test_map_v2_zero_flag },
	{ "map: bad compressed clusters", test_map_compressed_bad },
	{ "map: bad subcluster bitmaps", test_map_extended_bad },
	{ "write: refcount packing at every width", test_refcount_packing },
	{ "write: refusals", test_write_refusals },
	{ "write: snapshots are read-only", test_write_snapshot_refused },
	{ "write: allocation, free, quarantine", test_alloc_free },
	{ "write: hostile refcounts and entries", test_alloc_guards },
	{ "write: begin/commit, zero, cluster sizes", test_write_basic },
	{ "write: barrier before reuse", test_barrier },
	{ "write: waiting for an in-flight allocation", test_inflight_wait },
	{ "write: metadata write failure", test_write_failure },
	{ "write: resize and L1 growth", test_resize },
	{ "write: extended L2 zero and reuse", test_zero_extended },
};

static bool selected(const char *name, int argc, char **argv)
{
	int i;

	if (argc <= 1)
		return true;
	for (i = 1; i < argc; i++)
		if (strstr(name, argv[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	size_t nc = sizeof(cases) / sizeof(cases[0]);
	size_t nh = sizeof(hostile) / sizeof(hostile[0]);
	unsigned int n = 0, failed = 0, total = 0;
	size_t i;

	q2_shim_quiet = true;
	if (argc == 3 && !strcmp(argv[1], "--write-seeds")) {
		seed_dir = argv[2];
		mkdir(seed_dir, 0755);
		argc = 1;
		freopen("/dev/null", "w", stdout);
	}
	for (i = 0; i < nc; i++)
		total += selected(cases[i].name, argc, argv);
	for (i = 0; i < nh; i++)
		total += selected(hostile[i].name, argc, argv);
	printf("KTAP version 1\n1..%u\n", total);
	for (i = 0; i < nc + nh; i++) {
		const char *name = i < nc ? cases[i].name : hostile[i - nc].name;
		char full[128];

		if (!selected(name, argc, argv))
			continue;
		cur_failed = 0;
		if (i < nc) {
			cases[i].fn();
			snprintf(full, sizeof(full), "%s", name);
		} else {
			run_hostile(&hostile[i - nc]);
			snprintf(full, sizeof(full), "refused: %s", name);
		}
		printf("%sok %u %s\n", cur_failed ? "not " : "", ++n, full);
		failed += cur_failed;
	}
	free(T.buf);
	fprintf(stderr, "# q2test: %u passed, %u failed\n", n - failed, failed);
	return failed ? 1 : 0;
}
