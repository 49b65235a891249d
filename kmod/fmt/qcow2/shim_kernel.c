// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel decompressors for qcow2 compressed clusters: the kernel's zlib
 * (raw deflate) and zstd, both built into Debian's kernels
 * (CONFIG_ZLIB_INFLATE=y, CONFIG_ZSTD_DECOMPRESS=y).
 */
#include <linux/zlib.h>
#include <linux/zstd.h>

#include "shim.h"

struct q2_dctx {
	int type;
	z_stream zs;			/* deflate; workspace in zs.workspace */
	zstd_dstream *zd;		/* zstd; lives in @zwork */
	void *zwork;
};

/*
 * zstd keeps a window of the frame's declared size.  QEMU compresses one
 * cluster per frame, so the window never exceeds the cluster; other writers
 * may use up to 128 KiB windows for small clusters, and a frame asking for
 * more than this fails cleanly inside the static workspace.
 */
static size_t q2_zstd_window(u32 cluster_size)
{
	return max_t(size_t, cluster_size, 128 * 1024);
}

struct q2_dctx *q2_dctx_alloc(int type, u32 cluster_size)
{
	struct q2_dctx *d = q2_zalloc(sizeof(*d));
	size_t ws;

	if (!d)
		return NULL;
	d->type = type;
	if (type == Q2_COMP_DEFLATE) {
		d->zs.workspace = q2_alloc(zlib_inflate_workspacesize());
		if (!d->zs.workspace)
			goto fail;
		return d;
	}
	if (type != Q2_COMP_ZSTD)
		goto fail;
	ws = zstd_dstream_workspace_bound(q2_zstd_window(cluster_size));
	d->zwork = q2_alloc(ws);
	if (!d->zwork)
		goto fail;
	d->zd = zstd_init_dstream(q2_zstd_window(cluster_size), d->zwork, ws);
	if (!d->zd)
		goto fail;
	return d;
fail:
	q2_dctx_free(d);
	return NULL;
}

void q2_dctx_free(struct q2_dctx *d)
{
	if (!d)
		return;
	q2_free(d->zs.workspace);
	q2_free(d->zwork);
	q2_free(d);
}

static int q2_inflate(struct q2_dctx *d, const void *src, size_t slen,
		      void *dst, size_t dlen)
{
	z_stream *zs = &d->zs;
	int ret;

	if (zlib_inflateInit2(zs, -12) != Z_OK)
		return -EIO;
	zs->next_in = src;
	zs->avail_in = slen;
	zs->next_out = dst;
	zs->avail_out = dlen;
	ret = zlib_inflate(zs, Z_FINISH);
	zlib_inflateEnd(zs);
	/*
	 * The compressed size is only known to the sector, so the input may
	 * not be consumed entirely (Z_BUF_ERROR); what matters is that the
	 * cluster came out whole, as QEMU checks.
	 */
	if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR || ret == Z_OK) &&
	    zs->avail_out == 0)
		return 0;
	return -EIO;
}

static int q2_unzstd(struct q2_dctx *d, const void *src, size_t slen,
		     void *dst, size_t dlen)
{
	zstd_in_buffer in = { .src = src, .size = slen, .pos = 0 };
	zstd_out_buffer out = { .dst = dst, .size = dlen, .pos = 0 };
	size_t ret = 1;

	if (zstd_is_error(zstd_reset_dstream(d->zd)))
		return -EIO;
	/*
	 * Stream until the cluster is full: trailing bytes after the frame
	 * are allowed.  Every call must make progress, so a frame that keeps
	 * asking for input we do not have cannot spin.
	 */
	while (out.pos < out.size) {
		size_t in_pos = in.pos, out_pos = out.pos;

		ret = zstd_decompress_stream(d->zd, &out, &in);
		if (zstd_is_error(ret))
			return -EIO;
		if (in.pos <= in_pos && out.pos <= out_pos)
			return -EIO;
	}
	/* A frame still unfinished would decode to more than a cluster. */
	return ret ? -EIO : 0;
}

int q2_dctx_decompress(struct q2_dctx *d, const void *src, size_t slen,
		       void *dst, size_t dlen)
{
	if (d->type == Q2_COMP_DEFLATE)
		return q2_inflate(d, src, slen, dst, dlen);
	return q2_unzstd(d, src, slen, dst, dlen);
}
