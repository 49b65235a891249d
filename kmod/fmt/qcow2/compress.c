// SPDX-License-Identifier: GPL-2.0
/*
 * Compressed cluster reads.  One decoder and one pair of buffers per image,
 * allocated on the first compressed read and serialised by img->dlock; the
 * last decompressed cluster stays in img->dbuf, so the page-sized reads a
 * block device issues against one cluster decompress it once.
 */
#include "q2_priv.h"

static int q2_dctx_ready(struct q2_image *img)
{
	if (!img->cbuf) {
		/* The largest descriptor covers two clusters. */
		img->cbuf = q2_alloc((size_t)img->cluster_size * 2);
		if (!img->cbuf)
			return -ENOMEM;
	}
	if (!img->dbuf) {
		img->dbuf = q2_alloc(img->cluster_size);
		if (!img->dbuf)
			return -ENOMEM;
	}
	if (!img->dctx) {
		img->dctx = q2_dctx_alloc(img->compression_type,
					  img->cluster_size);
		if (!img->dctx)
			return -ENOMEM;
	}
	return 0;
}

int q2_read_compressed(struct q2_image *img, const struct q2_extent *ext,
		       u64 skip, void *buf, size_t len)
{
	int ret = 0;

	if (img->header_only || ext->type != Q2_COMPRESSED ||
	    skip > ext->len || len > ext->len - skip ||
	    ext->cluster_off + ext->len > img->cluster_size ||
	    !ext->comp_len || ext->comp_len > 2 * img->cluster_size)
		return -EINVAL;

	q2_mutex_lock(&img->dlock);
	if (!img->dvalid || img->dkey_off != ext->comp_off ||
	    img->dkey_len != ext->comp_len) {
		ret = q2_dctx_ready(img);
		if (ret)
			goto out;
		img->dvalid = false;
		ret = img->ops->pread(img->file, img->cbuf, ext->comp_len,
				      ext->comp_off);
		if (ret)
			goto out;
		ret = q2_dctx_decompress(img->dctx, img->cbuf, ext->comp_len,
					 img->dbuf, img->cluster_size);
		if (ret) {
			q2_log(img, "corrupt compressed cluster at 0x%llx+%u",
			       ext->comp_off, ext->comp_len);
			ret = -EIO;
			goto out;
		}
		img->dvalid = true;
		img->dkey_off = ext->comp_off;
		img->dkey_len = ext->comp_len;
	}
	memcpy(buf, img->dbuf + ext->cluster_off + skip, len);
out:
	q2_mutex_unlock(&img->dlock);
	return ret;
}
