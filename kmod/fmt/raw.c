// SPDX-License-Identifier: GPL-2.0
/*
 * Raw images: device sector S is byte offset + S * 512 of the file, up to
 * sizelimit.  The I/O itself is the generic file path in rq.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/highmem.h>
#include <linux/slab.h>

#include "../vdisk.h"

static int vdisk_raw_compute_size(struct vdisk_image *img, u32 sector_size,
				  struct netlink_ext_ack *extack)
{
	u64 fsize = vdisk_file_size(img->file);
	u64 size;

	if (img->offset >= fsize) {
		vdisk_nl_err(extack, "offset %llu is not below the image size %llu",
			     img->offset, fsize);
		return -EINVAL;
	}
	size = fsize - img->offset;
	if (img->sizelimit && img->sizelimit < size)
		size = img->sizelimit;
	size = round_down(size, sector_size);
	if (!size) {
		vdisk_nl_err(extack, "image is smaller than one %u-byte sector",
			     sector_size);
		return -EINVAL;
	}
	img->size = size;
	return 0;
}

static int vdisk_raw_open(struct vdisk_image *img,
			  const struct vdisk_config *cfg,
			  struct netlink_ext_ack *extack)
{
	u32 sector_size = cfg->sector_size;

	if (cfg->nr_backing || cfg->snapshot || cfg->cache_size) {
		vdisk_nl_err(extack, "raw images have no backing chain, snapshots or metadata cache");
		return -EINVAL;
	}
	if (img->sizelimit && img->sizelimit < sector_size) {
		vdisk_nl_err(extack, "sizelimit %llu is smaller than one %u-byte sector",
			     img->sizelimit, sector_size);
		return -EINVAL;
	}
	return vdisk_raw_compute_size(img, sector_size, extack);
}

static void vdisk_raw_release(struct vdisk_image *img)
{
}

/*
 * A write to the first sector of a raw image whose format was detected
 * (probed_raw) must not put another format's magic there: the next attach
 * with format "auto" (vdiskctl's and vdisktab's default) would take the
 * guest's bytes for a header, and open the backing file they name
 * (/etc/shadow) as a layer of the guest's disk.  That is QEMU's
 * CVE-2008-2004, and vdisk refuses such a write as QEMU does; an explicit
 * format allows it.
 */
static bool vdisk_raw_guarded(struct vdisk_device *vd, struct request *rq)
{
	return vd->image.probed_raw && req_op(rq) == REQ_OP_WRITE &&
	       !blk_rq_pos(rq);
}

/*
 * Such a write is checked on a copy of its data, and the copy is written:
 * the guest's pages may change between a check and the write (a hypervisor
 * hands them through), as QEMU's raw driver copies for the same reason.
 * Synchronous, in the worker: writes to the first sector are few
 * (partition tables, boot sectors, an XFS superblock).  The copy lives in
 * pages of its own so that it can be written directly like every other
 * write in cache=none: written buffered, it read the rest of its page from
 * the disk and wrote it back later, undoing a direct write to the next
 * sectors that landed in between (on a block device, which does not keep
 * the two apart; test_pageshare_01 lost 19 of 3,071 such writes).
 */
static void vdisk_raw_write_checked(struct vdisk_device *vd,
				    struct request *rq)
{
	struct vdisk_image *img = &vd->image;
	size_t len = blk_rq_bytes(rq);
	unsigned int nr = DIV_ROUND_UP(len, PAGE_SIZE), i;
	const struct vdisk_format_ops *ops;
	struct req_iterator it;
	struct bio_vec bv, *copy;
	struct iov_iter iter;
	void *head;
	int ret = -ENOMEM;

	copy = kcalloc(nr, sizeof(*copy), GFP_NOIO);
	if (!copy)
		goto out;
	for (i = 0; i < nr; i++) {
		struct page *page = alloc_page(GFP_NOIO);

		if (!page)
			goto out;
		bvec_set_page(&copy[i], page,
			      min_t(size_t, PAGE_SIZE, len - i * PAGE_SIZE), 0);
	}
	iov_iter_bvec(&iter, ITER_DEST, copy, nr, len);
	rq_for_each_segment(bv, rq, it)
		copy_page_to_iter(bv.bv_page, bv.bv_offset, bv.bv_len, &iter);

	head = kmap_local_page(copy[0].bv_page);
	ops = vdisk_format_match(head, min_t(size_t, len, VDISK_MAGIC_MAX));
	kunmap_local(head);
	if (ops != &vdisk_raw_ops) {
		pr_warn_ratelimited("%s: refused a write that would make the raw image read as %s at the next attach; attach it with an explicit format (raw) to allow it\n",
				    vd->disk->disk_name, ops->name);
		ret = -EIO;
		goto out;
	}
	iov_iter_bvec(&iter, ITER_SOURCE, copy, nr, len);
	ret = vdisk_rq_iter_sync(rq, img->file, img->offset, &iter,
				 img->dio_align);
out:
	if (copy) {
		for (i = 0; i < nr && copy[i].bv_page; i++)
			__free_page(copy[i].bv_page);
		kfree(copy);
	}
	vdisk_rq_end(rq, ret);
}

static void vdisk_raw_queue(struct vdisk_device *vd, struct request *rq)
{
	struct vdisk_image *img = &vd->image;

	if (unlikely(vdisk_raw_guarded(vd, rq))) {
		vdisk_raw_write_checked(vd, rq);
		return;
	}
	vdisk_rq_file_io(rq, img->file,
			 img->offset + ((u64)blk_rq_pos(rq) << SECTOR_SHIFT),
			 img->dio_align);
}

static bool vdisk_raw_queue_nowait(struct vdisk_device *vd,
				   struct request *rq)
{
	struct vdisk_image *img = &vd->image;

	if (unlikely(vdisk_raw_guarded(vd, rq)))
		return false;
	return vdisk_rq_try_nowait(rq, img->file,
				   img->offset + ((u64)blk_rq_pos(rq) << SECTOR_SHIFT),
				   img->dio_align);
}

const struct vdisk_format_ops vdisk_raw_ops = {
	.format		= VDISK_FORMAT_RAW,
	.name		= "raw",
	.open		= vdisk_raw_open,
	.release	= vdisk_raw_release,
	.refresh_size	= vdisk_raw_compute_size,
	.queue		= vdisk_raw_queue,
	.queue_nowait	= vdisk_raw_queue_nowait,
};
