/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vdisk core types, shared by every file of the module.
 *
 * Lock order (outermost first):
 *   vdisk_device.lock  ->  gendisk->open_mutex  ->  vdisk_devices_lock
 * and the queue freeze inside vdisk_device.lock.  The block layer calls
 * our open/release with open_mutex held; they take none of ours.
 */
#ifndef VDISK_H
#define VDISK_H

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/netlink.h>
#include <linux/workqueue.h>
#include <uapi/linux/vdisk.h>

#include "fmt/fmt.h"
#include "rq.h"

/*
 * Lifecycle of a device.  Transitions happen under vdisk_devices_lock (and
 * gendisk->open_mutex where an open must be excluded: BOUND -> DELETING in
 * DEL; module exit needs not, no device being open then), except BOUND ->
 * RUNDOWN in release(), which holds only open_mutex.
 *
 *   CREATING --add_disk done, published--> BOUND
 *   BOUND --DEL--> DELETING --put_disk--> (freed)
 *   BOUND --last close with autoclear--> RUNDOWN --work--> DELETING
 *
 * Only CREATING (the partition scan) and BOUND devices accept opens.
 * Requests are failed once the state is past BOUND and the block layer has
 * drained the queue in del_gendisk().  Lookups see only BOUND devices: the
 * slow parts of attach (CREATING) and detach (DELETING) run without
 * vdisk_devices_lock, on a device only their caller holds.
 */
enum vdisk_state {
	VDISK_STATE_CREATING,
	VDISK_STATE_BOUND,
	VDISK_STATE_RUNDOWN,
	VDISK_STATE_DELETING,
};

/* One backing layer named in ADD, nearest to the top first. */
struct vdisk_layer_config {
	struct file *file;		/* reference owned by the caller */
	const char *path;		/* display path, or NULL */
	enum vdisk_format format;	/* as the caller probed it; checked */
};

/* Settings for ADD, after netlink parsing and before any allocation. */
struct vdisk_config {
	int index;			/* wanted index, or -1 for any */
	char name[VDISK_NAME_MAX];	/* user name, or "" */
	struct file *file;		/* the image; reference owned by caller */
	const char *path;		/* display path, or NULL */
	enum vdisk_format format;
	u64 offset;
	u64 sizelimit;
	u32 flags;			/* VDISK_FLAG_* */
	enum vdisk_cache cache;
	u32 sector_size;
	struct vdisk_layer_config backing[VDISK_BACKING_MAX];
	unsigned int nr_backing;
	const char *snapshot;		/* qcow2 snapshot id or name, or NULL */
	u64 cache_size;			/* metadata cache bytes, 0 = default */
};

struct vdisk_device {
	int index;
	struct gendisk *disk;
	struct blk_mq_tag_set tag_set;

	/* Written under the locks the enum names; read with READ_ONCE. */
	enum vdisk_state state;

	/*
	 * Held across a whole SET, and by a DEL while it decides: one command
	 * at a time on the device, without vdisk_devices_lock while it waits
	 * on the disk.  Taken outside vdisk_devices_lock.
	 */
	struct mutex lock;

	/* The top image and its format; immutable while the device exists. */
	struct vdisk_image image;
	/*
	 * The image's inode (a block device's for a device node), for
	 * identity only, never dereferenced: an attach that uses the same
	 * image waits while this device is on its way out.
	 */
	const struct inode *image_inode;

	/* Set at attach; flags and cache change under @lock. */
	char name[VDISK_NAME_MAX];
	u32 flags;			/* VDISK_FLAG_* */
	enum vdisk_cache cache;		/* mode in effect, never DEFAULT */
	u32 sector_size;

	/*
	 * A write-back error that a cache-mode change's fsync took from the
	 * file (vfs_fsync moves the file's error cursor past it): the next
	 * request that asks for durability (a FLUSH, a FUA write, any write
	 * in write-through mode) reports it, once, since the writes were the
	 * device's (vdisk_take_wb_error()).
	 */
	int wb_error;

	/*
	 * Set by the first open while BOUND, under open_mutex.  Autoclear acts
	 * only on the last close of such an opener: add_disk()'s partition
	 * scan also opens and closes the disk, and on 6.12 its close is a
	 * deferred fput that lands after the device is BOUND.
	 */
	bool opened;

	/* Deferred detach after the last close of an autoclear device. */
	struct work_struct remove_work;

	/*
	 * SETs and DELs that found the device and wait for or hold @lock
	 * (vdisk_dev_pin(), under vdisk_devices_lock): a removal waits for
	 * them to go.
	 */
	unsigned int pins;
};


/* main.c: module parameters */
extern unsigned int vdisk_max_devices;
extern unsigned int vdisk_max_part;

/* dev.c */
extern struct mutex vdisk_devices_lock;
int vdisk_dev_init(void);
void vdisk_dev_exit(void);
int vdisk_dev_add(struct vdisk_config *cfg, struct vdisk_device **out,
		  struct netlink_ext_ack *extack);
void vdisk_dev_bind(struct vdisk_device *vd);
int vdisk_dev_del(struct vdisk_device *vd, bool lazy, bool *remove,
		  struct netlink_ext_ack *extack);
void vdisk_dev_remove(struct vdisk_device *vd);
void vdisk_dev_pin(struct vdisk_device *vd);
void vdisk_dev_unpin(struct vdisk_device *vd);
struct vdisk_device *vdisk_dev_find(int index, const char *name);
int vdisk_dev_for_each(int (*fn)(struct vdisk_device *vd, void *arg),
		       void *arg, int *pos);
int vdisk_dev_refresh_size(struct vdisk_device *vd,
			   struct netlink_ext_ack *extack);
int vdisk_dev_resize(struct vdisk_device *vd, u64 size,
		     struct netlink_ext_ack *extack);
int vdisk_dev_set_read_only(struct vdisk_device *vd, bool ro,
			    struct netlink_ext_ack *extack);
int vdisk_dev_set_autoclear(struct vdisk_device *vd, bool on);
int vdisk_dev_set_cache(struct vdisk_device *vd, enum vdisk_cache cache,
			struct netlink_ext_ack *extack);
u64 vdisk_dev_size(struct vdisk_device *vd);
unsigned int vdisk_dev_openers(struct vdisk_device *vd);

/* rq.c */
extern const struct blk_mq_ops vdisk_mq_ops;
int vdisk_rq_init(void);
void vdisk_rq_exit(void);

/* netlink.c */
int vdisk_nl_init(void);
void vdisk_nl_exit(void);
void vdisk_nl_notify(struct vdisk_device *vd, u8 cmd);
__printf(2, 3)
void vdisk_nl_err(struct netlink_ext_ack *extack, const char *fmt, ...);

/* sysfs.c */
const char *vdisk_cache_name(enum vdisk_cache cache);
extern const struct attribute_group *vdisk_disk_groups[];

static inline bool vdisk_dev_read_only(struct vdisk_device *vd)
{
	return READ_ONCE(vd->flags) & VDISK_FLAG_READ_ONLY;
}

#endif /* VDISK_H */
