// SPDX-License-Identifier: GPL-2.0
/*
 * qcow2 images: the kernel side of the format core in fmt/qcow2/.
 *
 * The core parses and validates each layer and translates guest ranges
 * into extents; this file opens the backing chain from the descriptors
 * userspace passed, checks it is the chain the headers name, and turns
 * each request into file extents, zeros and decompressed copies through
 * rq.h.  Layers are struct vdisk_image too (linked through ->backing), so
 * the device core can report the chain without knowing qcow2.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/uio.h>

#include "../vdisk.h"
#include "qcow2/qcow2.h"

/* Chain state, hung off the top image's ->priv. */
struct vdisk_q2 {
	unsigned int nr;			/* layers, the top included */
	struct q2_layer layers[Q2_CHAIN_MAX];	/* what the core maps with */
	struct q2_chain chain;
	struct file *files[Q2_CHAIN_MAX];	/* each layer's file */
	u32 dio_align[Q2_CHAIN_MAX];		/* 0: no direct I/O there */
	struct vdisk_image *lower;		/* layers 1.., an array */
};

static const u8 vdisk_q2_magic[] = { 'Q', 'F', 'I', 0xfb };

/* The core's metadata reads: buffered, whatever the descriptor's flags. */
static int vdisk_q2_pread(void *opaque, void *buf, size_t len, u64 off)
{
	struct file *file = opaque;
	struct kvec kv;
	struct iov_iter iter;
	struct kiocb kiocb;
	ssize_t ret;

	while (len) {
		kv.iov_base = buf;
		kv.iov_len = len;
		iov_iter_kvec(&iter, ITER_DEST, &kv, 1, len);
		init_sync_kiocb(&kiocb, file);
		/* Metadata is small and unaligned: never direct. */
		kiocb.ki_flags &= ~IOCB_DIRECT;
		kiocb.ki_pos = off;
		ret = vfs_iocb_iter_read(file, &kiocb, &iter);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return -EIO;
		buf += ret;
		off += ret;
		len -= ret;
	}
	return 0;
}

static u64 vdisk_q2_size(void *opaque)
{
	return vdisk_file_size(opaque);
}

static const struct q2_file_ops vdisk_q2_file_ops = {
	.pread	= vdisk_q2_pread,
	.size	= vdisk_q2_size,
};

static bool vdisk_q2_is_qcow2(struct file *file)
{
	u8 head[Q2_MAGIC_LEN];

	return !vdisk_q2_pread(file, head, sizeof(head), 0) &&
	       q2_probe(head, sizeof(head));
}

static void vdisk_q2_set_identity(struct q2_layer *layer, struct file *file)
{
	struct inode *inode = file_inode(file);

	layer->id[0] = inode->i_sb->s_dev;
	layer->id[1] = inode->i_ino;
}

static void vdisk_q2_free(struct vdisk_q2 *q)
{
	unsigned int i;

	for (i = 0; i < q->nr; i++)
		if (q->layers[i].img)
			q2_close(q->layers[i].img);
	/* Layer 0's file and path belong to the device. */
	for (i = 1; i < q->nr; i++) {
		struct vdisk_image *b = &q->lower[i - 1];

		kfree(b->path);
		if (b->file)
			fput(b->file);
	}
	kfree(q->lower);
	kfree(q);
}

/* Open qcow2 layer @i of @q, whose file is already in q->files[i]. */
static int vdisk_q2_open_layer(struct vdisk_q2 *q, unsigned int i,
			       const char *snapshot, u64 cache_bytes,
			       const char *name, struct netlink_ext_ack *extack)
{
	char err[Q2_ERR_MAX] = "";
	struct q2_open_args args = {
		.ops		= &vdisk_q2_file_ops,
		.file		= q->files[i],
		.snapshot	= snapshot,
		.l2_cache_bytes	= cache_bytes,
		.name		= name,
		.err		= err,
		.err_len	= sizeof(err),
	};
	int ret;

	ret = q2_open(&args, &q->layers[i].img);
	if (ret) {
		if (!i)
			vdisk_nl_err(extack, "%s", err[0] ? err : "cannot open qcow2 image");
		else
			vdisk_nl_err(extack, "backing layer %u: %s", i,
				     err[0] ? err : "cannot open qcow2 image");
	}
	return ret;
}

/* Backing layer @i (1-based) from the ADD request's layer @lc. */
static int vdisk_q2_add_lower(struct vdisk_q2 *q, unsigned int i,
			      const struct vdisk_layer_config *lc,
			      const char *name,
			      struct netlink_ext_ack *extack)
{
	struct vdisk_image *b = &q->lower[i - 1];
	enum vdisk_format format;
	char what[32];
	u32 mem_align;
	int ret;

	snprintf(what, sizeof(what), "backing layer %u", i);
	ret = vdisk_file_check(lc->file, what, extack);
	if (ret)
		return ret;
	if (!lc->path) {
		vdisk_nl_err(extack, "%s has no PATH to check against the image", what);
		return -EINVAL;
	}

	b->file = get_file(lc->file);
	q->files[i] = b->file;
	b->path = kstrdup(lc->path, GFP_KERNEL);
	if (!b->path)
		return -ENOMEM;
	q->layers[i].path = b->path;
	vdisk_q2_set_identity(&q->layers[i], b->file);
	q->dio_align[i] = vdisk_file_dio_align(b->file, &mem_align);

	/* The kernel trusts its own probe, not the caller's claim. */
	format = vdisk_q2_is_qcow2(b->file) ? VDISK_FORMAT_QCOW2 :
					      VDISK_FORMAT_RAW;
	if (lc->format != VDISK_FORMAT_AUTO && lc->format != format) {
		vdisk_nl_err(extack, "%s is %s, not %s", what,
			     vdisk_format_name(format),
			     vdisk_format_name(lc->format));
		return -EINVAL;
	}
	if (format == VDISK_FORMAT_QCOW2) {
		b->ops = &vdisk_qcow2_ops;
		ret = vdisk_q2_open_layer(q, i, NULL, 0, name, extack);
		if (ret)
			return ret;
		b->size = q2_virtual_size(q->layers[i].img);
	} else {
		b->ops = &vdisk_raw_ops;
		q->layers[i].raw_size = vdisk_file_size(b->file);
		b->size = q->layers[i].raw_size;
	}
	return 0;
}

static int vdisk_q2_open(struct vdisk_image *img,
			 const struct vdisk_config *cfg,
			 struct netlink_ext_ack *extack)
{
	char err[Q2_ERR_MAX] = "";
	struct q2_info info;
	struct vdisk_q2 *q;
	unsigned int i;
	u32 mem_align;
	int ret;

	q = kzalloc(sizeof(*q), GFP_KERNEL);
	if (!q)
		return -ENOMEM;
	q->nr = 1 + cfg->nr_backing;
	if (cfg->nr_backing) {
		q->lower = kcalloc(cfg->nr_backing, sizeof(*q->lower),
				   GFP_KERNEL);
		if (!q->lower) {
			kfree(q);
			return -ENOMEM;
		}
	}

	q->files[0] = img->file;
	q->layers[0].path = img->path;
	vdisk_q2_set_identity(&q->layers[0], img->file);
	q->dio_align[0] = vdisk_file_dio_align(img->file, &mem_align);
	ret = vdisk_q2_open_layer(q, 0, cfg->snapshot, cfg->cache_size,
				  cfg->name[0] ? cfg->name : NULL, extack);
	if (ret)
		goto out_free;

	for (i = 1; i < q->nr; i++) {
		ret = vdisk_q2_add_lower(q, i, &cfg->backing[i - 1],
					 cfg->name[0] ? cfg->name : NULL,
					 extack);
		if (ret)
			goto out_free;
		q->lower[i - 1].backing = i + 1 < q->nr ? &q->lower[i] : NULL;
	}

	q->chain.layers = q->layers;
	q->chain.nr = q->nr;
	ret = q2_chain_check(&q->chain, err, sizeof(err));
	if (ret) {
		vdisk_nl_err(extack, "%s", err[0] ? err : "backing chain does not match the images");
		goto out_free;
	}

	q2_get_info(q->layers[0].img, &info);
	img->size = round_down(q2_virtual_size(q->layers[0].img),
			       cfg->sector_size);
	if (!img->size) {
		vdisk_nl_err(extack, "virtual size is smaller than one %u-byte sector",
			     cfg->sector_size);
		ret = -EINVAL;
		goto out_free;
	}
	if (cfg->snapshot) {
		img->snapshot = kstrdup(cfg->snapshot, GFP_KERNEL);
		if (!img->snapshot) {
			ret = -ENOMEM;
			goto out_free;
		}
	}
	/*
	 * Read-only until the write path lands; snapshots, corrupt and
	 * dirty images stay read-only after that too.
	 */
	img->writable = false;
	img->cache_size = cfg->cache_size ? cfg->cache_size :
					    Q2_L2_CACHE_DEFAULT;
	img->backing = q->nr > 1 ? &q->lower[0] : NULL;
	img->priv = q;
	return 0;

out_free:
	vdisk_q2_free(q);
	return ret;
}

static void vdisk_q2_release(struct vdisk_image *img)
{
	struct vdisk_q2 *q = img->priv;

	/* Backing layers are plain descriptions; only the top owns state. */
	if (!q)
		return;
	vdisk_q2_free(q);
	kfree(img->snapshot);
	img->snapshot = NULL;
	img->backing = NULL;
	img->priv = NULL;
}

static int vdisk_q2_refresh_size(struct vdisk_image *img, u32 sector_size,
				 struct netlink_ext_ack *extack)
{
	/* The virtual size lives in the header, not in the file's length. */
	return 0;
}

/* Copy part of a compressed cluster into the request, a page at a time. */
static int vdisk_q2_read_compressed(struct request *rq, struct q2_image *qi,
				    const struct q2_extent *ext)
{
	struct page *page = alloc_page(GFP_NOIO);
	u64 done = 0;
	int ret = 0;

	if (!page)
		return -ENOMEM;
	while (done < ext->len) {
		size_t n = min_t(u64, PAGE_SIZE, ext->len - done);
		void *buf = kmap_local_page(page);

		ret = q2_read_compressed(qi, ext, done, buf, n);
		if (!ret)
			vdisk_rq_copy(rq, buf, n);
		kunmap_local(buf);
		if (ret)
			break;
		done += n;
	}
	__free_page(page);
	return ret;
}

static int vdisk_q2_read(struct vdisk_q2 *q, struct request *rq)
{
	u64 pos = (u64)blk_rq_pos(rq) << SECTOR_SHIFT;
	u64 left = blk_rq_bytes(rq);
	struct q2_chain_extent cx;
	int ret;

	while (left) {
		ret = q2_chain_map(&q->chain, pos, left, &cx);
		if (ret)
			return ret;
		if (WARN_ON_ONCE(!cx.ext.len || cx.ext.len > left))
			return -EIO;

		switch (cx.ext.type) {
		case Q2_DATA:
			vdisk_rq_file(rq, q->files[cx.layer], cx.ext.host_off,
				      cx.ext.len, q->dio_align[cx.layer]);
			break;
		case Q2_COMPRESSED:
			ret = vdisk_q2_read_compressed(rq,
						       q->layers[cx.layer].img,
						       &cx.ext);
			if (ret)
				return ret;
			break;
		default:
			vdisk_rq_zero(rq, cx.ext.len);
			break;
		}
		pos += cx.ext.len;
		left -= cx.ext.len;
	}
	return 0;
}

static void vdisk_q2_queue(struct vdisk_device *vd, struct request *rq)
{
	struct vdisk_q2 *q = vd->image.priv;
	int ret;

	switch (req_op(rq)) {
	case REQ_OP_READ:
		ret = vdisk_rq_start(rq);
		if (!ret)
			ret = vdisk_q2_read(q, rq);
		vdisk_rq_finish(rq, ret);
		return;
	case REQ_OP_FLUSH:
		/* Nothing is written yet: nothing to make durable. */
		vdisk_rq_file_io(rq, vd->image.file, 0, 0);
		return;
	default:
		/* Not reached while qcow2 devices are read-only. */
		vdisk_rq_end(rq, -EOPNOTSUPP);
		return;
	}
}

const struct vdisk_format_ops vdisk_qcow2_ops = {
	.format		= VDISK_FORMAT_QCOW2,
	.name		= "qcow2",
	.magic		= vdisk_q2_magic,
	.magic_len	= sizeof(vdisk_q2_magic),
	.open		= vdisk_q2_open,
	.release	= vdisk_q2_release,
	.refresh_size	= vdisk_q2_refresh_size,
	.queue		= vdisk_q2_queue,
};
