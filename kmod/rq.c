// SPDX-License-Identifier: GPL-2.0
/*
 * The blk-mq side: queue_rq hands each request to a worker, which lets the
 * format backend map it and submit file I/O.  Reads and writes in direct
 * I/O mode are asynchronous kiocbs straight from the request's pages; the
 * other modes, flush, discard and write-zeroes are synchronous calls in the
 * worker.
 *
 * Why a worker: queue_rq may be called with the submitter's bio list
 * active (so nested I/O would only be queued, not issued) and, for buffered
 * I/O, the filesystem may sleep on page locks whose I/O is queued behind
 * us.  Issuing from a worker avoids both, as loop does.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/sched/mm.h>
#include <linux/uio.h>

#include "vdisk.h"
#include "rq.h"

/*
 * One workqueue for all devices: a per-device workqueue costs a rescuer
 * thread each, which makes attaching hundreds of devices slow.  Unbound so
 * the scheduler spreads workers over CPUs; MEM_RECLAIM because writeback
 * through vdisk must make progress under memory pressure; FREEZABLE as
 * loop's, so suspend does not race with file I/O.
 */
static struct workqueue_struct *vdisk_io_wq;

void vdisk_rq_done(struct request *rq, long ret)
{
	struct vdisk_io *cmd = blk_mq_rq_to_pdu(rq);

	cmd->ret = ret;
	if (likely(!blk_should_fake_timeout(rq->q)))
		blk_mq_complete_request(rq);
}

static void vdisk_io_put(struct vdisk_io *cmd)
{
	if (atomic_dec_and_test(&cmd->ref))
		vdisk_rq_done(blk_mq_rq_from_pdu(cmd), cmd->ret);
}

static void vdisk_rw_aio_complete(struct kiocb *iocb, long ret)
{
	struct vdisk_io *cmd = container_of(iocb, struct vdisk_io, iocb);

	if (iocb->ki_flags & IOCB_WRITE)
		kiocb_end_write(iocb);
	cmd->ret = ret;
	vdisk_io_put(cmd);
}

static void vdisk_rq_rw(struct vdisk_device *vd, struct request *rq,
			struct file *file, loff_t pos)
{
	struct vdisk_io *cmd = blk_mq_rq_to_pdu(rq);
	bool write = req_op(rq) == REQ_OP_WRITE;
	enum vdisk_cache cache = READ_ONCE(vd->cache);
	struct req_iterator rq_iter;
	struct bio *bio = rq->bio;
	struct bio_vec *bvec, tmp;
	unsigned int offset = 0;
	struct iov_iter iter;
	int nr_bvec = 0;
	ssize_t ret;

	rq_for_each_bvec(tmp, rq, rq_iter)
		nr_bvec++;

	if (rq->bio != rq->biotail) {
		/*
		 * A merged request spans several bios: gather their vectors
		 * into one array so the file sees a single iov_iter.
		 */
		bvec = kmalloc_array(nr_bvec, sizeof(*bvec), GFP_NOIO);
		if (!bvec) {
			vdisk_rq_done(rq, -ENOMEM);
			return;
		}
		cmd->bvec = bvec;
		rq_for_each_bvec(tmp, rq, rq_iter)
			*bvec++ = tmp;
		bvec = cmd->bvec;
	} else {
		/* A split bio may start inside its first vector. */
		offset = bio->bi_iter.bi_bvec_done;
		bvec = __bvec_iter_bvec(bio->bi_io_vec, bio->bi_iter);
	}

	iov_iter_bvec(&iter, write ? ITER_SOURCE : ITER_DEST, bvec, nr_bvec,
		      blk_rq_bytes(rq));
	iter.iov_offset = offset;

	memset(&cmd->iocb, 0, sizeof(cmd->iocb));
	cmd->iocb.ki_pos = pos;
	cmd->iocb.ki_filp = file;
	cmd->iocb.ki_ioprio = req_get_ioprio(rq);
	if (cache == VDISK_CACHE_NONE) {
		cmd->iocb.ki_flags = IOCB_DIRECT;
		cmd->iocb.ki_complete = vdisk_rw_aio_complete;
	}
	if (write && (cache == VDISK_CACHE_WRITETHROUGH ||
		      (rq->cmd_flags & REQ_FUA)))
		cmd->iocb.ki_flags |= IOCB_DSYNC;

	/* One reference for us, one for the async completion. */
	atomic_set(&cmd->ref, 2);
	cmd->ret = 0;
	if (write) {
		cmd->iocb.ki_flags |= IOCB_WRITE;
		kiocb_start_write(&cmd->iocb);
		ret = file->f_op->write_iter(&cmd->iocb, &iter);
	} else {
		ret = file->f_op->read_iter(&cmd->iocb, &iter);
	}
	if (ret != -EIOCBQUEUED)
		vdisk_rw_aio_complete(&cmd->iocb, ret);
	vdisk_io_put(cmd);
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

void vdisk_rq_file_io(struct vdisk_device *vd, struct request *rq,
		      struct file *file, loff_t pos)
{
	int ret;

	switch (req_op(rq)) {
	case REQ_OP_READ:
	case REQ_OP_WRITE:
		vdisk_rq_rw(vd, rq, file, pos);
		return;
	case REQ_OP_FLUSH:
		ret = vfs_fsync(file, 0);
		break;
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		ret = vdisk_rq_fallocate(rq, file, pos);
		break;
	default:
		ret = -EOPNOTSUPP;
		break;
	}
	vdisk_rq_done(rq, ret ? ret : blk_rq_bytes(rq));
}

static void vdisk_io_work(struct work_struct *work)
{
	struct vdisk_io *cmd = container_of(work, struct vdisk_io, work);
	struct request *rq = blk_mq_rq_from_pdu(cmd);
	struct vdisk_device *vd = rq->q->queuedata;
	unsigned int noio;

	/*
	 * Memory allocated while serving this request must not recurse into
	 * I/O, which could wait on this very device.
	 */
	noio = memalloc_noio_save();
	if (op_is_write(req_op(rq)) && vdisk_dev_read_only(vd) &&
	    req_op(rq) != REQ_OP_FLUSH)
		vdisk_rq_done(rq, -EROFS);
	else
		vd->image.ops->queue(vd, rq);
	memalloc_noio_restore(noio);
}

static blk_status_t vdisk_queue_rq(struct blk_mq_hw_ctx *hctx,
				   const struct blk_mq_queue_data *bd)
{
	struct request *rq = bd->rq;
	struct vdisk_io *cmd = blk_mq_rq_to_pdu(rq);

	blk_mq_start_request(rq);
	queue_work(vdisk_io_wq, &cmd->work);
	return BLK_STS_OK;
}

static void vdisk_complete_rq(struct request *rq)
{
	struct vdisk_io *cmd = blk_mq_rq_to_pdu(rq);
	unsigned int bytes = blk_rq_bytes(rq);
	long ret = cmd->ret;
	struct bio *bio;

	kfree(cmd->bvec);
	cmd->bvec = NULL;

	if (ret < 0) {
		blk_mq_end_request(rq, errno_to_blk_status(ret));
		return;
	}
	if (ret >= bytes || (req_op(rq) != REQ_OP_READ &&
			     req_op(rq) != REQ_OP_WRITE)) {
		blk_mq_end_request(rq, BLK_STS_OK);
		return;
	}
	if (req_op(rq) == REQ_OP_READ) {
		/*
		 * Short read: the device reaches past the end of the file
		 * (it shrank after attach).  Like a sparse hole, the missing
		 * part reads as zeros.
		 */
		blk_update_request(rq, BLK_STS_OK, ret);
		for (bio = rq->bio; bio; bio = bio->bi_next)
			zero_fill_bio(bio);
		blk_mq_end_request(rq, BLK_STS_OK);
		return;
	}
	/*
	 * Short write: retire what was written and retry the rest, which
	 * either makes progress or returns the real error (ENOSPC, EIO).
	 */
	if (!ret) {
		blk_mq_end_request(rq, BLK_STS_IOERR);
		return;
	}
	blk_update_request(rq, BLK_STS_OK, ret);
	blk_mq_requeue_request(rq, true);
}

static int vdisk_init_request(struct blk_mq_tag_set *set, struct request *rq,
			      unsigned int hctx_idx, unsigned int numa_node)
{
	struct vdisk_io *cmd = blk_mq_rq_to_pdu(rq);

	INIT_WORK(&cmd->work, vdisk_io_work);
	return 0;
}

const struct blk_mq_ops vdisk_mq_ops = {
	.queue_rq	= vdisk_queue_rq,
	.complete	= vdisk_complete_rq,
	.init_request	= vdisk_init_request,
};

int vdisk_rq_init(void)
{
	vdisk_io_wq = alloc_workqueue("vdisk_io", WQ_UNBOUND | WQ_MEM_RECLAIM |
				      WQ_FREEZABLE, 0);
	return vdisk_io_wq ? 0 : -ENOMEM;
}

void vdisk_rq_exit(void)
{
	destroy_workqueue(vdisk_io_wq);
}
