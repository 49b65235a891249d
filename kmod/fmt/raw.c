// SPDX-License-Identifier: GPL-2.0
/*
 * Raw images: device sector S is byte offset + S * 512 of the file, up to
 * sizelimit.  The I/O itself is the generic file path in rq.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

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

static void vdisk_raw_queue(struct vdisk_device *vd, struct request *rq)
{
	struct vdisk_image *img = &vd->image;

	vdisk_rq_file_io(rq, img->file,
			 img->offset + ((u64)blk_rq_pos(rq) << SECTOR_SHIFT),
			 vd->dio_align);
}

static bool vdisk_raw_queue_nowait(struct vdisk_device *vd,
				   struct request *rq)
{
	struct vdisk_image *img = &vd->image;

	return vdisk_rq_try_nowait(rq, img->file,
				   img->offset + ((u64)blk_rq_pos(rq) << SECTOR_SHIFT),
				   vd->dio_align);
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
