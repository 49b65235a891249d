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
 *
 * Writes go to the top layer only (lower layers are opened read-only).
 * The core plans each piece of a write: an in-place piece (the cluster is
 * ours already) is issued like a raw write, asynchronously; an allocating
 * piece is written asynchronously too, and committed from its completion,
 * because the core must see the data land before it maps it (FUA and
 * write-through writes are written and committed synchronously, then
 * flushed).  Clusters the core frees are
 * only reused after its barrier callback has seen every in-place write
 * planned before it complete: see vdisk_q2_barrier() and
 * Documentation/design/overview.rst ("qcow2 writes").
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/highmem.h>
#include <linux/sched/mm.h>
#include <linux/uio.h>
#include <linux/wait.h>

#include "../vdisk.h"
#include "qcow2/qcow2.h"

/* Chain state, hung off the top image's ->priv. */
struct vdisk_q2 {
	unsigned int nr;			/* layers, the top included */
	struct q2_layer layers[Q2_CHAIN_MAX];	/* what the core maps with */
	struct q2_chain chain;
	struct file *files[Q2_CHAIN_MAX];	/* each layer's file */
	u32 dio_align[Q2_CHAIN_MAX];		/* 0: no direct I/O there */
	u32 wdio_align;				/* writes to the top; 0: buffered */
	struct vdisk_image *lower;		/* layers 1.., an array */

	/*
	 * Write epochs for the barrier: every write request holds a
	 * reference on the epoch current when it started, from before its
	 * first q2_write_begin() until it completes.  The barrier opens a new
	 * epoch and waits for the old one to drain.  Barriers are serialised
	 * by the core (its flush lock), so two slots suffice.
	 */
	spinlock_t epoch_lock;
	unsigned long epoch;
	unsigned long inflight[2];
	wait_queue_head_t epoch_wait;
};

static const u8 vdisk_q2_magic[] = { 'Q', 'F', 'I', 0xfb };

/*
 * The core's metadata I/O (and copy-on-write fills): buffered, whatever
 * the descriptor's flags, since it is small and unaligned; exact.
 */
static int vdisk_q2_rw(struct file *file, void *buf, size_t len, u64 off,
		       bool write)
{
	ssize_t ret = vdisk_file_kvec_rw(file, buf, len, off, write);

	if (ret < 0)
		return ret;
	return ret == len ? 0 : -EIO;
}

static int vdisk_q2_pread(void *opaque, void *buf, size_t len, u64 off)
{
	return vdisk_q2_rw(opaque, buf, len, off, false);
}

static u64 vdisk_q2_size(void *opaque)
{
	return vdisk_file_size(opaque);
}

static int vdisk_q2_pwrite(void *opaque, const void *buf, size_t len, u64 off)
{
	return vdisk_q2_rw(opaque, (void *)buf, len, off, true);
}

static int vdisk_q2_flush(void *opaque)
{
	return vdisk_file_fsync(opaque, 1);
}

static int vdisk_q2_punch(void *opaque, u64 off, u64 len)
{
	struct file *file = opaque;

	if (!file->f_op->fallocate)
		return -EOPNOTSUPP;
	return vfs_fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			     off, len);
}

/*
 * Zero pages per write when there is much to write.  Each direct write
 * into the unwritten extents fallocate() leaves costs the file system an
 * extent conversion, so growing a file by a chunk (q2_grow_ahead()) in
 * 4 MiB writes rather than 256 KiB ones costs 8 conversions instead of
 * 128 per 32 MiB.
 */
#define VDISK_Q2_ZERO_PAGES	1024

/*
 * Write @len zero bytes at @off of @file from the zero page: direct I/O
 * where @dio_align (0: none) divides the piece's offset and length, else
 * buffered.  0 or -errno.
 */
static int vdisk_q2_write_zeros(struct file *file, u64 off, u64 len,
				u32 dio_align)
{
	struct bio_vec small[64], *bv = small;
	unsigned int i, nr = ARRAY_SIZE(small);
	struct iov_iter iter;
	struct kiocb kiocb;
	ssize_t n = 0;

	/* Without the memory, in small writes. */
	if (len > nr * PAGE_SIZE) {
		bv = kmalloc_array(VDISK_Q2_ZERO_PAGES, sizeof(*bv),
				   GFP_NOIO | __GFP_NOWARN);
		if (bv)
			nr = VDISK_Q2_ZERO_PAGES;
		else
			bv = small;
	}
	for (i = 0; i < nr; i++)
		bvec_set_page(&bv[i], ZERO_PAGE(0), PAGE_SIZE, 0);
	for (; len; off += n, len -= n) {
		size_t chunk = min_t(u64, len, (u64)nr * PAGE_SIZE);

		iov_iter_bvec(&iter, ITER_SOURCE, bv, nr, chunk);
		vdisk_sync_kiocb(&kiocb, file, off);
		if (dio_align && IS_ALIGNED(off | chunk, dio_align))
			kiocb.ki_flags |= IOCB_DIRECT;
		n = vfs_iocb_iter_write(file, &kiocb, &iter);
		if (n <= 0) {
			if (!n)
				n = -EIO;
			break;
		}
	}
	if (bv != small)
		kfree(bv);
	return n < 0 ? n : 0;
}

/*
 * Grow the file for new clusters (q2_grow_ahead()): allocate the range,
 * then write zeros over [@fill_from, @size) with direct I/O.  An allocated but unwritten
 * extent reads as zeros too, but every later 4 KiB write into it would
 * split the extent and convert a piece in a journal transaction of its
 * own; written zeros make those writes plain overwrites, which run in
 * parallel (and inline, without the worker).  One large sequential
 * write costs far less than one conversion per cluster.  Writing the
 * zeros is best effort: the range reads as zeros either way.
 */
static int vdisk_q2_grow(void *opaque, u64 from, u64 size, u64 fill_from)
{
	struct file *file = opaque;
	u32 mem_align, align;
	int ret;

	if (!file->f_op->fallocate)
		return -EOPNOTSUPP;
	ret = vfs_fallocate(file, 0, from, size - from);
	if (ret)
		return ret;
	align = vdisk_file_dio_align(file, &mem_align, NULL);
	if (fill_from < size && align &&
	    IS_ALIGNED(fill_from | size, max_t(u32, align, PAGE_SIZE)))
		vdisk_q2_write_zeros(file, fill_from, size - fill_from, align);
	return 0;
}

static const struct q2_file_ops vdisk_q2_file_ops = {
	.pread	= vdisk_q2_pread,
	.size	= vdisk_q2_size,
	.pwrite	= vdisk_q2_pwrite,
	.flush	= vdisk_q2_flush,
	.punch	= vdisk_q2_punch,
	.grow	= vdisk_q2_grow,
};

/* ---- write epochs (the core's barrier) ------------------------------- */

/* A write request starts: it belongs to the current epoch (token + 1). */
static unsigned long vdisk_q2_epoch_enter(struct vdisk_q2 *q)
{
	unsigned long e;

	spin_lock_irq(&q->epoch_lock);
	e = q->epoch;
	q->inflight[e & 1]++;
	spin_unlock_irq(&q->epoch_lock);
	return e + 1;
}

static void vdisk_q2_epoch_exit(struct vdisk_q2 *q, unsigned long token)
{
	unsigned long flags;
	bool wake;

	spin_lock_irqsave(&q->epoch_lock, flags);
	wake = !--q->inflight[(token - 1) & 1];
	spin_unlock_irqrestore(&q->epoch_lock, flags);
	if (wake)
		wake_up_all(&q->epoch_wait);
}

/* The request's writes have all landed or it ends: it leaves its epoch. */
static void vdisk_q2_epoch_leave(struct vdisk_q2 *q, struct request *rq)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);

	if (io->fmt_token) {
		vdisk_q2_epoch_exit(q, io->fmt_token);
		io->fmt_token = 0;
	}
}

/*
 * A write request that flushes before it completes (write-through mode, a
 * FUA write, a write-through discard) does so once its own writes have
 * landed, and leaves its epoch first: the flush may wait in the barrier
 * for every request of that epoch, and that would include itself (the
 * flush applies the drops the request queued; with clusters freed, it
 * waits before they are reused).  It also must not hold an epoch while it
 * waits for the flush lock, which a flush waiting in the barrier holds.
 */
static int vdisk_q2_flush_landed(struct vdisk_q2 *q, struct request *rq)
{
	vdisk_q2_epoch_leave(q, rq);
	return q2_flush(q->layers[0].img);
}

static bool vdisk_q2_epoch_drained(struct vdisk_q2 *q, unsigned long e)
{
	bool done;

	spin_lock_irq(&q->epoch_lock);
	done = !q->inflight[e & 1];
	spin_unlock_irq(&q->epoch_lock);
	return done;
}

/*
 * Called by q2_flush() before freed clusters may be reused: wait for every
 * write request that started before now.  Such a request never waits for
 * the flush (the core calls this without its locks, planning never takes
 * the flush lock, and a request that flushes itself leaves its epoch
 * first: vdisk_q2_flush_landed()), so this terminates.
 */
static void vdisk_q2_barrier(void *ctx)
{
	struct vdisk_q2 *q = ctx;
	unsigned long e;

	spin_lock_irq(&q->epoch_lock);
	e = q->epoch++;
	spin_unlock_irq(&q->epoch_lock);
	wait_event(q->epoch_wait, vdisk_q2_epoch_drained(q, e));
}

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

	for (i = 0; i < q->nr; i++) {
		struct q2_image *qi = q->layers[i].img;
		int ret;

		if (!qi)
			continue;
		if (!i && q2_writable(qi)) {
			/* Written back and no leaked clusters left behind. */
			ret = q2_close_clean(qi);
			if (ret)
				pr_err("%s: writing back metadata at detach failed (error %d); run qemu-img check\n",
				       q->layers[0].path ? q->layers[0].path : "qcow2 image",
				       ret);
		} else {
			q2_close(qi);
		}
	}
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
			       const char *name, bool write,
			       struct netlink_ext_ack *extack)
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
		.barrier	= vdisk_q2_barrier,
		.barrier_ctx	= q,
	};
	int ret;

	if (write) {
		args.flags = Q2_OPEN_WRITE;
		ret = q2_open(&args, &q->layers[i].img);
		if (ret != -EROFS)
			goto out;
		/*
		 * A valid image the core will not write (corrupt, dirty,
		 * a snapshot): attach it read-only and say why.
		 */
		pr_notice("%s: attached read-only: %s\n",
			  name ? name : (q->layers[i].path ?: "qcow2 image"),
			  err[0] ? err : "image cannot be written");
		args.flags = 0;
		err[0] = 0;
	}
	ret = q2_open(&args, &q->layers[i].img);
out:
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
			      const char *name, u32 sector_size,
			      u32 buf_align,
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
	/*
	 * Direct reads only where they fit what the device's queue promises
	 * (requests in multiples of the sector size, buffers and so pieces
	 * aligned to @buf_align: the top layer's, see vdisk_image_open());
	 * otherwise a file system that checks (XFS on 4 KiB sectors under a
	 * device of 512-byte sectors) refuses them with EINVAL.  Such a
	 * layer is read buffered.
	 */
	q->dio_align[i] = vdisk_file_dio_align(b->file, &mem_align, NULL);
	if (q->dio_align[i] &&
	    (sector_size % q->dio_align[i] || q->dio_align[i] > buf_align ||
	     mem_align > buf_align))
		q->dio_align[i] = 0;

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
		ret = vdisk_q2_open_layer(q, i, NULL, 0, name, false, extack);
		if (ret)
			return ret;
		b->size = q2_virtual_size(q->layers[i].img);
	} else {
		b->ops = &vdisk_raw_ops;
		q->layers[i].raw_size = vdisk_file_size(b->file);
		/* Copy-on-write reads a raw layer through the core. */
		q->layers[i].ops = &vdisk_q2_file_ops;
		q->layers[i].file = b->file;
		b->size = q->layers[i].raw_size;
	}
	return 0;
}

/*
 * Direct writes to the top image only where no page of its file holds
 * more than one granule (cluster, or subcluster with extended L2).  The
 * core writes copy-on-write fills, zeros and metadata buffered; a
 * buffered write to a page reads the rest of it from the disk and writes
 * it all back later.  If a direct write to another granule of that page
 * lands in between, the write-back undoes it.  Ext4 and XFS happen to
 * serialise the two (a sub-block direct write takes the inode lock
 * exclusively), a block device does not: test_pageshare_01 lost 8 of 3,071
 * such writes on an image on a loop device.  With granules under a page
 * every write goes through the page cache instead; reads stay direct (a
 * direct read writes back the dirty pages of its range first).
 */
static u32 vdisk_q2_write_dio_align(const struct vdisk_q2 *q)
{
	if (q2_zero_granule(q->layers[0].img) < PAGE_SIZE)
		return 0;
	return q->dio_align[0];
}

static int vdisk_q2_open(struct vdisk_image *img,
			 const struct vdisk_config *cfg,
			 struct netlink_ext_ack *extack)
{
	char err[Q2_ERR_MAX] = "";
	struct q2_info info;
	struct vdisk_q2 *q;
	unsigned int i;
	int ret;

	q = kzalloc(sizeof(*q), GFP_KERNEL);
	if (!q)
		return -ENOMEM;
	q->nr = 1 + cfg->nr_backing;
	spin_lock_init(&q->epoch_lock);
	init_waitqueue_head(&q->epoch_wait);
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
	q->dio_align[0] = img->dio_align;
	ret = vdisk_q2_open_layer(q, 0, cfg->snapshot, cfg->cache_size,
				  cfg->name[0] ? cfg->name : NULL,
				  img->writable && !cfg->snapshot, extack);
	if (ret)
		goto out_free;

	for (i = 1; i < q->nr; i++) {
		ret = vdisk_q2_add_lower(q, i, &cfg->backing[i - 1],
					 cfg->name[0] ? cfg->name : NULL,
					 cfg->sector_size, img->buf_align,
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

	q->wdio_align = vdisk_q2_write_dio_align(q);
	img->buffered_writes = !q->wdio_align;
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
	/* Snapshots, corrupt and dirty images stay read-only. */
	img->writable = q2_writable(q->layers[0].img);
	img->discard_granularity = q2_cluster_size(q->layers[0].img);
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

/* FUA, or every write in write-through mode: durable before completion. */
static bool vdisk_q2_sync_write(struct vdisk_device *vd, struct request *rq)
{
	return (rq->cmd_flags & REQ_FUA) ||
	       READ_ONCE(vd->cache) == VDISK_CACHE_WRITETHROUGH;
}

/*
 * An allocating piece whose data write is in flight: the core maps the
 * data only once it has landed, so the commit runs from the write's
 * completion, in vdisk_rq_queue_done() work (commits take the core's
 * metadata mutex; they never wait for a request).  The request completes
 * after its last commit.
 */
struct vdisk_q2_alloc {
	struct q2_write w;		/* linked in the core until the commit */
	struct work_struct work;
	struct q2_image *qi;
	struct request *rq;
	int err;
};

static void vdisk_q2_commit_work(struct work_struct *work)
{
	struct vdisk_q2_alloc *a = container_of(work, struct vdisk_q2_alloc,
						work);
	unsigned int noio = memalloc_noio_save();
	struct request *rq = a->rq;
	int ret;

	ret = q2_write_commit(a->qi, &a->w, a->err);
	kfree(a);
	memalloc_noio_restore(noio);
	vdisk_rq_finish(rq, ret);
}

static void vdisk_q2_alloc_written(void *ctx, int err)
{
	struct vdisk_q2_alloc *a = ctx;

	a->err = err;
	vdisk_rq_queue_done(&a->work);
}

static int vdisk_q2_write(struct vdisk_device *vd, struct vdisk_q2 *q,
			  struct request *rq)
{
	struct q2_image *qi = q->layers[0].img;
	const struct q2_chain *chain = q->nr > 1 ? &q->chain : NULL;
	u64 pos = (u64)blk_rq_pos(rq) << SECTOR_SHIFT;
	u64 left = blk_rq_bytes(rq);
	bool sync = vdisk_q2_sync_write(vd, rq);
	struct vdisk_q2_alloc *a = NULL;
	struct q2_write sw, *w;
	int ret = 0;

	while (left) {
		/*
		 * A plan lives where it was made until its commit; only an
		 * asynchronous commit needs it off the stack.  Without
		 * memory, the piece is simply done synchronously.
		 */
		if (!sync && !a)
			a = kmalloc(sizeof(*a), GFP_NOIO);
		w = a ? &a->w : &sw;
		ret = q2_write_begin(qi, chain, pos, left, w);
		if (ret)
			break;
		if (WARN_ON_ONCE(!w->len || w->len > left)) {
			if (w->commit)
				q2_write_commit(qi, w, -EIO);
			ret = -EIO;
			break;
		}
		pos += w->len;
		left -= w->len;
		if (!w->commit && !sync) {
			/* Our own cluster: written like a raw image's. */
			vdisk_rq_file(rq, q->files[0], w->host_off, w->len,
				      q->wdio_align);
		} else if (a) {
			a->qi = qi;
			a->rq = rq;
			INIT_WORK(&a->work, vdisk_q2_commit_work);
			vdisk_rq_file_then(rq, q->files[0], w->host_off, w->len,
					   q->wdio_align,
					   vdisk_q2_alloc_written, a);
			a = NULL;
		} else {
			ret = vdisk_rq_file_sync(rq, q->files[0], w->host_off,
						 w->len, q->wdio_align);
			if (w->commit)
				ret = q2_write_commit(qi, w, ret);
			if (ret)
				break;
		}
	}
	kfree(a);
	if (ret)
		return ret;
	/* In sync mode every piece above was written synchronously. */
	return sync ? vdisk_q2_flush_landed(q, rq) : 0;
}

/*
 * Write zeros as data over [@pos, @pos + @len) of the guest: the parts of
 * a write-zeroes request the core cannot express in metadata.  Direct
 * when the guest's data writes are (see vdisk_q2_write_dio_align()): a
 * buffered zero write next to an in-place direct write in the same page
 * could undo it.
 */
static int vdisk_q2_write_zero_data(struct vdisk_device *vd,
				    struct vdisk_q2 *q, u64 pos, u64 len)
{
	struct q2_image *qi = q->layers[0].img;
	const struct q2_chain *chain = q->nr > 1 ? &q->chain : NULL;
	struct q2_write w;
	u32 align;
	int ret;

	while (len) {
		ret = q2_write_begin(qi, chain, pos, len, &w);
		if (ret)
			return ret;
		align = READ_ONCE(vd->cache) == VDISK_CACHE_NONE ?
			q->wdio_align : 0;
		ret = vdisk_q2_write_zeros(q->files[0], w.host_off, w.len,
					   align);
		if (w.commit)
			ret = q2_write_commit(qi, &w, ret);
		if (ret)
			return ret;
		pos += w.len;
		len -= w.len;
	}
	return 0;
}

static int vdisk_q2_zero(struct vdisk_device *vd, struct vdisk_q2 *q,
			 struct request *rq)
{
	struct q2_image *qi = q->layers[0].img;
	const struct q2_chain *chain = q->nr > 1 ? &q->chain : NULL;
	u64 pos = (u64)blk_rq_pos(rq) << SECTOR_SHIFT;
	u64 end = pos + blk_rq_bytes(rq);
	u32 granule = q2_zero_granule(qi);
	unsigned int flags;
	u64 done, stop;
	int ret;

	if (req_op(rq) == REQ_OP_DISCARD)
		flags = Q2_DISCARD;
	else
		flags = (rq->cmd_flags & REQ_NOUNMAP) ? 0 : Q2_ZERO_MAY_UNMAP;

	while (pos < end) {
		ret = q2_zero(qi, chain, pos, end - pos, flags, &done);
		if (ret)
			return ret;
		if (done >= end)
			break;
		/* A partial granule (or one metadata cannot zero): data. */
		stop = min(end, round_down(done, granule) + granule);
		ret = vdisk_q2_write_zero_data(vd, q, done, stop - done);
		if (ret)
			return ret;
		pos = stop;
	}
	/* Metadata and zero data above were all written synchronously. */
	return vdisk_q2_sync_write(vd, rq) ? vdisk_q2_flush_landed(q, rq) : 0;
}

static void vdisk_q2_queue(struct vdisk_device *vd, struct request *rq)
{
	struct vdisk_q2 *q = vd->image.priv;
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);
	int ret;

	switch (req_op(rq)) {
	case REQ_OP_READ:
		ret = vdisk_rq_start(rq);
		if (!ret)
			ret = vdisk_q2_read(q, rq);
		vdisk_rq_finish(rq, ret);
		return;
	case REQ_OP_WRITE:
		ret = vdisk_rq_start(rq);
		/*
		 * Before any planning; vdisk_q2_end_request() drops it (and
		 * the inline path dropped its own when it gave up).
		 */
		io->fmt_token = vdisk_q2_epoch_enter(q);
		if (!ret)
			ret = vdisk_q2_write(vd, q, rq);
		vdisk_rq_finish(rq, ret);
		return;
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		io->fmt_token = vdisk_q2_epoch_enter(q);
		vdisk_rq_end(rq, vdisk_q2_zero(vd, q, rq));
		return;
	case REQ_OP_FLUSH:
		if (q2_writable(q->layers[0].img))
			ret = q2_flush(q->layers[0].img);
		else
			ret = vd->image.writable ? -EIO : 0;
		vdisk_rq_end(rq, ret);
		return;
	default:
		vdisk_rq_end(rq, -EOPNOTSUPP);
		return;
	}
}

/*
 * The inline path (rq.c): a read whose whole range is one data extent of
 * the top image, or a write whose whole range is one in-place run, mapped
 * from a cached L2 table without waiting, goes straight to the file like
 * a raw request.  Anything else (a table miss, a backing layer,
 * compressed or zero clusters, several extents, allocation) goes to the
 * worker.
 */
static bool vdisk_q2_write_nowait(struct vdisk_q2 *q, struct request *rq,
				  u64 pos)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);
	struct q2_image *qi = q->layers[0].img;
	struct q2_write w;

	if (!q2_writable(qi))
		return false;
	/* The epoch is entered before planning, as in the worker. */
	io->fmt_token = vdisk_q2_epoch_enter(q);
	if (!q2_write_nowait(qi, pos, blk_rq_bytes(rq), &w) &&
	    vdisk_rq_try_nowait(rq, q->files[0], w.host_off, q->wdio_align))
		return true;
	vdisk_q2_epoch_exit(q, io->fmt_token);
	io->fmt_token = 0;
	return false;
}

static bool vdisk_q2_queue_nowait(struct vdisk_device *vd, struct request *rq)
{
	struct vdisk_q2 *q = vd->image.priv;
	u64 pos = (u64)blk_rq_pos(rq) << SECTOR_SHIFT;
	struct q2_extent ext;

	if (!q->dio_align[0] || READ_ONCE(vd->cache) != VDISK_CACHE_NONE)
		return false;
	/* In place, a write is issued like a raw one (see vdisk_q2_write()). */
	if (req_op(rq) == REQ_OP_WRITE)
		return !(rq->cmd_flags & REQ_FUA) && q->wdio_align &&
		       vdisk_q2_write_nowait(q, rq, pos);
	if (req_op(rq) != REQ_OP_READ)
		return false;
	if (q2_map_nowait(q->layers[0].img, pos, blk_rq_bytes(rq), &ext) ||
	    ext.type != Q2_DATA || ext.len != blk_rq_bytes(rq))
		return false;
	return vdisk_rq_try_nowait(rq, q->files[0], ext.host_off,
				   q->dio_align[0]);
}

static void vdisk_q2_end_request(struct vdisk_device *vd, struct request *rq)
{
	vdisk_q2_epoch_leave(vd->image.priv, rq);
}

/* Grow the virtual size; the device core has frozen the queue. */
static int vdisk_q2_resize(struct vdisk_image *img, u64 size,
			   struct netlink_ext_ack *extack)
{
	struct vdisk_q2 *q = img->priv;
	struct q2_image *qi = q->layers[0].img;
	int ret;

	if (size < img->size) {
		vdisk_nl_err(extack, "qcow2 images cannot shrink online (%llu < %llu bytes)",
			     size, img->size);
		return -EOPNOTSUPP;
	}
	if (size == img->size)
		return 0;
	ret = q2_resize(qi, size);
	if (!ret)
		ret = q2_flush(qi);
	if (ret) {
		vdisk_nl_err(extack, "growing the qcow2 image failed (error %d)", ret);
		return ret;
	}
	img->size = size;
	return 0;
}

static void vdisk_q2_flush_failed(struct vdisk_image *img, int err)
{
	struct vdisk_q2 *q = img->priv;

	q2_flush_failed(q->layers[0].img, err);
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
	.queue_nowait	= vdisk_q2_queue_nowait,
	.end_request	= vdisk_q2_end_request,
	.resize		= vdisk_q2_resize,
	.flush_failed	= vdisk_q2_flush_failed,
};
