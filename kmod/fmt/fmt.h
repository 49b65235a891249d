/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Image format backends.  One ops table per format (the zram/zcomp model):
 * the device core knows nothing about any format's layout, and a format
 * knows nothing about gendisks or netlink.
 */
#ifndef VDISK_FMT_H
#define VDISK_FMT_H

#include <linux/fs.h>
#include <linux/netlink.h>
#include <linux/types.h>
#include <uapi/linux/vdisk.h>

struct request;
struct vdisk_config;
struct vdisk_device;
struct vdisk_format_ops;

/*
 * One layer of a device: an open image file and its format state.  The
 * device owns the top layer; a format with backing layers links them
 * through @backing (nearest first) and frees them in ->release().
 */
struct vdisk_image {
	struct file *file;		/* our own reference (fget) */
	char *path;			/* display only; may be NULL */
	const struct vdisk_format_ops *ops;
	void *priv;			/* format private state */
	u64 offset;			/* raw: first byte of the disk */
	u64 sizelimit;			/* raw: 0 = to the end of the file */
	u64 size;			/* bytes exposed, sector aligned */
	bool writable;			/* the file was opened for writing */
	/*
	 * Attached as "auto" and found raw: a write must not give the image
	 * another format's magic, or the next attach would read a header the
	 * guest wrote, and open the backing file it names (raw.c).
	 */
	bool probed_raw;
	struct vdisk_image *backing;	/* next layer down, or NULL */
	const char *snapshot;		/* attached snapshot, or NULL */
	u64 cache_size;			/* metadata cache budget in bytes */
	u32 discard_granularity;	/* 0: the file's block size */
	/*
	 * Direct I/O on the top layer's file, set before the format's open:
	 * the offset alignment it takes (0: none), whether that was assumed
	 * rather than reported (vdisk_file_dio_align()), and the buffer
	 * alignment the device asks of its users for its whole life
	 * (vdisk_image_open()).
	 */
	u32 dio_align;
	bool dio_guessed;
	u32 buf_align;
	/*
	 * Set by the format's open: writes go through the page cache even in
	 * cache=none (qcow2 granules under a page, see qcow2.c), so the
	 * request path queues them as it does in write-back mode.  (Also set
	 * for a file without direct I/O, where cache=none is refused anyway.)
	 */
	bool buffered_writes;
};

#define VDISK_MAGIC_MAX	16

/**
 * struct vdisk_format_ops - one image format
 * @format: the uapi format number
 * @name: as shown by sysfs, list and info
 * @magic: bytes every image of this format starts with (none for raw)
 * @magic_len: length of @magic, at most %VDISK_MAGIC_MAX
 * @open: parse and validate the image (and the backing layers and snapshot
 *	in @cfg, if the format has them), set @img->size; every failure sets
 *	an extack message and leaves nothing allocated.
 * @release: free what @open allocated, backing layers included (not the
 *	top layer's file and path, which the device owns).
 * @refresh_size: recompute @img->size after the file changed size.
 * @queue: carry out one read, write, flush, discard or write-zeroes request
 *	in process context (a worker with a noio allocation scope), completing
 *	it through rq.h.
 * @queue_nowait: optional fast path, called from queue_rq (which must not
 *	block): issue the request without blocking and return true, or do
 *	nothing and return false to have ->queue run it in a worker.  Never
 *	called for a write to a read-only device.
 * @end_request: optional; called as each request completes, possibly in
 *	interrupt context, before the block layer sees it.
 * @resize: optional; change the virtual size to @size bytes (a multiple of
 *	the sector size) in the image itself; the device core then updates
 *	the capacity.  Formats without it take their size from the file.
 * @flush_failed: optional; the device core's own fsync of the top file
 *	failed with @err (a cache-mode change, queue frozen): what the format
 *	wrote since its last flush may not be on disk.
 */
struct vdisk_format_ops {
	enum vdisk_format format;
	const char *name;
	const u8 *magic;
	unsigned int magic_len;
	int (*open)(struct vdisk_image *img, const struct vdisk_config *cfg,
		    struct netlink_ext_ack *extack);
	void (*release)(struct vdisk_image *img);
	int (*refresh_size)(struct vdisk_image *img, u32 sector_size,
			    struct netlink_ext_ack *extack);
	void (*queue)(struct vdisk_device *vd, struct request *rq);
	bool (*queue_nowait)(struct vdisk_device *vd, struct request *rq);
	void (*end_request)(struct vdisk_device *vd, struct request *rq);
	int (*resize)(struct vdisk_image *img, u64 size,
		      struct netlink_ext_ack *extack);
	void (*flush_failed)(struct vdisk_image *img, int err);
};

extern const struct vdisk_format_ops vdisk_raw_ops;
extern const struct vdisk_format_ops vdisk_qcow2_ops;

const struct vdisk_format_ops *vdisk_format_get(enum vdisk_format format);
const char *vdisk_format_name(enum vdisk_format format);
const struct vdisk_format_ops *vdisk_format_match(const u8 *head, size_t len);
const struct vdisk_format_ops *vdisk_format_probe(struct file *file,
						  u64 offset,
						  struct netlink_ext_ack *extack);

int vdisk_file_check(struct file *file, const char *what,
		     struct netlink_ext_ack *extack);
ssize_t vdisk_file_kvec_rw(struct file *file, void *buf, size_t len, u64 off,
			   bool write);
u32 vdisk_file_dio_align(struct file *file, u32 *mem_align, bool *guessed);
int vdisk_file_fsync(struct file *file, int datasync);
void vdisk_file_drop_clean_pages(struct file *file);

/*
 * A synchronous kiocb on @file at @pos, buffered unless the caller sets
 * IOCB_DIRECT.  It leaves out the descriptor's O_APPEND, so that a write
 * lands where it is aimed, as the asynchronous path's kiocbs (built from
 * scratch) do: attach refuses writable O_APPEND descriptors, and this
 * covers an fcntl() that sets it later on the shared file.
 */
static inline void vdisk_sync_kiocb(struct kiocb *kiocb, struct file *file,
				    loff_t pos)
{
	init_sync_kiocb(kiocb, file);
	kiocb->ki_flags &= ~(IOCB_DIRECT | IOCB_APPEND);
	kiocb->ki_pos = pos;
}

/* Bytes in the file or block device behind @file. */
static inline u64 vdisk_file_size(struct file *file)
{
	return i_size_read(file->f_mapping->host);
}

#endif /* VDISK_FMT_H */
