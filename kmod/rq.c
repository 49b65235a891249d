// SPDX-License-Identifier: GPL-2.0
/*
 * The blk-mq side: queue_rq hands each request to a worker, which lets the
 * format backend map it onto file extents; each file extent is one kiocb on
 * the request's own pages (no bounce copies).  In cache=none mode those
 * kiocbs are direct and asynchronous (but the writes of an image with
 * image.buffered_writes); the other modes, and flush, discard and
 * write-zeroes, are synchronous calls in the worker.
 *
 * The fast path issues a single-extent direct read or write inline from
 * queue_rq with IOCB_NOWAIT (the queue is BLK_MQ_F_BLOCKING, but nothing here is
 * meant to sleep): no worker hop, so latency is the file's own.  When the
 * queue is deep, queue_rq only appends the request to its hardware queue's
 * list, and one batch worker takes the same path for each (struct
 * vdisk_hctx): then the submitter and the file I/O use two CPUs.  Whatever
 * would block (-EAGAIN, at once or from the completion), and every other
 * request, goes to a worker, because queue_rq runs in the submitter's
 * context: its bio list may be active (nested I/O is only queued, so
 * waiting for it would deadlock; the inline path detaches the list), it
 * may hold another filesystem's journal handle (file writes start our
 * own), and buffered I/O may sleep on page locks whose I/O is queued
 * behind us.  See vdisk_rq_try_nowait().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/mempool.h>
#include <linux/sched/mm.h>
#include <linux/uio.h>

#include "compat.h"
#include "vdisk.h"

/*
 * One workqueue for all devices: a per-device workqueue costs a rescuer
 * thread each, which makes attaching hundreds of devices slow.  Unbound so
 * the scheduler spreads workers over CPUs; MEM_RECLAIM because writeback
 * through vdisk must make progress under memory pressure; FREEZABLE as
 * loop's, so suspend does not race with file I/O.
 */
static struct workqueue_struct *vdisk_io_wq;

/*
 * Work that finishes requests and never waits for another request (qcow2
 * commits after a data write).  Not on vdisk_io_wq: requests there may
 * sleep until such work has run, and enough of them would use up its
 * max_active.
 */
static struct workqueue_struct *vdisk_done_wq;

/*
 * File I/Os beyond a request's first.  A request holds at most one element
 * while it waits for another, and every element it holds is in flight and
 * completes without allocating, so waiting on the pool cannot deadlock.
 */
static mempool_t *vdisk_sub_pool;
#define VDISK_SUB_POOL_MIN	64

static struct request *vdisk_io_rq(struct vdisk_io *io)
{
	return blk_mq_rq_from_pdu(io);
}

static void vdisk_io_error(struct vdisk_io *io, int err)
{
	/* The first error is the one reported. */
	if (err)
		cmpxchg(&io->error, 0, err);
}

static void vdisk_io_put(struct vdisk_io *io)
{
	struct request *rq;

	if (!atomic_dec_and_test(&io->pending))
		return;
	rq = vdisk_io_rq(io);
	if (likely(!blk_should_fake_timeout(rq->q)))
		blk_mq_complete_request(rq);
}

/* ---------------------------------------------------------------------- */
/* File extents                                                           */

static void vdisk_sub_free(struct vdisk_sub *sub)
{
	void (*done)(void *ctx, int err) = sub->done;
	struct vdisk_io *io = sub->io;
	void *ctx = sub->done_ctx;
	int err = sub->error;

	if (!sub->embedded)
		mempool_free(sub, vdisk_sub_pool);
	/* With a done callback, its owner drops the request's reference. */
	if (done)
		done(ctx, err);
	else
		vdisk_io_put(io);
}

static void vdisk_sub_error(struct vdisk_sub *sub, int err)
{
	if (!sub->error)
		sub->error = err;
	vdisk_io_error(sub->io, err);
}

static void vdisk_sub_submit(struct vdisk_sub *sub);

/*
 * A sub has two references while it is being submitted: the submitter's,
 * dropped when ->read_iter/->write_iter returns (filesystems touch the
 * kiocb after queueing it, e.g. ext4's file_accessed()), and the
 * completion's.  Only the last one frees it or hands it to the retry work.
 */
static void vdisk_sub_put(struct vdisk_sub *sub)
{
	if (!atomic_dec_and_test(&sub->ref))
		return;
	if (sub->retry)
		queue_work(vdisk_io_wq, &sub->retry_work);
	else
		vdisk_sub_free(sub);
}

static void vdisk_sub_retry_work(struct work_struct *work)
{
	struct vdisk_sub *sub = container_of(work, struct vdisk_sub,
					     retry_work);
	unsigned int noio = memalloc_noio_save();

	vdisk_sub_submit(sub);
	memalloc_noio_restore(noio);
}

/*
 * Completion of one file extent, from the worker (synchronous I/O) or from
 * the backing device's completion context (asynchronous direct I/O).
 */
static void vdisk_sub_complete(struct kiocb *iocb, long ret)
{
	struct vdisk_sub *sub = container_of(iocb, struct vdisk_sub, iocb);
	bool write = iocb->ki_flags & IOCB_WRITE;

	if (write && sub->started) {
		kiocb_end_write(iocb);
		sub->started = false;
	}

	if (ret == -EAGAIN && (iocb->ki_flags & IOCB_NOWAIT)) {
		/*
		 * An inline attempt that would have blocked, found out after
		 * some of it was issued: redo it all, blocking, from the
		 * worker.  Rereading or rewriting the same bytes is harmless.
		 */
		iocb->ki_flags &= ~IOCB_NOWAIT;
		iocb->ki_pos = sub->pos;
		sub->retry = true;
		vdisk_sub_put(sub);
		return;
	}
	if (ret < 0) {
		vdisk_sub_error(sub, ret);
	} else if (ret < iov_iter_count(&sub->iter)) {
		iov_iter_advance(&sub->iter, ret);
		sub->pos += ret;
		if (ret == 0 && write) {
			vdisk_sub_error(sub, -EIO);
		} else if (!write && sub->pos >= vdisk_file_size(iocb->ki_filp)) {
			/*
			 * Short read at the end of the file (it shrank after
			 * attach): like a hole, the rest reads as zeros.
			 */
			iov_iter_zero(iov_iter_count(&sub->iter), &sub->iter);
		} else if (ret == 0) {
			vdisk_sub_error(sub, -EIO);
		} else {
			/*
			 * Short transfer: retry the rest, which either makes
			 * progress or returns the real error (ENOSPC, EIO).
			 * We may be in interrupt context: use the worker.
			 */
			iocb->ki_pos = sub->pos;
			iocb->ki_flags &= ~IOCB_NOWAIT;
			sub->retry = true;
			vdisk_sub_put(sub);
			return;
		}
	}
	vdisk_sub_put(sub);
}

/*
 * Write access to the file's file system for @iocb; like
 * kiocb_start_write(), but an inline (IOCB_NOWAIT) write does not wait
 * for a frozen file system: it goes to the worker, which does (io_uring
 * does the same).  False if access was not taken.
 */
static bool vdisk_kiocb_start_write(struct kiocb *iocb)
{
	struct vdisk_sub *sub = container_of(iocb, struct vdisk_sub, iocb);
	struct super_block *sb = file_inode(iocb->ki_filp)->i_sb;

	sub->started = false;
	if (!(iocb->ki_flags & IOCB_NOWAIT)) {
		kiocb_start_write(iocb);
	} else {
		if (!sb_start_write_trylock(sb))
			return false;
		/* As kiocb_start_write(): the completion may end it elsewhere. */
		__sb_writers_release(sb, SB_FREEZE_WRITE);
	}
	sub->started = true;
	return true;
}

static void vdisk_sub_submit(struct vdisk_sub *sub)
{
	struct kiocb *iocb = &sub->iocb;
	struct iov_iter iter = sub->iter;
	struct file *file = iocb->ki_filp;
	ssize_t ret;

	atomic_set(&sub->ref, 2);
	sub->retry = false;
	/* The file advances @iter; sub->iter keeps the start for retries. */
	if (iocb->ki_flags & IOCB_WRITE) {
		if (!vdisk_kiocb_start_write(iocb))
			ret = -EAGAIN;
		else
			ret = file->f_op->write_iter(iocb, &iter);
	} else {
		ret = file->f_op->read_iter(iocb, &iter);
	}
	if (ret == -EAGAIN && (iocb->ki_flags & IOCB_NOWAIT) &&
	    sub->io->nowait) {
		/* Nothing was issued: queue_rq hands the request over. */
		if ((iocb->ki_flags & IOCB_WRITE) && sub->started)
			kiocb_end_write(iocb);
		sub->io->punted = true;
		if (!sub->embedded)
			mempool_free(sub, vdisk_sub_pool);
		atomic_dec(&sub->io->pending);
		return;
	}
	if (ret != -EIOCBQUEUED)
		vdisk_sub_complete(iocb, ret);
	vdisk_sub_put(sub);
}

static struct vdisk_sub *vdisk_sub_get(struct vdisk_io *io)
{
	struct vdisk_sub *sub;

	/*
	 * The embedded sub serves the first extent only: reusing it after it
	 * completes would race with its completion on another CPU.
	 */
	if (!io->sub_used) {
		io->sub_used = true;
		sub = &io->sub;
		sub->embedded = true;
	} else {
		sub = mempool_alloc(vdisk_sub_pool, GFP_NOIO);
		sub->embedded = false;
	}
	sub->io = io;
	sub->error = 0;
	sub->done = NULL;
	sub->done_ctx = NULL;
	INIT_WORK(&sub->retry_work, vdisk_sub_retry_work);
	return sub;
}

static void vdisk_rq_file_sub(struct request *rq, struct file *file,
			      loff_t pos, size_t len, u32 dio_align,
			      void (*done)(void *ctx, int err), void *ctx)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);
	struct vdisk_device *vd = rq->q->queuedata;
	enum vdisk_cache cache = READ_ONCE(vd->cache);
	bool write = req_op(rq) == REQ_OP_WRITE;
	struct vdisk_sub *sub = vdisk_sub_get(io);
	struct kiocb *iocb = &sub->iocb;

	sub->done = done;
	sub->done_ctx = ctx;

	sub->iter = io->iter;
	sub->pos = pos;
	iov_iter_truncate(&sub->iter, len);
	iov_iter_advance(&io->iter, len);

	memset(iocb, 0, sizeof(*iocb));
	iocb->ki_pos = pos;
	iocb->ki_filp = file;
	iocb->ki_ioprio = req_get_ioprio(rq);
	if (cache == VDISK_CACHE_NONE && dio_align &&
	    IS_ALIGNED(pos | len, dio_align)) {
		iocb->ki_flags = IOCB_DIRECT;
		iocb->ki_complete = vdisk_sub_complete;
		if (io->nowait)
			iocb->ki_flags |= IOCB_NOWAIT;
	}
	if (write) {
		iocb->ki_flags |= IOCB_WRITE;
		if (cache == VDISK_CACHE_WRITETHROUGH ||
		    (rq->cmd_flags & REQ_FUA))
			iocb->ki_flags |= IOCB_DSYNC;
	}

	atomic_inc(&io->pending);
	vdisk_sub_submit(sub);
}

void vdisk_rq_file(struct request *rq, struct file *file, loff_t pos,
		   size_t len, u32 dio_align)
{
	vdisk_rq_file_sub(rq, file, pos, len, dio_align, NULL, NULL);
}

void vdisk_rq_file_then(struct request *rq, struct file *file, loff_t pos,
			size_t len, u32 dio_align,
			void (*done)(void *ctx, int err), void *ctx)
{
	vdisk_rq_file_sub(rq, file, pos, len, dio_align, done, ctx);
}

void vdisk_rq_queue_done(struct work_struct *work)
{
	queue_work(vdisk_done_wq, work);
}

int vdisk_rq_iter_sync(struct request *rq, struct file *file, loff_t pos,
		       struct iov_iter *iter, u32 dio_align)
{
	struct vdisk_device *vd = rq->q->queuedata;
	bool write = req_op(rq) == REQ_OP_WRITE;
	struct kiocb kiocb;
	ssize_t ret = 0;

	while (iov_iter_count(iter)) {
		vdisk_sync_kiocb(&kiocb, file, pos);
		kiocb.ki_ioprio = req_get_ioprio(rq);
		if (READ_ONCE(vd->cache) == VDISK_CACHE_NONE && dio_align &&
		    IS_ALIGNED(pos | iov_iter_count(iter), dio_align))
			kiocb.ki_flags |= IOCB_DIRECT;
		if (write) {
			if (READ_ONCE(vd->cache) == VDISK_CACHE_WRITETHROUGH ||
			    (rq->cmd_flags & REQ_FUA))
				kiocb.ki_flags |= IOCB_DSYNC;
			kiocb_start_write(&kiocb);
			ret = file->f_op->write_iter(&kiocb, iter);
			kiocb_end_write(&kiocb);
		} else {
			ret = file->f_op->read_iter(&kiocb, iter);
		}
		if (ret < 0)
			return ret;
		if (ret == 0) {
			if (write)
				return -EIO;
			/* End of file: the rest reads as zeros. */
			iov_iter_zero(iov_iter_count(iter), iter);
			break;
		}
		pos += ret;
	}
	return 0;
}

int vdisk_rq_file_sync(struct request *rq, struct file *file, loff_t pos,
		       size_t len, u32 dio_align)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);
	struct iov_iter iter = io->iter;

	iov_iter_truncate(&iter, len);
	iov_iter_advance(&io->iter, len);
	return vdisk_rq_iter_sync(rq, file, pos, &iter, dio_align);
}

void vdisk_rq_zero(struct request *rq, size_t len)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);

	iov_iter_zero(len, &io->iter);
}

void vdisk_rq_copy(struct request *rq, const void *buf, size_t len)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);

	if (copy_to_iter(buf, len, &io->iter) != len)
		vdisk_io_error(io, -EFAULT);
}

static int vdisk_rq_start_gfp(struct request *rq, gfp_t gfp);

/* Build the iterator over a read or write request's data. */
int vdisk_rq_start(struct request *rq)
{
	return vdisk_rq_start_gfp(rq, GFP_NOIO);
}

static int vdisk_rq_start_gfp(struct request *rq, gfp_t gfp)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);
	bool write = req_op(rq) == REQ_OP_WRITE;
	struct req_iterator rq_iter;
	struct bio *bio = rq->bio;
	struct bio_vec *bvec, tmp;
	unsigned int offset = 0;
	int nr_bvec = 0;

	atomic_set(&io->pending, 1);
	io->error = 0;
	io->sub_used = false;
	io->nowait = false;
	io->punted = false;

	rq_for_each_bvec(tmp, rq, rq_iter)
		nr_bvec++;

	if (rq->bio != rq->biotail) {
		/*
		 * A merged request spans several bios: gather their vectors
		 * into one array so the file sees a single iov_iter.
		 */
		bvec = kmalloc_array(nr_bvec, sizeof(*bvec), gfp);
		if (!bvec)
			return -ENOMEM;
		io->bvec = bvec;
		rq_for_each_bvec(tmp, rq, rq_iter)
			*bvec++ = tmp;
		bvec = io->bvec;
	} else {
		/* A split bio may start inside its first vector. */
		offset = bio->bi_iter.bi_bvec_done;
		bvec = __bvec_iter_bvec(bio->bi_io_vec, bio->bi_iter);
	}

	iov_iter_bvec(&io->iter, write ? ITER_SOURCE : ITER_DEST, bvec,
		      nr_bvec, blk_rq_bytes(rq));
	io->iter.iov_offset = offset;
	return 0;
}

/*
 * From queue_rq: issue @rq as one direct read or write at @pos of @file
 * without blocking.  True if it is on its way (or done); false if nothing
 * happened and the worker must carry it out.
 *
 * queue_rq runs in whatever task submitted the I/O, often another
 * filesystem's writeback or journal thread, so the inline path is narrow:
 *  - not inside another filesystem's transaction (current->journal_info),
 *    where a read that updates atime or a write that updates mtime would
 *    nest a foreign handle;
 *  - a write that must update the file's times (once per clock tick) starts
 *    a journal transaction in the backing file system: ext4 does so even
 *    under IOCB_NOWAIT, XFS refuses and the request goes to the worker.
 *    That is safe here, since the task holds no handle (previous rule);
 *    it is not done from reclaim or from a NOFS or NOIO scope, whose
 *    owner may hold what the backing file system's journal waits for
 *    (there only writes that find the times current go inline).  Doing
 *    it inline rather than in the worker made 4 KiB writes at depth 1
 *    1.19x faster (Documentation/performance.rst).  Not FUA writes
 *    (their completion syncs), and not while the file still has
 *    privileges to drop (!IS_NOSEC);
 *  - with the task's plug detached: we may be called from that plug's
 *    flush, and our bios must not be added to the list being flushed
 *    (the batch worker keeps its own plug);
 *  - with the task's bio list detached: queue_rq is often called from
 *    inside the submitter's submit_bio, where the bios the backing file
 *    system submits would only be queued until we return.  IOCB_NOWAIT
 *    does not stop every wait: ext4 reads an extent tree block it does
 *    not have cached, and waits for it, whatever the kiocb's flags; with
 *    the read queued behind us that wait never ended.  Detached, such a
 *    read goes out at once and the wait is merely slow.  The price is one
 *    more level of submit_bio recursion on the stack, so it is taken once:
 *    an inline call already under way on this task (inside a NOIO
 *    section, which is how ours runs; e.g. an image on a file system on
 *    another vdisk) hands nested requests to the worker instead.
 */
bool vdisk_rq_try_nowait(struct request *rq, struct file *file, loff_t pos,
			 u32 dio_align)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);
	struct vdisk_device *vd = rq->q->queuedata;
	struct inode *inode = file_inode(file);
	struct bio_list *bio_list = current->bio_list;
	struct blk_plug *plug;
	unsigned int noio;
	bool done = false;

	if (current->journal_info ||
	    (bio_list && (current->flags & PF_MEMALLOC_NOIO)) ||
	    READ_ONCE(vd->cache) != VDISK_CACHE_NONE ||
	    !(file->f_mode & FMODE_NOWAIT) || !dio_align ||
	    !IS_ALIGNED(pos | blk_rq_bytes(rq), dio_align))
		return false;
	switch (req_op(rq)) {
	case REQ_OP_READ:
		break;
	case REQ_OP_WRITE:
		if ((rq->cmd_flags & REQ_FUA) || !IS_NOSEC(inode))
			return false;
		if ((current->flags & (PF_MEMALLOC | PF_MEMALLOC_NOFS |
				       PF_MEMALLOC_NOIO)) &&
		    !vdisk_compat_times_current(inode))
			return false;
		break;
	default:
		return false;
	}

	noio = memalloc_noio_save();
	/* The batch worker's plug is its own (see vdisk_hctx_work()). */
	plug = io->batched ? current->plug : vdisk_compat_plug_detach();
	current->bio_list = NULL;
	if (!vdisk_rq_start_gfp(rq, GFP_NOWAIT)) {
		io->nowait = true;
		vdisk_rq_file(rq, file, pos, blk_rq_bytes(rq), dio_align);
		io->nowait = false;
		if (io->punted) {
			kfree(io->bvec);
			io->bvec = NULL;
		} else {
			vdisk_rq_finish(rq, 0);
			done = true;
		}
	}
	current->bio_list = bio_list;
	vdisk_compat_plug_attach(plug);
	memalloc_noio_restore(noio);
	return done;
}

/* The format has described the whole request (or gave up with @err). */
void vdisk_rq_finish(struct request *rq, int err)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);

	vdisk_io_error(io, err);
	vdisk_io_put(io);
}

/* Complete a request that has no extents in flight, with @err. */
void vdisk_rq_end(struct request *rq, int err)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);

	atomic_set(&io->pending, 1);
	io->error = err;
	vdisk_io_put(io);
}

static int vdisk_rq_fallocate(struct request *rq, struct file *file,
			      loff_t pos)
{
	loff_t len = blk_rq_bytes(rq);
	int mode = FALLOC_FL_KEEP_SIZE;
	int ret;

	if (!file->f_op->fallocate)
		return -EOPNOTSUPP;

	/*
	 * Discard and plain write-zeroes punch a hole, which reads back as
	 * zeros and makes the image sparse again; REQ_NOUNMAP asks for the
	 * blocks to stay allocated, which is ZERO_RANGE.
	 */
	if (req_op(rq) == REQ_OP_WRITE_ZEROES && (rq->cmd_flags & REQ_NOUNMAP))
		mode |= FALLOC_FL_ZERO_RANGE;
	else
		mode |= FALLOC_FL_PUNCH_HOLE;
	/*
	 * A block device punches only with the disk's write-zeroes (no
	 * fallback); ZERO_RANGE falls back to writing zeros.
	 */
	if (req_op(rq) == REQ_OP_WRITE_ZEROES &&
	    S_ISBLK(file_inode(file)->i_mode) &&
	    !bdev_write_zeroes_sectors(I_BDEV(file->f_mapping->host)))
		mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_ZERO_RANGE;

	ret = vfs_fallocate(file, mode, pos, len);
	if (ret == -EOPNOTSUPP && (mode & FALLOC_FL_ZERO_RANGE)) {
		/* e.g. tmpfs: zero by punching, then allocate again. */
		ret = vfs_fallocate(file, FALLOC_FL_KEEP_SIZE |
				    FALLOC_FL_PUNCH_HOLE, pos, len);
		if (!ret)
			ret = vfs_fallocate(file, FALLOC_FL_KEEP_SIZE, pos, len);
	}
	return ret;
}

void vdisk_rq_file_io(struct request *rq, struct file *file, loff_t pos,
		      u32 dio_align)
{
	struct vdisk_device *vd = rq->q->queuedata;
	int ret;

	switch (req_op(rq)) {
	case REQ_OP_READ:
	case REQ_OP_WRITE:
		ret = vdisk_rq_start(rq);
		if (!ret)
			vdisk_rq_file(rq, file, pos, blk_rq_bytes(rq),
				      dio_align);
		vdisk_rq_finish(rq, ret);
		return;
	case REQ_OP_FLUSH:
		ret = vdisk_file_fsync(file, 0);
		break;
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		ret = vdisk_rq_fallocate(rq, file, pos);
		/*
		 * Write-through has no cache for the guest to flush, so the
		 * zeros must be durable now, like its writes (IOCB_DSYNC);
		 * the file system keeps the extent change in its journal
		 * until the next commit otherwise.
		 */
		if (!ret && READ_ONCE(vd->cache) == VDISK_CACHE_WRITETHROUGH)
			ret = vdisk_file_fsync(file, 1);
		break;
	default:
		ret = -EOPNOTSUPP;
		break;
	}
	vdisk_rq_end(rq, ret);
}

/* ---------------------------------------------------------------------- */
/* blk-mq operations                                                      */

/*
 * The write-back error a failed `set --cache` kept (vdisk_dev_set_cache())
 * goes to the first request that asks for durability, as a file's goes to
 * the first fsync or O_DSYNC write after it: a FLUSH, a FUA write, or any
 * write while in write-through mode, which gets no FLUSH.  Such writes do
 * not start inline while an error is kept (vdisk_try_inline()).
 */
static int vdisk_take_wb_error(struct vdisk_device *vd, struct request *rq)
{
	if (likely(!READ_ONCE(vd->wb_error)))
		return 0;
	if (req_op(rq) != REQ_OP_FLUSH &&
	    !(op_is_write(req_op(rq)) &&
	      ((rq->cmd_flags & REQ_FUA) ||
	       READ_ONCE(vd->cache) == VDISK_CACHE_WRITETHROUGH)))
		return 0;
	return xchg(&vd->wb_error, 0);
}

static void vdisk_io_work(struct work_struct *work)
{
	struct vdisk_io *io = container_of(work, struct vdisk_io, work);
	struct request *rq = vdisk_io_rq(io);
	struct vdisk_device *vd = rq->q->queuedata;
	unsigned int noio;
	int err;

	/*
	 * Memory allocated while serving this request must not recurse into
	 * I/O, which could wait on this very device.
	 */
	noio = memalloc_noio_save();
	if (op_is_write(req_op(rq)) && req_op(rq) != REQ_OP_FLUSH &&
	    vdisk_dev_read_only(vd))
		vdisk_rq_end(rq, -EROFS);
	else if ((err = vdisk_take_wb_error(vd, rq)))
		vdisk_rq_end(rq, err);
	else
		vd->image.ops->queue(vd, rq);
	memalloc_noio_restore(noio);
}

/*
 * Per hardware queue: requests that queue_rq hands to one batch worker
 * because the queue is deep.
 *
 * Inline submission costs the submitter's CPU the whole file I/O (the
 * filesystem's direct I/O path and the backing device's driver).  At queue
 * depth 1 that is the cheapest way, since nothing else is waiting; with many
 * requests in flight the submitter is the bottleneck, and handing the
 * submissions to one worker, which drains a list as loop's worker does, lets
 * the block layer side and the file side run on two CPUs.  One work item per
 * queue rather than one per request keeps the hand-off to a list append and,
 * at most, one wake-up per batch.  In write-back mode (and for an image
 * with image.buffered_writes in cache=none) a second work item per queue,
 * the writer, makes the buffered writes (vdisk_batch_how()).
 */
struct vdisk_hctx {
	spinlock_t lock;
	struct list_head list;		/* vdisk_io.node, in arrival order */
	struct work_struct work;
	struct list_head wlist;		/* writes for the writer, in order */
	struct work_struct wwork;	/* the writer */
	atomic_t inflight;		/* started and not yet completed */
};

/*
 * Requests in flight on a queue up to which queue_rq still submits inline.
 * Measured (Documentation/performance.rst): 4 KiB random I/O at depth 1
 * is fastest inline, at depth 32 through the batch worker.
 */
#define VDISK_INLINE_DEPTH	2

/*
 * Reads larger than this stay inline at any depth: submitting one costs
 * the submitter little per byte, and the hop to the batch worker cost
 * more than it saved (1 MiB reads at depth 8: 5,800 MiB/s batched, 6,700
 * inline, 0.84 against 0.12 context switches per read).  Large writes
 * still gain from the batch worker, which takes the file system's
 * heavier write path off the submitter's CPU.
 */
#define VDISK_INLINE_READ_MIN	SZ_128K

/* Should queue_rq hand @rq to the queue's batch worker? */
static bool vdisk_batch(struct vdisk_device *vd, struct vdisk_hctx *vq,
			struct request *rq)
{
	/* Counted first: vdisk_complete_rq() uncounts every request. */
	if (atomic_inc_return(&vq->inflight) <= VDISK_INLINE_DEPTH ||
	    !vd->image.ops->queue_nowait)
		return false;
	return !(req_op(rq) == REQ_OP_READ &&
		 blk_rq_bytes(rq) > VDISK_INLINE_READ_MIN);
}

/*
 * Start @rq without blocking where the format can: the inline path, which
 * falls back by itself.  False if a worker that may block must start it.
 */
static bool vdisk_try_inline(struct vdisk_device *vd, struct request *rq)
{
	/*
	 * Writes to a read-only device go to the worker, which refuses them,
	 * and so do all writes while a write-back error is kept, for the
	 * worker to hand it to the first that asks for durability.
	 */
	return vd->image.ops->queue_nowait &&
	       !(op_is_write(req_op(rq)) &&
		 (vdisk_dev_read_only(vd) || READ_ONCE(vd->wb_error))) &&
	       vd->image.ops->queue_nowait(vd, rq);
}

static void vdisk_dispatch(struct vdisk_device *vd, struct request *rq)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);

	if (!vdisk_try_inline(vd, rq))
		queue_work(vdisk_io_wq, &io->work);
}

/* Who starts a request the batch worker could not start inline. */
enum vdisk_batch_how {
	VDISK_BATCH_OWN_WORKER,		/* a worker of its own */
	VDISK_BATCH_HERE,		/* the batch worker, in order */
	VDISK_BATCH_WRITER,		/* the queue's writer, in order */
};

/*
 * Writes that may block take turns on the image's metadata mutex or the
 * file system's inode lock anyway, so a worker each only adds wake-ups
 * and lock hand-offs; they run one at a time, in order, as loop's worker
 * runs everything:
 *  - in direct mode a write that cannot go inline allocates (a qcow2
 *    write to new clusters, a write into a hole of a sparse raw file).
 *    The batch worker runs it itself (measured on 4 KiB random writes to
 *    a fresh qcow2, against a worker each: a quarter fewer context
 *    switches and about an eighth less CPU per write, throughput within
 *    the noise; against handing it to the writer: 0.85x, a third more
 *    context switches);
 *  - in write-back mode every write is a buffered write, which ext4 makes
 *    under the inode lock taken exclusively, and which may sleep on the
 *    page cache's dirty limit for as long as write-back takes.  The
 *    queue's writer runs them, so that the reads behind them are not
 *    held up: against a worker each, 1.27x and 1.34x for 1 MiB writes in
 *    two A/B runs, 1.09x and 1.12x for 4 KiB random writes at depth 32;
 *    mixed I/O within the noise (Documentation/performance.rst).
 *    So are the writes of an image that writes buffered in direct mode
 *    (image.buffered_writes).
 * Not in write-through mode, where every write waits for its own sync
 * and concurrent syncs share journal commits.  A read that cannot go
 * inline waits for a metadata read that does not depend on the others,
 * or for the page cache: it gets a worker of its own.
 */
static enum vdisk_batch_how vdisk_batch_how(struct vdisk_device *vd,
					    struct request *rq)
{
	if (req_op(rq) != REQ_OP_WRITE)
		return VDISK_BATCH_OWN_WORKER;
	switch (READ_ONCE(vd->cache)) {
	case VDISK_CACHE_NONE:
		return vd->image.buffered_writes ? VDISK_BATCH_WRITER :
						   VDISK_BATCH_HERE;
	case VDISK_CACHE_WRITEBACK:
		return VDISK_BATCH_WRITER;
	default:
		return VDISK_BATCH_OWN_WORKER;
	}
}

/* Hand @io to its queue's writer. */
static void vdisk_hctx_to_writer(struct vdisk_hctx *vq, struct vdisk_io *io)
{
	bool idle;

	spin_lock_irq(&vq->lock);
	idle = list_empty(&vq->wlist);
	list_add_tail(&io->node, &vq->wlist);
	spin_unlock_irq(&vq->lock);
	/* A writer that is still running finds it. */
	if (idle)
		queue_work(vdisk_io_wq, &vq->wwork);
}

/*
 * The batch worker: starts each listed request inline, or as
 * vdisk_batch_how() says.
 */
/* The first request of one of the queue's lists, taken off it; NULL if empty. */
static struct vdisk_io *vdisk_hctx_pop(struct vdisk_hctx *vq,
				       struct list_head *list)
{
	struct vdisk_io *io;

	spin_lock_irq(&vq->lock);
	io = list_first_entry_or_null(list, struct vdisk_io, node);
	if (io)
		list_del_init(&io->node);
	spin_unlock_irq(&vq->lock);
	return io;
}

static void vdisk_hctx_work(struct work_struct *work)
{
	struct vdisk_hctx *vq = container_of(work, struct vdisk_hctx, work);
	struct vdisk_io *io;
	struct blk_plug plug;

	/*
	 * Drain until the list stays empty, as loop's worker does: requests
	 * that arrive meanwhile are taken without another wake-up.  The plug
	 * lets the file's bios for a batch reach the backing device together
	 * (and is flushed whenever this worker sleeps).  Requests in the
	 * list have not started in the format (no write epoch, no plan), so
	 * nothing the worker may wait for depends on them.
	 */
	blk_start_plug(&plug);
	while ((io = vdisk_hctx_pop(vq, &vq->list))) {
		struct request *rq = vdisk_io_rq(io);
		struct vdisk_device *vd = rq->q->queuedata;

		io->batched = true;
		if (!vdisk_try_inline(vd, rq)) {
			switch (vdisk_batch_how(vd, rq)) {
			case VDISK_BATCH_HERE:
				vdisk_io_work(&io->work);
				break;
			case VDISK_BATCH_WRITER:
				vdisk_hctx_to_writer(vq, io);
				break;
			default:
				queue_work(vdisk_io_wq, &io->work);
			}
		}
		cond_resched();
	}
	blk_finish_plug(&plug);
}

/*
 * The writer: the writes the batch worker handed over, one at a time in
 * order.  They have not started in the format (no write epoch, no plan),
 * so nothing one of them waits for depends on those behind it.
 */
static void vdisk_hctx_write_work(struct work_struct *work)
{
	struct vdisk_hctx *vq = container_of(work, struct vdisk_hctx, wwork);
	struct vdisk_io *io;
	struct blk_plug plug;

	blk_start_plug(&plug);
	while ((io = vdisk_hctx_pop(vq, &vq->wlist))) {
		vdisk_io_work(&io->work);
		cond_resched();
	}
	blk_finish_plug(&plug);
}

static blk_status_t vdisk_queue_rq(struct blk_mq_hw_ctx *hctx,
				   const struct blk_mq_queue_data *bd)
{
	struct vdisk_hctx *vq = hctx->driver_data;
	struct request *rq = bd->rq;
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);
	struct vdisk_device *vd = rq->q->queuedata;

	blk_mq_start_request(rq);
	io->batched = false;
	if (vdisk_batch(vd, vq, rq)) {
		spin_lock_irq(&vq->lock);
		list_add_tail(&io->node, &vq->list);
		spin_unlock_irq(&vq->lock);
		queue_work(vdisk_io_wq, &vq->work);
		return BLK_STS_OK;
	}
	vdisk_dispatch(vd, rq);
	return BLK_STS_OK;
}

static void vdisk_complete_rq(struct request *rq)
{
	struct vdisk_hctx *vq = rq->mq_hctx->driver_data;
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);
	struct vdisk_device *vd = rq->q->queuedata;

	if (vd->image.ops->end_request)
		vd->image.ops->end_request(vd, rq);

	kfree(io->bvec);
	io->bvec = NULL;
	atomic_dec(&vq->inflight);
	blk_mq_end_request(rq, errno_to_blk_status(io->error));
}

static int vdisk_init_hctx(struct blk_mq_hw_ctx *hctx, void *data,
			   unsigned int hctx_idx)
{
	struct vdisk_hctx *vq;

	vq = kzalloc_node(sizeof(*vq), GFP_KERNEL, hctx->numa_node);
	if (!vq)
		return -ENOMEM;
	spin_lock_init(&vq->lock);
	INIT_LIST_HEAD(&vq->list);
	INIT_WORK(&vq->work, vdisk_hctx_work);
	INIT_LIST_HEAD(&vq->wlist);
	INIT_WORK(&vq->wwork, vdisk_hctx_write_work);
	atomic_set(&vq->inflight, 0);
	hctx->driver_data = vq;
	return 0;
}

static void vdisk_exit_hctx(struct blk_mq_hw_ctx *hctx, unsigned int hctx_idx)
{
	struct vdisk_hctx *vq = hctx->driver_data;

	/* The queue is drained: every listed request has been dispatched. */
	flush_work(&vq->work);		/* may queue the writer */
	flush_work(&vq->wwork);
	WARN_ON_ONCE(!list_empty(&vq->list) || !list_empty(&vq->wlist));
	kfree(vq);
	hctx->driver_data = NULL;
}

static int vdisk_init_request(struct blk_mq_tag_set *set, struct request *rq,
			      unsigned int hctx_idx, unsigned int numa_node)
{
	struct vdisk_io *io = blk_mq_rq_to_pdu(rq);

	INIT_WORK(&io->work, vdisk_io_work);
	INIT_LIST_HEAD(&io->node);
	io->fmt_token = 0;
	return 0;
}

const struct blk_mq_ops vdisk_mq_ops = {
	.queue_rq	= vdisk_queue_rq,
	.complete	= vdisk_complete_rq,
	.init_hctx	= vdisk_init_hctx,
	.exit_hctx	= vdisk_exit_hctx,
	.init_request	= vdisk_init_request,
};

int vdisk_rq_init(void)
{
	vdisk_sub_pool = mempool_create_kmalloc_pool(VDISK_SUB_POOL_MIN,
						     sizeof(struct vdisk_sub));
	if (!vdisk_sub_pool)
		return -ENOMEM;
	vdisk_io_wq = alloc_workqueue("vdisk_io", WQ_UNBOUND | WQ_MEM_RECLAIM |
				      WQ_FREEZABLE, 0);
	vdisk_done_wq = alloc_workqueue("vdisk_done", WQ_UNBOUND |
					WQ_MEM_RECLAIM, 0);
	if (!vdisk_io_wq || !vdisk_done_wq) {
		if (vdisk_io_wq)
			destroy_workqueue(vdisk_io_wq);
		if (vdisk_done_wq)
			destroy_workqueue(vdisk_done_wq);
		mempool_destroy(vdisk_sub_pool);
		return -ENOMEM;
	}
	return 0;
}

void vdisk_rq_exit(void)
{
	destroy_workqueue(vdisk_io_wq);
	destroy_workqueue(vdisk_done_wq);
	mempool_destroy(vdisk_sub_pool);
}
