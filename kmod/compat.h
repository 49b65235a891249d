/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every difference between the kernels vdisk supports, and nothing else.
 *
 * Supported: Debian bookworm's 6.1 series and its 6.12 backports series.
 * Debian's 6.1 carries backports (kiocb_start_write, FMODE_CAN_ODIRECT,
 * STATX_DIOALIGN, GENL_MCAST_CAP_*), so the checks below are on the
 * interfaces that really differ, keyed on the version that changed them.
 * See Documentation/design/compat.rst for why each exists.
 */
#ifndef VDISK_COMPAT_H
#define VDISK_COMPAT_H

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/netlink.h>
#include <linux/iversion.h>
#include <linux/version.h>

/*
 * Queue settings in one place, applied by the compat helpers below: 6.11
 * moved them into struct queue_limits (with feature flags) passed at disk
 * allocation and updated atomically; 6.1 sets them one by one on the queue.
 */
struct vdisk_queue_cfg {
	unsigned int logical_block_size;
	unsigned int physical_block_size;
	unsigned int io_min;
	unsigned int max_hw_sectors;
	unsigned short max_segments;
	unsigned int dma_alignment;	/* mask, e.g. 511 */
	unsigned int max_discard_sectors;
	unsigned int discard_granularity;
	unsigned int max_write_zeroes_sectors;
	bool write_cache;
	bool fua;
	bool stable_writes;
};

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)

static inline void vdisk_cfg_to_limits(const struct vdisk_queue_cfg *cfg,
				       struct queue_limits *lim)
{
	lim->logical_block_size = cfg->logical_block_size;
	lim->physical_block_size = cfg->physical_block_size;
	lim->io_min = cfg->io_min;
	lim->max_hw_sectors = cfg->max_hw_sectors;
	lim->max_segments = cfg->max_segments;
	lim->dma_alignment = cfg->dma_alignment;
	lim->max_hw_discard_sectors = cfg->max_discard_sectors;
	lim->discard_granularity = cfg->discard_granularity;
	lim->max_write_zeroes_sectors = cfg->max_write_zeroes_sectors;
	/* Not rotational (6.11's default): a user may say otherwise. */
	lim->features &= ~(BLK_FEAT_WRITE_CACHE | BLK_FEAT_FUA |
			   BLK_FEAT_STABLE_WRITES);
	if (cfg->write_cache)
		lim->features |= BLK_FEAT_WRITE_CACHE;
	if (cfg->fua)
		lim->features |= BLK_FEAT_FUA;
	if (cfg->stable_writes)
		lim->features |= BLK_FEAT_STABLE_WRITES;
}

static inline struct gendisk *
vdisk_compat_alloc_disk(struct blk_mq_tag_set *set,
			const struct vdisk_queue_cfg *cfg, void *queuedata)
{
	struct queue_limits lim = { };

	vdisk_cfg_to_limits(cfg, &lim);
	return blk_mq_alloc_disk(set, &lim, queuedata);
}

/* Caller has frozen the queue. */
static inline int vdisk_compat_update_queue(struct gendisk *disk,
					    const struct vdisk_queue_cfg *cfg)
{
	struct queue_limits lim = queue_limits_start_update(disk->queue);

	vdisk_cfg_to_limits(cfg, &lim);
	return queue_limits_commit_update(disk->queue, &lim);
}

#else /* < 6.11 */

/*
 * 6.1's setters also reset what a user tuned in sysfs (max_sectors_kb,
 * discard_max_bytes, write_cache, rotational): call them only for values
 * that change, as 6.12's limits update leaves the user's alone.  A user's
 * lower discard_max_bytes is kept below a new maximum as 6.12 keeps it;
 * one lost while the maximum was 0 (read-only) is not.
 */
static inline int vdisk_compat_update_queue(struct gendisk *disk,
					    const struct vdisk_queue_cfg *cfg)
{
	struct request_queue *q = disk->queue;
	struct queue_limits *lim = &q->limits;

	blk_queue_logical_block_size(q, cfg->logical_block_size);
	blk_queue_physical_block_size(q, cfg->physical_block_size);
	blk_queue_io_min(q, cfg->io_min);
	/*
	 * Compared as set: vdisk's maximum is a whole number of pages and
	 * of every sector size, so the setter's rounding never changes it.
	 */
	if (lim->max_hw_sectors != cfg->max_hw_sectors)
		blk_queue_max_hw_sectors(q, cfg->max_hw_sectors);
	blk_queue_max_segments(q, cfg->max_segments);
	blk_queue_dma_alignment(q, cfg->dma_alignment);
	if (lim->max_hw_discard_sectors != cfg->max_discard_sectors) {
		unsigned int user = lim->max_discard_sectors;
		bool lowered = user < lim->max_hw_discard_sectors;

		blk_queue_max_discard_sectors(q, cfg->max_discard_sectors);
		if (lowered)
			lim->max_discard_sectors = min(user, cfg->max_discard_sectors);
	}
	lim->discard_granularity = cfg->discard_granularity;
	blk_queue_max_write_zeroes_sectors(q, cfg->max_write_zeroes_sectors);
	if (test_bit(QUEUE_FLAG_HW_WC, &q->queue_flags) != cfg->write_cache ||
	    test_bit(QUEUE_FLAG_FUA, &q->queue_flags) != cfg->fua)
		blk_queue_write_cache(q, cfg->write_cache, cfg->fua);
	if (test_bit(QUEUE_FLAG_STABLE_WRITES, &q->queue_flags) !=
	    cfg->stable_writes) {
		if (cfg->stable_writes)
			blk_queue_flag_set(QUEUE_FLAG_STABLE_WRITES, q);
		else
			blk_queue_flag_clear(QUEUE_FLAG_STABLE_WRITES, q);
	}
	return 0;
}

static inline struct gendisk *
vdisk_compat_alloc_disk(struct blk_mq_tag_set *set,
			const struct vdisk_queue_cfg *cfg, void *queuedata)
{
	struct gendisk *disk = blk_mq_alloc_disk(set, queuedata);

	if (IS_ERR(disk))
		return disk;
	blk_queue_flag_set(QUEUE_FLAG_NONROT, disk->queue);
	/* A value the fresh queue already holds is skipped, as it may be. */
	vdisk_compat_update_queue(disk, cfg);
	return disk;
}

#endif

/*
 * 6.5 made open() take the gendisk and a blk_mode_t, and dropped the mode
 * from release().
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
#define VDISK_BDOPS_OPEN_ARGS		struct gendisk *disk, blk_mode_t mode
#define VDISK_BDOPS_OPEN_DISK		disk
#define VDISK_BDOPS_RELEASE_ARGS	struct gendisk *disk
#else
#define VDISK_BDOPS_OPEN_ARGS		struct block_device *bdev, fmode_t mode
#define VDISK_BDOPS_OPEN_DISK		(bdev->bd_disk)
#define VDISK_BDOPS_RELEASE_ARGS	struct gendisk *disk, fmode_t mode
#endif

/*
 * 6.2 gave struct netlink_ext_ack a buffer for formatted messages.  Before
 * it, the message must outlive the handler, so 6.1 formats into a small
 * ring of static buffers: a message can only be garbled (never unsafe: the
 * last byte of each buffer stays NUL) if more than VDISK_EXTACK_RING
 * failing requests race between one handler's return and its ACK.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
#define VDISK_EXTACK_MSG_LEN	NETLINK_MAX_FMTMSG_LEN
static inline char *vdisk_extack_buf(struct netlink_ext_ack *extack)
{
	return extack->_msg_buf;
}
#else
#define VDISK_EXTACK_MSG_LEN	96
#define VDISK_EXTACK_RING	32
/* Only netlink.c calls this, so there is one ring. */
static inline char *vdisk_extack_buf(struct netlink_ext_ack *extack)
{
	static char ring[VDISK_EXTACK_RING][VDISK_EXTACK_MSG_LEN];
	static atomic_t next = ATOMIC_INIT(0);

	return ring[(unsigned int)atomic_inc_return(&next) % VDISK_EXTACK_RING];
}
#endif

/*
 * Run with the task's plug detached (vdisk_rq_try_nowait()).  Since 6.9 a
 * plug may carry a cached timestamp flagged by PF_BLOCK_TS, and the
 * scheduler clears it through current->plug without a NULL check: drop
 * the cached time before the plug goes away.
 */
static inline struct blk_plug *vdisk_compat_plug_detach(void)
{
	struct blk_plug *plug = current->plug;

#ifdef PF_BLOCK_TS
	if (plug)
		blk_plug_invalidate_ts();
#endif
	current->plug = NULL;
	return plug;
}

static inline void vdisk_compat_plug_attach(struct blk_plug *plug)
{
	current->plug = plug;
}

/*
 * Would a write to @inode now leave its times and i_version alone?  The
 * same test as the kernel's inode_needs_update_time() (static), so that
 * the inline write path (rq.c) only tries writes that start no journal
 * transaction.  mtime has an accessor since 6.7; Debian's 6.1 has
 * inode_get_ctime() but reads the field directly.
 */
static inline bool vdisk_compat_times_current(struct inode *inode)
{
	struct timespec64 now = current_time(inode);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	struct timespec64 mtime = inode_get_mtime(inode);
	struct timespec64 ctime = inode_get_ctime(inode);
#else
	struct timespec64 mtime = inode->i_mtime;
	struct timespec64 ctime = inode->i_ctime;
#endif

	if (!timespec64_equal(&mtime, &now) || !timespec64_equal(&ctime, &now))
		return false;
	return !(IS_I_VERSION(inode) && inode_iversion_need_inc(inode));
}

#endif /* VDISK_COMPAT_H */
