/* SPDX-License-Identifier: GPL-2.0 */
/* Request handling helpers that format backends use. */
#ifndef VDISK_RQ_H
#define VDISK_RQ_H

#include <linux/blk-mq.h>

struct vdisk_device;

/*
 * Carry out @rq (any op) against @file with the device's first sector at
 * byte @pos of the file; completes @rq now or from the async completion.
 */
void vdisk_rq_file_io(struct vdisk_device *vd, struct request *rq,
		      struct file *file, loff_t pos);

/* Complete @rq with @ret: bytes done (reads and writes) or a -errno. */
void vdisk_rq_done(struct request *rq, long ret);

#endif /* VDISK_RQ_H */
