// SPDX-License-Identifier: GPL-2.0
/* The table of image formats the module knows. */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fadvise.h>
#include <linux/pagemap.h>
#include <linux/stat.h>

#include "../vdisk.h"

static const struct vdisk_format_ops *const vdisk_formats[] = {
	[VDISK_FORMAT_RAW]	= &vdisk_raw_ops,
	[VDISK_FORMAT_QCOW2]	= &vdisk_qcow2_ops,
};

static const char *const vdisk_format_names[] = {
	[VDISK_FORMAT_AUTO]	= "auto",
	[VDISK_FORMAT_RAW]	= "raw",
	[VDISK_FORMAT_QCOW2]	= "qcow2",
};

const struct vdisk_format_ops *vdisk_format_get(enum vdisk_format format)
{
	if (format >= ARRAY_SIZE(vdisk_formats))
		return NULL;
	return vdisk_formats[format];
}

/* The format whose magic @head (@len bytes of an image's start) carries. */
const struct vdisk_format_ops *vdisk_format_match(const u8 *head, size_t len)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(vdisk_formats); i++) {
		const struct vdisk_format_ops *ops = vdisk_formats[i];

		if (ops && ops->magic_len && len >= ops->magic_len &&
		    !memcmp(head, ops->magic, ops->magic_len))
			return ops;
	}
	return &vdisk_raw_ops;
}

/*
 * Pick the format of the image at @offset of @file: the first format whose
 * magic matches, else raw.
 */
const struct vdisk_format_ops *vdisk_format_probe(struct file *file,
						  u64 offset,
						  struct netlink_ext_ack *extack)
{
	u8 head[VDISK_MAGIC_MAX] = { };
	ssize_t n;

	/* Buffered whatever the descriptor says: 16 bytes cannot go direct. */
	n = vdisk_file_kvec_rw(file, head, sizeof(head), offset, false);
	if (n < 0) {
		vdisk_nl_err(extack, "cannot read the image to probe its format (%zd)",
			     n);
		return ERR_PTR(n);
	}
	return vdisk_format_match(head, n);
}

const char *vdisk_format_name(enum vdisk_format format)
{
	if (format >= ARRAY_SIZE(vdisk_format_names))
		return "unknown";
	return vdisk_format_names[format];
}

/* ---------------------------------------------------------------------- */
/* Checks every layer's file goes through                                  */

/* A usable image file: @what ("image", "backing layer 2") names it. */
int vdisk_file_check(struct file *file, const char *what,
		     struct netlink_ext_ack *extack)
{
	umode_t mode = file_inode(file)->i_mode;

	if (S_ISDIR(mode)) {
		vdisk_nl_err(extack, "%s is a directory", what);
		return -EISDIR;
	}
	if (!S_ISREG(mode) && !S_ISBLK(mode)) {
		vdisk_nl_err(extack, "%s is not a regular file or block device", what);
		return -EINVAL;
	}
	if (!(file->f_mode & FMODE_READ) || !file->f_op->read_iter) {
		vdisk_nl_err(extack, "%s descriptor is not open for reading", what);
		return -EBADF;
	}
	/* Writes through it would all land at the end of the file. */
	if ((file->f_mode & FMODE_WRITE) && (file->f_flags & O_APPEND)) {
		vdisk_nl_err(extack, "%s descriptor is open for appending (O_APPEND); open it without",
			     what);
		return -EINVAL;
	}
	return 0;
}

/*
 * Read or write @len bytes at @off of @file from or into @buf, buffered
 * whatever the descriptor's flags (O_DIRECT would refuse small, unaligned
 * pieces): the bytes done, fewer only when a read reaches the end of the
 * file, or -errno.
 */
ssize_t vdisk_file_kvec_rw(struct file *file, void *buf, size_t len, u64 off,
			   bool write)
{
	size_t done = 0;

	while (done < len) {
		struct kvec kv = { .iov_base = buf + done, .iov_len = len - done };
		struct iov_iter iter;
		struct kiocb kiocb;
		ssize_t ret;

		iov_iter_kvec(&iter, write ? ITER_SOURCE : ITER_DEST, &kv, 1,
			      kv.iov_len);
		vdisk_sync_kiocb(&kiocb, file, off + done);
		if (write)
			ret = vfs_iocb_iter_write(file, &kiocb, &iter);
		else
			ret = vfs_iocb_iter_read(file, &kiocb, &iter);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return write ? -EIO : done;
		done += ret;
	}
	return done;
}

/*
 * Direct I/O offset alignment of @file, or 0 when it cannot do direct I/O
 * at all.  @mem_align receives the buffer alignment it needs.
 *
 * A file system that neither reports its alignment (STATX_DIOALIGN) nor
 * sits on one block device to take it from (btrfs, which spans several;
 * NFS, 9p, FUSE) may still take direct I/O: then, like loop, assume the
 * 512-byte sector and set *@guessed (when not NULL).  btrfs itself falls
 * back to buffered I/O for a request it cannot take directly.
 */
u32 vdisk_file_dio_align(struct file *file, u32 *mem_align, bool *guessed)
{
	struct inode *inode = file->f_mapping->host;
	struct block_device *bdev = NULL;
	struct kstat st = { };

	*mem_align = SECTOR_SIZE;
	if (guessed)
		*guessed = false;
	if (!(file->f_mode & FMODE_CAN_ODIRECT))
		return 0;
	if (!vfs_getattr(&file->f_path, &st, STATX_DIOALIGN,
			 AT_STATX_SYNC_AS_STAT) &&
	    (st.result_mask & STATX_DIOALIGN)) {
		if (st.dio_mem_align)
			*mem_align = st.dio_mem_align;
		return st.dio_offset_align;
	}
	if (S_ISBLK(inode->i_mode))
		bdev = I_BDEV(inode);
	else
		bdev = inode->i_sb->s_bdev;
	if (bdev) {
		/*
		 * As 6.12's vfs_getattr() of a block device reports it (6.1's
		 * statx(2) adds it in the syscall layer, vfs_getattr() not).
		 */
		*mem_align = max_t(u32, bdev_dma_alignment(bdev) + 1, SECTOR_SIZE);
		return bdev_logical_block_size(bdev);
	}
	if (guessed)
		*guessed = true;
	return SECTOR_SIZE;
}

/*
 * fsync @file; on failure, drop its clean cached pages.  A write-back that
 * fails leaves the pages it could not write in the page cache, clean and
 * up to date: every buffered reader then sees data that is not on disk
 * (qemu-img check repairing a qcow2 image whose L2 table write failed
 * judged an L2 table the disk did not have, and the next attach, which
 * drops the cache, lost the clusters it mapped), until the pages are
 * evicted and the disk's older contents appear.  Dropped, every later
 * reader sees what the disk holds.
 */
int vdisk_file_fsync(struct file *file, int datasync)
{
	int ret = vfs_fsync(file, datasync);

	if (ret)
		vdisk_file_drop_clean_pages(file);
	return ret;
}

/*
 * Drop @file's clean, unused cached pages, as POSIX_FADV_DONTNEED does.
 * invalidate_mapping_pages() alone skips a page that still sits in a CPU's
 * LRU add batch, which holds a reference: a page the write-back of a
 * failed fsync had just created (a new L2 table) stayed cached, and
 * step 4 of test_fault_02 failed 3 runs in 100 on 6.12.  The fadvise path
 * drains those batches, on every CPU, and tries again.  Pages mapped or
 * locked by someone else still stay.
 */
void vdisk_file_drop_clean_pages(struct file *file)
{
	vfs_fadvise(file, 0, 0, POSIX_FADV_DONTNEED);
}
