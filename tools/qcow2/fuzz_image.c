// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the input is a whole image file held in memory.  Open
 * it header-only, fully, at a snapshot chosen by the input, and under a
 * raw backing layer; map the whole disk in chunks (bounded work) and read
 * every compressed cluster met (bounded too).  Then, if it opens for
 * writing, on a growable copy (bounded): a script of writes, zeroes,
 * discards, flushes and a resize taken from the input's tail, over a raw
 * backing layer when the image names one; a walk; a clean close; and a
 * read-only walk of the result.  Besides the sanitizers, the core's
 * contract is asserted: extents are non-empty, inside the request and,
 * for data, inside the file; plans are non-empty and inside the request.
 */
#include "q2u.h"

#define MAX_MAPS	4096
#define MAX_COMP_READS	64
#define MAX_CLUSTER	(2U << 20)

static u8 *cbuf;

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_image: contract violated: %s\n", what);
		abort();
	}
}

static void walk_chain(const struct q2_chain *chain, u64 file_size)
{
	u64 size = q2_layer_size(&chain->layers[0]), off = 0;
	unsigned int maps = 0, comp = 0;
	struct q2_chain_extent cx;
	u64 req;
	int ret;

	while (off < size && maps++ < MAX_MAPS) {
		req = (maps & 1) ? 1ULL << 20 : 4096 + (maps & 7) * 512;
		ret = q2_chain_map(chain, off, req, &cx);
		if (ret) {
			check(ret == -EIO || ret == -ENOMEM, "map error code");
			/* Skip past the bad spot, to keep exploring. */
			off = (off | 4095) + 1;
			continue;
		}
		check(cx.ext.len > 0 && cx.ext.len <= req, "extent length");
		check(cx.ext.type != Q2_UNALLOC, "chain returned unallocated");
		check(cx.layer <= chain->nr, "layer index");
		if (cx.ext.type == Q2_DATA && cx.layer < chain->nr &&
		    chain->layers[cx.layer].img)
			check(cx.ext.host_off + cx.ext.len <= file_size,
			      "data extent past EOF");
		if (cx.ext.type == Q2_COMPRESSED) {
			struct q2_image *img = chain->layers[cx.layer].img;

			check(cx.ext.comp_off + cx.ext.comp_len <= file_size,
			      "compressed extent past EOF");
			check(cx.ext.cluster_off + cx.ext.len <= q2_cluster_size(img),
			      "compressed extent leaves its cluster");
			if (comp++ < MAX_COMP_READS) {
				ret = q2_read_compressed(img, &cx.ext, 0, cbuf,
							 cx.ext.len);
				check(!ret || ret == -EIO || ret == -ENOMEM,
				      "compressed read error code");
				if (!ret && cx.ext.len > 1)
					q2_read_compressed(img, &cx.ext, 1, cbuf,
							   cx.ext.len - 1);
			}
		}
		off += cx.ext.len;
	}
}

static void walk(struct q2_image *img, u64 file_size)
{
	struct q2_layer l = { .img = img };
	struct q2_chain chain = { &l, 1 };

	walk_chain(&chain, file_size);
}

static struct q2_image *open_img(struct q2u_mem *m, unsigned int flags,
				 const char *snap, u64 cache)
{
	struct q2_open_args a = { 0 };
	struct q2_image *img;
	char err[Q2_ERR_MAX + 8];

	memset(err, 'X', sizeof(err));
	a.ops = &q2u_mem_ops;
	a.file = m;
	a.flags = flags;
	a.snapshot = snap;
	a.l2_cache_bytes = cache;
	a.err = err;
	a.err_len = sizeof(err);
	if (q2_open(&a, &img)) {
		check(memchr(err, 0, Q2_ERR_MAX) != NULL, "error message length");
		check(err[0] != 0, "empty error message");
		return NULL;
	}
	return img;
}

/* ---- writing ------------------------------------------------------------ */

#define MAX_WOPS	12
#define MAX_WLEN	(256U << 10)
#define MAX_GROWTH	(24U << 20)

static u8 *wbuf;

struct script {
	const u8 *p;
	size_t left;
	u64 x;
};

/* Script bytes from the input's tail, then a generator seeded by it. */
static u32 take(struct script *s)
{
	u32 v;

	if (s->left >= 4) {
		s->left -= 4;
		return q2_be32(s->p + s->left);
	}
	s->x = s->x * 6364136223846793005ULL + 1442695040888963407ULL;
	v = (u32)(s->x >> 33);
	return v;
}

static bool write_err_ok(int ret)
{
	return ret == -EIO || ret == -ENOMEM || ret == -ENOSPC ||
	       ret == -EFBIG || ret == -ERANGE;
}

static int fz_write(struct q2_image *img, const struct q2_chain *chain,
		    struct q2u_wmem *m, u64 off, u64 len, u8 pat)
{
	struct q2_write w;
	int ret, n = 0;

	memset(wbuf, pat, len);
	while (len && n++ < 64) {
		ret = q2_write_begin(img, chain, off, len, &w);
		if (ret) {
			check(write_err_ok(ret), "write_begin error code");
			return ret;
		}
		check(w.len > 0 && w.len <= len, "plan length");
		check((w.host_off & (q2_cluster_size(img) - 1)) ==
		      (off & (q2_cluster_size(img) - 1)), "plan host offset");
		ret = q2u_wmem_ops.pwrite(m, wbuf, w.len, w.host_off);
		ret = q2_write_commit(img, &w, ret);
		if (ret)
			return ret;
		off += w.len;
		len -= w.len;
	}
	return 0;
}

static void fuzz_write(const uint8_t *data, size_t size, bool small_cache)
{
	struct q2u_mem base = { .data = data, .len = size, .size = size };
	struct q2u_wmem m;
	struct q2_open_args a = { 0 };
	struct q2_image *img, *ro;
	struct q2_layer l[2] = { { 0 } };
	struct q2_chain chain = { l, 1 };
	struct script sc = { data, size > 256 ? 64 : 0, size };
	char err[Q2_ERR_MAX + 8];
	struct q2_info in;
	int i, ret;

	if (q2u_wmem_init(&m, data, size, size + MAX_GROWTH))
		return;
	memset(err, 'X', sizeof(err));
	a.ops = &q2u_wmem_ops;
	a.file = &m;
	a.flags = Q2_OPEN_WRITE;
	a.l2_cache_bytes = small_cache ? 1 : 0;
	a.err = err;
	a.err_len = sizeof(err);
	if (q2_open(&a, &img)) {
		check(memchr(err, 0, Q2_ERR_MAX) && err[0], "write open message");
		q2u_wmem_free(&m);
		return;
	}
	q2_get_info(img, &in);
	l[0].img = img;
	if (in.backing_file) {
		/* The input's own bytes as a raw backing file. */
		l[1].raw_size = size;
		l[1].ops = &q2u_mem_ops;
		l[1].file = &base;
		chain.nr = 2;
	}
	for (i = 0; i < MAX_WOPS; i++) {
		u64 vsize = q2_virtual_size(img), off, len, done;
		u32 op = take(&sc), r = take(&sc);

		if (!vsize)
			break;
		off = ((u64)take(&sc) << 9) % vsize;
		if (r & 1)
			off &= ~511ULL;
		len = 1 + r % MAX_WLEN;
		if (len > vsize - off)
			len = vsize - off;
		switch (op % 8) {
		case 0:
		case 1:
		case 2:
			ret = fz_write(img, &chain, &m, off, len, (u8)op);
			break;
		case 3:
		case 4:
			ret = q2_zero(img, &chain, off, len,
				      (op >> 8) & 1 ? Q2_ZERO_MAY_UNMAP : 0, &done);
			if (!ret)
				check(done >= off && done <= off + len, "zero done");
			if (!ret && done < off + len) {
				u64 g = q2_zero_granule(img);
				u64 e = done / g * g + g;

				ret = fz_write(img, &chain, &m, done,
					       (e < off + len ? e : off + len) - done, 0);
			}
			break;
		case 5:
			ret = q2_zero(img, &chain, off, len, Q2_DISCARD, &done);
			if (!ret)
				check(done == off + len, "discard done");
			break;
		case 6:
			ret = q2_flush(img);
			break;
		default:
			ret = q2_resize(img, vsize + (((u64)r & 0xffff) << 9));
			if (ret == -EINVAL || ret == -EOPNOTSUPP)
				ret = 0;	/* vsize not a multiple of 512 */
			break;
		}
		if (ret)
			check(write_err_ok(ret), "write path error code");
		if (ret)
			break;
	}
	walk(img, m.len);
	q2_close_clean(img);

	/* The result, read-only: whatever happened, reads stay sane. */
	{
		struct q2u_mem r = { .data = m.data, .len = m.len, .size = m.len };

		ro = open_img(&r, 0, NULL, 0);
		if (ro) {
			walk(ro, m.len);
			q2_close(ro);
		}
	}
	q2u_wmem_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct q2u_mem m = { .data = data, .len = size, .size = size };
	struct q2_image *img, *hdr;
	char sel[9] = { 0 };
	struct q2_info in;
	unsigned int i;

	q2_shim_quiet = true;
	if (!cbuf)
		cbuf = malloc(MAX_CLUSTER);
	if (!wbuf)
		wbuf = malloc(MAX_WLEN);

	hdr = open_img(&m, Q2_OPEN_HEADER_ONLY, NULL, 0);
	if (!hdr)
		return 0;
	q2_get_info(hdr, &in);
	for (i = 0; i < 64; i++)
		q2_feature_name(hdr, i % 3, i);

	img = open_img(&m, 0, NULL, size & 1 ? 0 : 1);
	if (img) {
		/* The image over itself over a raw layer of its own bytes. */
		struct q2_layer l[3] = {
			{ .img = img, .path = "top", .id = { 1, 1 } },
			{ .img = img, .id = { 1, 2 } },
			{ .raw_size = size, .path = "raw", .id = { 1, 3 } },
		};
		struct q2_chain chain = { l, 3 };
		char err[Q2_ERR_MAX + 8];

		walk(img, size);
		l[1].path = in.backing_file ? in.backing_file : "mid";
		if (data[0] & 1)
			l[2].id[1] = 1;
		chain.nr = 1 + (data[0] >> 1) % 3;
		memset(err, 'X', sizeof(err));
		if (q2_chain_check(&chain, err, sizeof(err)))
			check(memchr(err, 0, Q2_ERR_MAX) && err[0], "chain error message");
		walk_chain(&chain, size);
		q2_close(img);
	}

	/* A snapshot chosen by the input: by id, then by name. */
	if (in.nb_snapshots) {
		const struct q2_snapshot *sn = &in.snapshots[data[size - 1] % in.nb_snapshots];

		img = open_img(&m, 0, sn->id, 0);
		if (img) {
			walk(img, size);
			q2_close(img);
		}
		img = open_img(&m, 0, sn->name, 0);
		if (img)
			q2_close(img);
	}
	/* And a selector made of the input's last bytes. */
	memcpy(sel, data + (size > 8 ? size - 8 : 0), size > 8 ? 8 : size);
	img = open_img(&m, 0, sel, 0);
	if (img) {
		walk(img, size);
		q2_close(img);
	}
	q2_close(hdr);
	fuzz_write(data, size, size & 2);
	return 0;
}
