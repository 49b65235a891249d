// SPDX-License-Identifier: GPL-2.0
/*
 * Device lifecycle: index allocation, the gendisk and tag set, attach,
 * detach (immediate, lazy and autoclear), capacity and mode changes.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/stat.h>

#include "compat.h"
#include "vdisk.h"

/*
 * Protects vdisk_index_idr, device names, pins, and every state transition
 * except BOUND -> RUNDOWN.  Never held across a wait on an image's disk:
 * attach and detach do that on a device no lookup sees (see
 * vdisk_dev_add()), SET on a pinned device under its own lock
 * (vdisk_dev_pin()), so one hung disk holds up only its own device.
 */
DEFINE_MUTEX(vdisk_devices_lock);
static DEFINE_IDR(vdisk_index_idr);
static int vdisk_major;

/*
 * Runs the deferred detach of autoclear devices, flushed before module
 * exit removes what is left.  Not ordered: a detach waiting on a hung
 * disk must not hold up the others.
 */
static struct workqueue_struct *vdisk_ctl_wq;

/* Largest I/O we accept in one request: big enough for 1 MiB streams. */
#define VDISK_MAX_HW_SECTORS	(SZ_4M >> SECTOR_SHIFT)
#define VDISK_MAX_SEGMENTS	1024
#define VDISK_QUEUE_DEPTH	128

static int vdisk_open(VDISK_BDOPS_OPEN_ARGS)
{
	struct vdisk_device *vd = VDISK_BDOPS_OPEN_DISK->private_data;

	/*
	 * open_mutex is held: the state cannot leave BOUND under us.  Opens
	 * during CREATING are add_disk()'s partition scan, or (rarely) come
	 * from whoever saw the disk's uevent before vdisk_dev_bind(); they
	 * do not arm autoclear.
	 */
	switch (READ_ONCE(vd->state)) {
	case VDISK_STATE_CREATING:
		return 0;
	case VDISK_STATE_BOUND:
		vd->opened = true;
		return 0;
	default:
		return -ENXIO;
	}
}

static void vdisk_release(VDISK_BDOPS_RELEASE_ARGS)
{
	struct vdisk_device *vd = disk->private_data;

	if (disk_openers(disk) > 0)
		return;
	/*
	 * Last close of an autoclear device.  We hold open_mutex, which
	 * del_gendisk() takes, so the detach itself runs from a work item;
	 * RUNDOWN already refuses new opens.
	 */
	if (READ_ONCE(vd->state) == VDISK_STATE_BOUND && vd->opened &&
	    (READ_ONCE(vd->flags) & VDISK_FLAG_AUTOCLEAR)) {
		WRITE_ONCE(vd->state, VDISK_STATE_RUNDOWN);
		queue_work(vdisk_ctl_wq, &vd->remove_work);
	}
}

static void vdisk_free_disk(struct gendisk *disk)
{
	struct vdisk_device *vd = disk->private_data;

	mutex_destroy(&vd->lock);
	kfree(vd);
}

static const struct block_device_operations vdisk_fops = {
	.owner		= THIS_MODULE,
	.open		= vdisk_open,
	.release	= vdisk_release,
	.free_disk	= vdisk_free_disk,
};

/* ---------------------------------------------------------------------- */
/* Backing file properties                                                */

/* Block size of the backing storage: the hint for physical_block_size. */
static u32 vdisk_file_block_size(struct file *file)
{
	struct inode *inode = file->f_mapping->host;

	if (S_ISBLK(inode->i_mode))
		return bdev_physical_block_size(I_BDEV(inode));
	return i_blocksize(inode);
}

/* Can the device's sectors, from its offset, go to the file as direct I/O? */
static bool vdisk_dio_possible(struct vdisk_device *vd)
{
	u32 align = vd->image.dio_align;

	return align && !(vd->sector_size % align) &&
	       !(vd->image.offset % align);
}

/*
 * The buffer alignment the device asks of its users, for its whole life
 * whatever its cache mode (a request queued under one mode may run under
 * the next): what the file system wants of direct I/O buffers and, where
 * direct I/O is possible at all, its offset alignment too.  The file
 * system takes only pieces of a request that are multiples of that
 * alignment (iomap: bdev_iter_is_aligned()), and pieces end at page
 * boundaries, so buffers aligned to it give such pieces: a 4 KiB-sector
 * device on a 4 KiB-sector disk took a buffer 512 bytes into a page and
 * failed with EIO on 6.1.
 */
static u32 vdisk_buf_align(struct vdisk_device *vd, u32 mem_align)
{
	u32 buf = max_t(u32, mem_align, SECTOR_SIZE);

	if (vdisk_dio_possible(vd))
		buf = max(buf, vd->image.dio_align);
	return buf;
}

/*
 * Discard and write-zeroes, which go to the file as fallocate(), for a
 * writable device on a file that has it.  Where they are not offered the
 * block layer writes zeros itself (BLKZEROOUT) and refuses discards
 * (EOPNOTSUPP) before they reach vdisk.
 */
static void vdisk_queue_cfg_zeroing(struct vdisk_device *vd,
				    struct vdisk_queue_cfg *cfg, u32 bsize)
{
	struct file *file = vd->image.file;
	struct inode *inode = file->f_mapping->host;
	struct block_device *bdev = S_ISBLK(inode->i_mode) ?
				    I_BDEV(inode) : NULL;
	/* 6.1 splits at the maximum itself: keep it whole sectors. */
	u32 max = round_down(UINT_MAX >> SECTOR_SHIFT,
			     vd->sector_size >> SECTOR_SHIFT);
	bool discard = true;

	if (vdisk_dev_read_only(vd) || !file->f_op->fallocate)
		return;
	if (bdev && vd->image.ops->format == VDISK_FORMAT_RAW) {
		u32 lbs = bdev_logical_block_size(bdev);

		/*
		 * A block device takes only ranges aligned to its logical
		 * block size (EINVAL): a device of smaller sectors, or an
		 * offset inside a block, would send it others.
		 */
		if (vd->sector_size % lbs || vd->image.offset % lbs)
			return;
		/*
		 * A hole punched in a block device is a write-zeroes that
		 * may unmap, with no fallback: only a disk that takes
		 * write-zeroes can discard under a raw device (as under
		 * loop).
		 */
		discard = bdev_write_zeroes_sectors(bdev);
	} else if (bdev) {
		/*
		 * qcow2 zeroes and frees in its metadata and in whole
		 * clusters; its punch of the file is advisory.
		 */
		discard = bdev_max_discard_sectors(bdev);
	}

	cfg->max_write_zeroes_sectors = max;
	if (!discard)
		return;
	cfg->max_discard_sectors = max;
	/* qcow2 frees whole clusters only. */
	cfg->discard_granularity = vd->image.discard_granularity ?:
				   max_t(u32, bsize, vd->sector_size);
}

static void vdisk_queue_cfg(struct vdisk_device *vd,
			    struct vdisk_queue_cfg *cfg)
{
	struct file *file = vd->image.file;
	u32 bsize = vdisk_file_block_size(file);

	memset(cfg, 0, sizeof(*cfg));
	cfg->logical_block_size = vd->sector_size;
	/* A hint only: worthless when the disk starts inside a block. */
	if (bsize > vd->sector_size && is_power_of_2(bsize) &&
	    bsize <= SZ_64K && !(vd->image.offset % bsize))
		cfg->physical_block_size = bsize;
	else
		cfg->physical_block_size = vd->sector_size;
	cfg->io_min = cfg->physical_block_size;
	cfg->max_hw_sectors = VDISK_MAX_HW_SECTORS;
	cfg->max_segments = VDISK_MAX_SEGMENTS;
	cfg->dma_alignment = vd->image.buf_align - 1;

	vdisk_queue_cfg_zeroing(vd, cfg, bsize);

	/*
	 * Where direct I/O may go to a file system that did not say it takes
	 * it (btrfs), keep pages still while they are written: 6.1's btrfs
	 * sums a direct write's data, then writes it, and a page changed in
	 * between reads back as a checksum error.  Set for the device's
	 * life, not the cache mode's, because a file system mounted on it
	 * takes the setting only at mount, and the cache mode can change.
	 */
	cfg->stable_writes = vd->image.dio_guessed;

	/* Write-through syncs every write itself: no cache to flush. */
	cfg->write_cache = vd->cache != VDISK_CACHE_WRITETHROUGH;
	cfg->fua = cfg->write_cache;
}

/*
 * Entering cache=none: write back and drop the image's page cache.  Direct
 * I/O would make it stale anyway, and a cached page in a range makes a
 * non-blocking direct write refuse, which would push every request off the
 * inline fast path.  Best effort: pages in use stay.
 */
static void vdisk_drop_page_cache(struct vdisk_device *vd)
{
	struct address_space *mapping = vd->image.file->f_mapping;

	if (vd->cache != VDISK_CACHE_NONE)
		return;
	filemap_write_and_wait(mapping);
	vdisk_file_drop_clean_pages(vd->image.file);
}

static int vdisk_pick_cache(struct vdisk_device *vd, enum vdisk_cache want,
			    enum vdisk_cache *mode,
			    struct netlink_ext_ack *extack)
{
	bool dio = vdisk_dio_possible(vd);

	/* Direct I/O by default only where the file system vouches for it. */
	if (want == VDISK_CACHE_DEFAULT) {
		*mode = dio && !vd->image.dio_guessed ? VDISK_CACHE_NONE :
						  VDISK_CACHE_WRITEBACK;
		return 0;
	}
	if (want == VDISK_CACHE_NONE && !dio) {
		if (!vd->image.dio_align)
			vdisk_nl_err(extack, "cache=none: backing file does not support direct I/O");
		else
			vdisk_nl_err(extack, "cache=none: offset and sector size must be multiples of %u",
				     vd->image.dio_align);
		return -EINVAL;
	}
	*mode = want;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Attach                                                                 */

static int vdisk_image_open(struct vdisk_device *vd, struct vdisk_config *cfg,
			    struct netlink_ext_ack *extack)
{
	struct vdisk_image *img = &vd->image;
	const struct vdisk_format_ops *ops = NULL;
	u32 mem_align;
	int ret;

	ret = vdisk_file_check(cfg->file, "image", extack);
	if (ret)
		return ret;

	if (cfg->format == VDISK_FORMAT_AUTO) {
		ops = vdisk_format_probe(cfg->file, cfg->offset, extack);
		if (IS_ERR(ops))
			return PTR_ERR(ops);
	} else {
		ops = vdisk_format_get(cfg->format);
		if (!ops) {
			vdisk_nl_err(extack, "format %s is not supported by this module",
				     vdisk_format_name(cfg->format));
			return -EOPNOTSUPP;
		}
	}
	if (cfg->offset && ops->format != VDISK_FORMAT_RAW) {
		vdisk_nl_err(extack, "offset applies to raw images only");
		return -EINVAL;
	}
	if (cfg->sizelimit && ops->format != VDISK_FORMAT_RAW) {
		vdisk_nl_err(extack, "sizelimit applies to raw images only");
		return -EINVAL;
	}

	img->file = get_file(cfg->file);
	img->ops = ops;
	img->probed_raw = cfg->format == VDISK_FORMAT_AUTO &&
			  ops->format == VDISK_FORMAT_RAW;
	img->offset = cfg->offset;
	img->sizelimit = cfg->sizelimit;
	img->writable = (cfg->file->f_mode & FMODE_WRITE) &&
			cfg->file->f_op->write_iter;
	img->dio_align = vdisk_file_dio_align(img->file, &mem_align,
					      &img->dio_guessed);
	img->buf_align = vdisk_buf_align(vd, mem_align);
	if (cfg->path) {
		img->path = kstrdup(cfg->path, GFP_KERNEL);
		if (!img->path) {
			ret = -ENOMEM;
			goto out_fput;
		}
	}
	ret = ops->open(img, cfg, extack);
	if (ret)
		goto out_free_path;
	return 0;

out_free_path:
	kfree(img->path);
	img->path = NULL;
out_fput:
	fput(img->file);
	img->file = NULL;
	return ret;
}

static void vdisk_image_close(struct vdisk_image *img)
{
	img->ops->release(img);
	kfree(img->path);
	img->path = NULL;
	fput(img->file);
	img->file = NULL;
}

static struct vdisk_device *vdisk_find_name(const char *name)
{
	struct vdisk_device *vd;
	int id;

	idr_for_each_entry(&vdisk_index_idr, vd, id)
		if (vd->name[0] && !strcmp(vd->name, name))
			return vd;
	return NULL;
}

static int vdisk_alloc_index(struct vdisk_device *vd, int want,
			     struct netlink_ext_ack *extack)
{
	int start = 0, end = vdisk_max_devices;
	int ret;

	if (want >= 0) {
		if (want >= vdisk_max_devices) {
			vdisk_nl_err(extack, "index %d is not below max_devices (%u)",
				     want, vdisk_max_devices);
			return -EINVAL;
		}
		start = want;
		end = want + 1;
	}
	ret = idr_alloc(&vdisk_index_idr, vd, start, end, GFP_KERNEL);
	if (ret == -ENOSPC) {
		if (want >= 0) {
			vdisk_nl_err(extack, "vdisk%d already exists", want);
			return -EEXIST;
		}
		vdisk_nl_err(extack, "all %u devices are in use (module parameter max_devices)",
			     vdisk_max_devices);
		return -ENOSPC;
	}
	if (ret >= 0)
		vd->index = ret;
	return ret < 0 ? ret : 0;
}

static void vdisk_remove_work(struct work_struct *work);

/*
 * Attach and detach wait on the image's disk (the format's metadata, the
 * partition scan, writing back at close), which can take minutes on a
 * slow or hung one.  They run without vdisk_devices_lock, so that other
 * devices' commands and `vdiskctl list` need not wait: the lock is held
 * only to reserve the index and name (CREATING), to publish the device
 * (BOUND), to take it out of sight (DELETING) and to give the index back.
 * Lookups skip devices that are not BOUND, so nothing else touches a
 * device in between; the name lookup does not, so a name stays taken
 * until its index is free.
 */

/*
 * Counts what a waiting ADD or DEL may be waiting for: an index freed, a
 * device unpinned.  Changed under the lock, which waiters read it under
 * before they check; vdisk_progress_wq is woken at each change.
 */
static unsigned long vdisk_progress;
static DECLARE_WAIT_QUEUE_HEAD(vdisk_progress_wq);

static void vdisk_dev_progress(void)
{
	lockdep_assert_held(&vdisk_devices_lock);
	WRITE_ONCE(vdisk_progress, vdisk_progress + 1);
	wake_up_all(&vdisk_progress_wq);
}

/* The count to wait on, read under the lock before the caller's check. */
static unsigned long vdisk_dev_progress_mark(void)
{
	lockdep_assert_held(&vdisk_devices_lock);
	return vdisk_progress;
}

/* Wait, killably, until something changed since @mark; without the lock. */
static int vdisk_dev_wait_progress(unsigned long mark)
{
	lockdep_assert_not_held(&vdisk_devices_lock);
	if (wait_event_killable(vdisk_progress_wq,
				READ_ONCE(vdisk_progress) != mark))
		return -EINTR;
	return 0;
}

/*
 * SET and DEL wait for the device's own lock (vd->lock) and run their
 * changes under it without vdisk_devices_lock (a SET's fsync or metadata
 * writes wait on the disk), with the device pinned so that it is not
 * freed meanwhile: a removal waits for the pins before it tears down.
 * Taken under vdisk_devices_lock on a BOUND device.
 */
void vdisk_dev_pin(struct vdisk_device *vd)
{
	lockdep_assert_held(&vdisk_devices_lock);
	vd->pins++;
}

void vdisk_dev_unpin(struct vdisk_device *vd)
{
	mutex_lock(&vdisk_devices_lock);
	WRITE_ONCE(vd->pins, vd->pins - 1);
	vdisk_dev_progress();
	mutex_unlock(&vdisk_devices_lock);
}

/* What identifies an image's storage: a file's inode, a block device's. */
static const struct inode *vdisk_file_identity(struct file *file)
{
	return file->f_mapping->host;
}

/*
 * Would @cfg conflict with a device on its way out (detach or autoclear in
 * progress, its index and name still held)?  By index, by name, or by an
 * image file of @cfg's (top or backing) that is that device's top image:
 * it may still be writing the image's tables back, and an open now would
 * read stale ones.  (Its backing layers are only read.)  Lock held.
 */
static bool vdisk_conflicts_leaving(const struct vdisk_config *cfg)
{
	struct vdisk_device *vd;
	unsigned int i;
	int id;

	lockdep_assert_held(&vdisk_devices_lock);
	idr_for_each_entry(&vdisk_index_idr, vd, id) {
		enum vdisk_state state = READ_ONCE(vd->state);

		if (state != VDISK_STATE_RUNDOWN && state != VDISK_STATE_DELETING)
			continue;
		if (vd->index == cfg->index ||
		    vd->image_inode == vdisk_file_identity(cfg->file) ||
		    (cfg->name[0] && !strcmp(vd->name, cfg->name)))
			return true;
		for (i = 0; i < cfg->nr_backing; i++)
			if (vd->image_inode ==
			    vdisk_file_identity(cfg->backing[i].file))
				return true;
	}
	return false;
}

/* A new device in CREATING, holding its index and name; lock held. */
static int vdisk_dev_reserve(struct vdisk_config *cfg,
			     struct vdisk_device **out,
			     struct netlink_ext_ack *extack)
{
	struct vdisk_device *vd;
	int ret;

	lockdep_assert_held(&vdisk_devices_lock);
	if (cfg->name[0] && vdisk_find_name(cfg->name)) {
		vdisk_nl_err(extack, "name \"%s\" is already in use", cfg->name);
		return -EEXIST;
	}
	vd = kzalloc(sizeof(*vd), GFP_KERNEL);
	if (!vd)
		return -ENOMEM;
	mutex_init(&vd->lock);
	INIT_WORK(&vd->remove_work, vdisk_remove_work);
	vd->index = -1;
	vd->image_inode = vdisk_file_identity(cfg->file);
	strscpy(vd->name, cfg->name, sizeof(vd->name));
	vd->sector_size = cfg->sector_size;
	vd->flags = cfg->flags;
	vd->state = VDISK_STATE_CREATING;
	ret = vdisk_alloc_index(vd, cfg->index, extack);
	if (ret) {
		mutex_destroy(&vd->lock);
		kfree(vd);
		return ret;
	}
	*out = vd;
	return 0;
}

/*
 * Reserve a device for @cfg, first waiting (killably) for any device on
 * its way out that it conflicts with.  Called without the lock.
 */
static int vdisk_dev_reserve_wait(struct vdisk_config *cfg,
				  struct vdisk_device **out,
				  struct netlink_ext_ack *extack)
{
	unsigned long mark;
	bool busy;
	int ret = 0;

	for (;;) {
		mutex_lock(&vdisk_devices_lock);
		mark = vdisk_dev_progress_mark();
		busy = vdisk_conflicts_leaving(cfg);
		if (!busy)
			ret = vdisk_dev_reserve(cfg, out, extack);
		mutex_unlock(&vdisk_devices_lock);
		if (!busy)
			return ret;
		ret = vdisk_dev_wait_progress(mark);
		if (ret)
			return ret;
	}
}

/* Give a device's index (and so its name) back, under the lock. */
static void vdisk_dev_unreserve(struct vdisk_device *vd)
{
	lockdep_assert_held(&vdisk_devices_lock);
	idr_remove(&vdisk_index_idr, vd->index);
	vdisk_dev_progress();
}

/*
 * Make a device for @cfg, up to its disk added and scanned, still in
 * CREATING (unseen): the caller publishes it with vdisk_dev_bind().
 * Called without vdisk_devices_lock.
 */
int vdisk_dev_add(struct vdisk_config *cfg, struct vdisk_device **out,
		  struct netlink_ext_ack *extack)
{
	struct vdisk_queue_cfg qcfg;
	struct vdisk_device *vd;
	struct gendisk *disk;
	int ret;

	lockdep_assert_not_held(&vdisk_devices_lock);
	ret = vdisk_dev_reserve_wait(cfg, &vd, extack);
	if (ret)
		return ret;

	ret = vdisk_image_open(vd, cfg, extack);
	if (ret)
		goto out_unreserve;
	if (!vd->image.writable)
		vd->flags |= VDISK_FLAG_READ_ONLY;

	ret = vdisk_pick_cache(vd, cfg->cache, &vd->cache, extack);
	if (ret)
		goto out_close;
	vdisk_drop_page_cache(vd);

	vd->tag_set.ops = &vdisk_mq_ops;
	/*
	 * One hardware queue per CPU: inline issue runs on the submitter's.
	 * One pool of requests for them all (TAG_HCTX_SHARED): a pool per
	 * hardware queue (128 requests, a 64 KiB block) made an idle device's
	 * memory grow with the CPU count, to megabytes per device on a large
	 * host.  Shared tags would make mq-deadline the default scheduler;
	 * NO_SCHED_BY_DEFAULT keeps "none", like any multi-queue device: the
	 * backing file's own device does the scheduling.
	 */
	vd->tag_set.nr_hw_queues = num_online_cpus();
	vd->tag_set.queue_depth = VDISK_QUEUE_DEPTH;
	vd->tag_set.numa_node = NUMA_NO_NODE;
	vd->tag_set.cmd_size = sizeof(struct vdisk_io);
	/*
	 * BLOCKING: queue_rq issues file I/O inline.  It asks the file not
	 * to block, but filesystems may still sleep briefly (a mutex), which
	 * a non-blocking queue_rq, run under RCU, must never do.
	 */
	vd->tag_set.flags = BLK_MQ_F_SHOULD_MERGE | BLK_MQ_F_STACKING |
			    BLK_MQ_F_BLOCKING | BLK_MQ_F_TAG_HCTX_SHARED |
			    BLK_MQ_F_NO_SCHED_BY_DEFAULT;
	vd->tag_set.driver_data = vd;
	ret = blk_mq_alloc_tag_set(&vd->tag_set);
	if (ret)
		goto out_close;

	vdisk_queue_cfg(vd, &qcfg);
	disk = vdisk_compat_alloc_disk(&vd->tag_set, &qcfg, vd);
	if (IS_ERR(disk)) {
		ret = PTR_ERR(disk);
		goto out_free_tag_set;
	}
	vd->disk = disk;
	disk->major = vdisk_major;
	disk->first_minor = vd->index * (vdisk_max_part + 1);
	disk->minors = vdisk_max_part + 1;
	disk->fops = &vdisk_fops;
	disk->private_data = vd;
	if (vd->flags & VDISK_FLAG_NO_PARTSCAN)
		disk->flags |= GENHD_FL_NO_PART;
	snprintf(disk->disk_name, DISK_NAME_LEN, VDISK_DISK_PREFIX "%d",
		 vd->index);
	set_capacity(disk, vd->image.size >> SECTOR_SHIFT);
	set_disk_ro(disk, vdisk_dev_read_only(vd));

	/*
	 * add_disk() scans the partition table with uevents suppressed, so
	 * udev sees the disk and its partitions appear together.  The scan
	 * opens the disk in CREATING, which does not arm autoclear.
	 */
	ret = device_add_disk(NULL, disk, vdisk_disk_groups);
	if (ret)
		goto out_put_disk;
	*out = vd;
	return 0;

out_put_disk:
	/* free_disk() only runs for disks that were added. */
	put_disk(disk);
out_free_tag_set:
	blk_mq_free_tag_set(&vd->tag_set);
out_close:
	vdisk_image_close(&vd->image);
out_unreserve:
	mutex_lock(&vdisk_devices_lock);
	vdisk_dev_unreserve(vd);
	mutex_unlock(&vdisk_devices_lock);
	mutex_destroy(&vd->lock);
	kfree(vd);
	return ret;
}

/* Publish a device vdisk_dev_add() made: lookups and opens see it. */
void vdisk_dev_bind(struct vdisk_device *vd)
{
	lockdep_assert_held(&vdisk_devices_lock);
	/*
	 * Not under open_mutex, which a partition rescan may hold while it
	 * waits on a hung disk: an open racing with this sees CREATING, as
	 * if it came just before, and only does not arm autoclear.  Leaving
	 * BOUND is what must exclude opens.
	 */
	WRITE_ONCE(vd->state, VDISK_STATE_BOUND);
}

/* ---------------------------------------------------------------------- */
/* Detach                                                                 */

/*
 * Tear down and free a device its caller made DELETING (and so unseen)
 * while it was unopened.  Called without vdisk_devices_lock: writing back
 * and closing the image wait on its disk.
 */
void vdisk_dev_remove(struct vdisk_device *vd)
{
	lockdep_assert_not_held(&vdisk_devices_lock);

	/* A SET or DEL that pinned it while BOUND ends first; none can now. */
	wait_event(vdisk_progress_wq, !READ_ONCE(vd->pins));
	/* Drains the queue: no request runs after this returns. */
	del_gendisk(vd->disk);
	vdisk_image_close(&vd->image);
	/*
	 * Gone: the event goes out once the image is released (the format's
	 * tables written back; the file's last close may be deferred to the
	 * end of this task's system call or to a kernel thread) and together
	 * with the index and name being freed, so that whoever reacts to it
	 * can attach the same image, index or name at once.
	 */
	mutex_lock(&vdisk_devices_lock);
	vdisk_nl_notify(vd, VDISK_CMD_EVENT_DETACH);
	vdisk_dev_unreserve(vd);
	mutex_unlock(&vdisk_devices_lock);
	blk_mq_free_tag_set(&vd->tag_set);
	put_disk(vd->disk);	/* frees vd through vdisk_free_disk() */
}

static void vdisk_remove_work(struct work_struct *work)
{
	struct vdisk_device *vd = container_of(work, struct vdisk_device,
					       remove_work);

	mutex_lock(&vdisk_devices_lock);
	WRITE_ONCE(vd->state, VDISK_STATE_DELETING);
	mutex_unlock(&vdisk_devices_lock);
	vdisk_dev_remove(vd);
}

/*
 * Detach @vd, or mark it for detach at last close (@lazy, if open).  If
 * it is to go now it is made DELETING and *@remove set: the caller then
 * unpins it and calls vdisk_dev_remove().  Called with vd->lock held
 * (vdisk_nl_lock_device()) and without vdisk_devices_lock: the disk's
 * open_mutex is taken first, killably, since a partition rescan holding
 * it may wait on a hung disk, and the global lock must not wait for that.
 */
int vdisk_dev_del(struct vdisk_device *vd, bool lazy, bool *remove,
		  struct netlink_ext_ack *extack)
{
	struct gendisk *disk = vd->disk;
	unsigned int openers;
	int ret = 0;

	lockdep_assert_held(&vd->lock);
	lockdep_assert_not_held(&vdisk_devices_lock);
	*remove = false;

	if (mutex_lock_killable(&disk->open_mutex))
		return -EINTR;
	mutex_lock(&vdisk_devices_lock);
	/*
	 * Its last close got there first (autoclear): as if the lookup had
	 * not found it, which skips devices being detached.
	 */
	if (vd->state != VDISK_STATE_BOUND) {
		vdisk_nl_err(extack, "%s is not attached (being detached)",
			     disk->disk_name);
		ret = -ENODEV;
		goto out_unlock;
	}
	openers = disk_openers(disk);
	if (openers) {
		if (!lazy) {
			vdisk_nl_err(extack, "%s is in use (%u openers); --lazy detaches it at last close",
				     disk->disk_name, openers);
			ret = -EBUSY;
			goto out_unlock;
		}
		WRITE_ONCE(vd->flags, vd->flags | VDISK_FLAG_AUTOCLEAR);
		vd->opened = true;
		vdisk_nl_notify(vd, VDISK_CMD_EVENT_CHANGE);
		goto out_unlock;
	}
	WRITE_ONCE(vd->state, VDISK_STATE_DELETING);
	*remove = true;
out_unlock:
	mutex_unlock(&vdisk_devices_lock);
	mutex_unlock(&disk->open_mutex);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Lookup                                                                 */

/* A bound device by index (if >= 0) or by name; NULL if there is none. */
struct vdisk_device *vdisk_dev_find(int index, const char *name)
{
	struct vdisk_device *vd;

	lockdep_assert_held(&vdisk_devices_lock);
	if (index >= 0)
		vd = idr_find(&vdisk_index_idr, index);
	else
		vd = vdisk_find_name(name);
	if (vd && READ_ONCE(vd->state) != VDISK_STATE_BOUND)
		return NULL;
	return vd;
}

/*
 * Call @fn for bound devices in index order, starting at *@pos; stops at
 * the first non-zero return, leaving *@pos at that device so a netlink dump
 * can resume there.
 */
int vdisk_dev_for_each(int (*fn)(struct vdisk_device *vd, void *arg),
		       void *arg, int *pos)
{
	struct vdisk_device *vd;
	int id = *pos, ret;

	lockdep_assert_held(&vdisk_devices_lock);
	for (vd = idr_get_next(&vdisk_index_idr, &id); vd;
	     id++, vd = idr_get_next(&vdisk_index_idr, &id)) {
		if (READ_ONCE(vd->state) != VDISK_STATE_BOUND)
			continue;
		ret = fn(vd, arg);
		if (ret) {
			*pos = id;
			return ret;
		}
	}
	*pos = id;
	return 0;
}

u64 vdisk_dev_size(struct vdisk_device *vd)
{
	return get_capacity(vd->disk) << SECTOR_SHIFT;
}

unsigned int vdisk_dev_openers(struct vdisk_device *vd)
{
	return disk_openers(vd->disk);
}

/* ---------------------------------------------------------------------- */
/* Changes to a bound device                                              */

int vdisk_dev_refresh_size(struct vdisk_device *vd,
			   struct netlink_ext_ack *extack)
{
	struct vdisk_image *img = &vd->image;
	int ret;

	lockdep_assert_held(&vd->lock);
	ret = img->ops->refresh_size(img, vd->sector_size, extack);
	if (!ret)
		set_capacity_and_notify(vd->disk, img->size >> SECTOR_SHIFT);
	return ret;
}

/*
 * Freeze the queue for a change under no request.  What runs frozen
 * (fsync, the format's metadata writes, queue limits) must not reclaim
 * memory through I/O to this device, which would wait for the unfreeze:
 * NOIO, as the block layer's own sysfs stores do.
 */
static unsigned int vdisk_dev_freeze(struct vdisk_device *vd)
{
	blk_mq_freeze_queue(vd->disk->queue);
	return memalloc_noio_save();
}

static void vdisk_dev_unfreeze(struct vdisk_device *vd, unsigned int noio)
{
	memalloc_noio_restore(noio);
	blk_mq_unfreeze_queue(vd->disk->queue);
}

/* Change the virtual size of a format that stores it (qcow2). */
int vdisk_dev_resize(struct vdisk_device *vd, u64 size,
		     struct netlink_ext_ack *extack)
{
	struct vdisk_image *img = &vd->image;
	int ret;
	unsigned int noio;

	lockdep_assert_held(&vd->lock);
	if (!img->ops->resize) {
		vdisk_nl_err(extack, "%s images follow the file size: grow the file, then vdiskctl resize",
			     img->ops->name);
		return -EOPNOTSUPP;
	}
	if (!size || size % vd->sector_size) {
		vdisk_nl_err(extack, "size %llu is not a positive multiple of the %u-byte sector",
			     size, vd->sector_size);
		return -EINVAL;
	}
	if (vdisk_dev_read_only(vd)) {
		vdisk_nl_err(extack, "%s is read-only", vd->disk->disk_name);
		return -EROFS;
	}
	/* The format's metadata changes under no request. */
	noio = vdisk_dev_freeze(vd);
	ret = img->ops->resize(img, size, extack);
	vdisk_dev_unfreeze(vd, noio);
	if (!ret)
		set_capacity_and_notify(vd->disk, img->size >> SECTOR_SHIFT);
	return ret;
}

int vdisk_dev_set_read_only(struct vdisk_device *vd, bool ro,
			    struct netlink_ext_ack *extack)
{
	struct vdisk_queue_cfg qcfg;
	int ret = 0;
	unsigned int noio;

	lockdep_assert_held(&vd->lock);
	if (!ro && !vd->image.writable) {
		vdisk_nl_err(extack, "image was opened read-only; detach and attach it writable");
		return -EROFS;
	}
	if (ro != vdisk_dev_read_only(vd)) {
		/* Frozen: no write is in flight while the mode changes. */
		noio = vdisk_dev_freeze(vd);
		WRITE_ONCE(vd->flags, ro ? vd->flags | VDISK_FLAG_READ_ONLY :
				       vd->flags & ~VDISK_FLAG_READ_ONLY);
		vdisk_queue_cfg(vd, &qcfg);
		ret = vdisk_compat_update_queue(vd->disk, &qcfg);
		vdisk_dev_unfreeze(vd, noio);
		set_disk_ro(vd->disk, ro);
	}
	return ret;
}

int vdisk_dev_set_autoclear(struct vdisk_device *vd, bool on)
{
	lockdep_assert_held(&vd->lock);
	WRITE_ONCE(vd->flags, on ? vd->flags | VDISK_FLAG_AUTOCLEAR :
			       vd->flags & ~VDISK_FLAG_AUTOCLEAR);
	return 0;
}

/*
 * Leaving write-back mode writes the image's page cache back, which can
 * take minutes on a slow disk.  Do that before freezing the queue, so that
 * requests keep running meanwhile; the fsync under the frozen queue then
 * finds little left.  Errors are left to that fsync: vfs_fsync() here
 * would advance the file's error cursor, and a FLUSH or a qcow2 metadata
 * flush running meanwhile on the same file would miss the error.
 */
static void vdisk_dev_presync(struct vdisk_device *vd)
{
	struct address_space *mapping = vd->image.file->f_mapping;
	unsigned int noio;
	int err;

	/* As the frozen fsync: reclaim must not write into a vdisk here. */
	noio = memalloc_noio_save();
	err = filemap_fdatawrite(mapping);
	/*
	 * Returned only (ext4 dropping pages it cannot allocate): record it
	 * where the fsync will find it, as the kernel's own write-back does.
	 */
	if (err)
		mapping_set_error(mapping, err);
	filemap_fdatawait_keep_errors(mapping);
	memalloc_noio_restore(noio);
}

int vdisk_dev_set_cache(struct vdisk_device *vd, enum vdisk_cache want,
			struct netlink_ext_ack *extack)
{
	struct vdisk_queue_cfg qcfg;
	enum vdisk_cache mode;
	int ret;
	unsigned int noio;

	lockdep_assert_held(&vd->lock);
	ret = vdisk_pick_cache(vd, want, &mode, extack);
	if (ret || mode == vd->cache)
		return ret;
	if (vd->cache == VDISK_CACHE_WRITEBACK)
		vdisk_dev_presync(vd);

	/*
	 * Drain the queue so no request runs in the old mode, and write back
	 * what the page cache holds before direct I/O bypasses it.
	 */
	noio = vdisk_dev_freeze(vd);
	ret = vdisk_file_fsync(vd->image.file, 0);
	if (ret && vd->image.writable) {
		/* The error is the SET's, and the device's writers' too. */
		WRITE_ONCE(vd->wb_error, ret);
		if (vd->image.ops->flush_failed)
			vd->image.ops->flush_failed(&vd->image, ret);
	} else if (!ret) {
		WRITE_ONCE(vd->cache, mode);
		vdisk_drop_page_cache(vd);
		vdisk_queue_cfg(vd, &qcfg);
		ret = vdisk_compat_update_queue(vd->disk, &qcfg);
	}
	vdisk_dev_unfreeze(vd, noio);
	return ret;
}

/* ---------------------------------------------------------------------- */

int vdisk_dev_init(void)
{
	vdisk_ctl_wq = alloc_workqueue("vdisk_ctl", WQ_UNBOUND, 0);
	if (!vdisk_ctl_wq)
		return -ENOMEM;
	vdisk_major = register_blkdev(0, VDISK_DISK_PREFIX);
	if (vdisk_major < 0) {
		destroy_workqueue(vdisk_ctl_wq);
		return vdisk_major;
	}
	return 0;
}

/*
 * Module unload: the module cannot be unloaded while a device is open (each
 * open holds a module reference), so whatever is left can be removed.  The
 * family is unregistered by now, which waits for running handlers, and
 * the flush runs the autoclears: every device left is BOUND, none is being
 * attached or detached.
 */
void vdisk_dev_exit(void)
{
	struct vdisk_device *vd;
	int id;

	flush_workqueue(vdisk_ctl_wq);
	for (;;) {
		id = 0;
		mutex_lock(&vdisk_devices_lock);
		vd = idr_get_next(&vdisk_index_idr, &id);
		if (vd) {
			WARN_ON_ONCE(READ_ONCE(vd->state) != VDISK_STATE_BOUND);
			WRITE_ONCE(vd->state, VDISK_STATE_DELETING);
		}
		mutex_unlock(&vdisk_devices_lock);
		if (!vd)
			break;
		vdisk_dev_remove(vd);
	}
	idr_destroy(&vdisk_index_idr);
	destroy_workqueue(vdisk_ctl_wq);
	unregister_blkdev(vdisk_major, VDISK_DISK_PREFIX);
}
