/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Request execution for format backends.
 *
 * A format's ->queue() carries out one request.  Flush, discard and
 * write-zeroes of a whole request against one file go through
 * vdisk_rq_file_io().  Reads and writes are described as a sequence of
 * extents, in order, covering the request's data exactly:
 *
 *	vdisk_rq_start(rq);
 *	for each extent:
 *		vdisk_rq_file(rq, file, pos, len, align)  data at pos of file
 *		vdisk_rq_zero(rq, len)              zeros (reads only)
 *		vdisk_rq_copy(rq, buf, len)         bytes from buf (reads only)
 *		vdisk_rq_file_sync(rq, file, pos, len, align)  like
 *			vdisk_rq_file, but done before it returns (a format
 *			that must act after the data is written)
 *		vdisk_rq_file_then(rq, file, pos, len, align, done, ctx)
 *			like vdisk_rq_file, then done(ctx, err) from any
 *			context once the data is written (or failed); the
 *			extent counts as in flight until done's owner calls
 *			vdisk_rq_finish(rq, err) (from vdisk_rq_queue_done()
 *			work, say)
 *	vdisk_rq_finish(rq, err);
 *
 * In cache=none mode a file extent is direct I/O when @dio_align (the
 * file's direct I/O alignment, 0 for none) divides its offset and length,
 * and buffered otherwise: a backing layer may live where direct I/O is
 * impossible.  Direct extents run asynchronously, so the extents of one
 * request are in flight together; the request completes when the last one
 * does.  After an error the remaining extents may be skipped: finish with
 * the error.  A request with no extents at all ends with vdisk_rq_end().
 */
#ifndef VDISK_RQ_H
#define VDISK_RQ_H

#include <linux/blk-mq.h>
#include <linux/fs.h>
#include <linux/uio.h>
#include <linux/workqueue.h>

struct vdisk_device;
struct vdisk_io;

/* One file I/O of a request. */
struct vdisk_sub {
	struct kiocb iocb;
	struct iov_iter iter;		/* what is left to transfer */
	loff_t pos;			/* file offset of @iter's start */
	struct vdisk_io *io;
	struct work_struct retry_work;	/* resubmits a short or refused I/O */
	atomic_t ref;			/* submitter + completion */
	int error;			/* this extent's first error */
	bool retry;			/* the last reference resubmits */
	bool started;			/* a write holds file system access */
	bool embedded;			/* vdisk_io.sub, not from the mempool */
	void (*done)(void *ctx, int err);	/* vdisk_rq_file_then() */
	void *done_ctx;
};

/* Per-request state (the blk-mq pdu). */
struct vdisk_io {
	struct work_struct work;
	struct list_head node;		/* on its hw queue's batch list */
	struct iov_iter iter;		/* request data not yet handed out */
	struct bio_vec *bvec;		/* kmalloc'ed for multi-bio requests */
	atomic_t pending;		/* the submitter + file I/Os in flight */
	int error;			/* first error, or 0 */
	bool sub_used;			/* @sub was handed out */
	bool nowait;			/* issuing inline from queue_rq */
	bool punted;			/* an inline I/O would have blocked */
	bool batched;			/* issued by the batch worker */
	unsigned long fmt_token;	/* the format's, for ->end_request */
	struct vdisk_sub sub;		/* the first file I/O allocates nothing */
};

int vdisk_rq_start(struct request *rq);
bool vdisk_rq_try_nowait(struct request *rq, struct file *file, loff_t pos,
			 u32 dio_align);
void vdisk_rq_file(struct request *rq, struct file *file, loff_t pos,
		   size_t len, u32 dio_align);
void vdisk_rq_zero(struct request *rq, size_t len);
void vdisk_rq_copy(struct request *rq, const void *buf, size_t len);
int vdisk_rq_file_sync(struct request *rq, struct file *file, loff_t pos,
		       size_t len, u32 dio_align);
/*
 * The I/O of vdisk_rq_file_sync() from @iter instead of the request's
 * pages (data a format copied to check it), with the request's mode,
 * priority and FUA; outside the vdisk_rq_start() sequence.
 */
int vdisk_rq_iter_sync(struct request *rq, struct file *file, loff_t pos,
		       struct iov_iter *iter, u32 dio_align);
void vdisk_rq_file_then(struct request *rq, struct file *file, loff_t pos,
			size_t len, u32 dio_align,
			void (*done)(void *ctx, int err), void *ctx);
void vdisk_rq_queue_done(struct work_struct *work);
void vdisk_rq_finish(struct request *rq, int err);
void vdisk_rq_end(struct request *rq, int err);

/*
 * Carry out @rq against @file with the device's first sector at byte @pos
 * of the file: any op, as one extent.
 */
void vdisk_rq_file_io(struct request *rq, struct file *file, loff_t pos,
		      u32 dio_align);

#endif /* VDISK_RQ_H */
