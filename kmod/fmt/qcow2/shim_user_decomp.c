// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace decompressors (zlib, libzstd) for the qcow2 core.  Mirrors
 * shim_kernel.c: same window limits, same acceptance rules, so userspace
 * tests and fuzzing judge what the kernel will do.
 */
#include <zlib.h>
#include <zstd.h>

#include "shim.h"

struct q2_dctx {
	int type;
	z_stream zs;
	bool zs_init;
	ZSTD_DStream *zd;
};

static unsigned int q2_zstd_window_log(u32 cluster_size)
{
	unsigned int log = 17;		/* 128 KiB, as in the kernel shim */

	while ((1U << log) < cluster_size)
		log++;
	return log;
}

struct q2_dctx *q2_dctx_alloc(int type, u32 cluster_size)
{
	struct q2_dctx *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->type = type;
	if (type == Q2_COMP_DEFLATE) {
		if (inflateInit2(&d->zs, -12) != Z_OK)
			goto fail;
		d->zs_init = true;
		return d;
	}
	if (type != Q2_COMP_ZSTD)
		goto fail;
	d->zd = ZSTD_createDStream();
	if (!d->zd)
		goto fail;
	if (ZSTD_isError(ZSTD_DCtx_setParameter(d->zd, ZSTD_d_windowLogMax,
						q2_zstd_window_log(cluster_size))))
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
	if (d->zs_init)
		inflateEnd(&d->zs);
	ZSTD_freeDStream(d->zd);
	free(d);
}

static int q2_inflate(struct q2_dctx *d, const void *src, size_t slen,
		      void *dst, size_t dlen)
{
	z_stream *zs = &d->zs;
	int ret;

	if (inflateReset(zs) != Z_OK)
		return -EIO;
	zs->next_in = (Bytef *)src;
	zs->avail_in = slen;
	zs->next_out = dst;
	zs->avail_out = dlen;
	ret = inflate(zs, Z_FINISH);
	if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR || ret == Z_OK) &&
	    zs->avail_out == 0)
		return 0;
	return -EIO;
}

static int q2_unzstd(struct q2_dctx *d, const void *src, size_t slen,
		     void *dst, size_t dlen)
{
	ZSTD_inBuffer in = { .src = src, .size = slen, .pos = 0 };
	ZSTD_outBuffer out = { .dst = dst, .size = dlen, .pos = 0 };
	size_t ret = 1;

	if (ZSTD_isError(ZSTD_DCtx_reset(d->zd, ZSTD_reset_session_only)))
		return -EIO;
	while (out.pos < out.size) {
		size_t in_pos = in.pos, out_pos = out.pos;

		ret = ZSTD_decompressStream(d->zd, &out, &in);
		if (ZSTD_isError(ret))
			return -EIO;
		if (in.pos <= in_pos && out.pos <= out_pos)
			return -EIO;
	}
	return ret ? -EIO : 0;
}

int q2_dctx_decompress(struct q2_dctx *d, const void *src, size_t slen,
		       void *dst, size_t dlen)
{
	if (d->type == Q2_COMP_DEFLATE)
		return q2_inflate(d, src, slen, dst, dlen);
	return q2_unzstd(d, src, slen, dst, dlen);
}
