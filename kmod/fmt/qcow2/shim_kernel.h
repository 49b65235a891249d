/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel side of the qcow2 core's environment.  The only file of the core
 * that includes kernel headers.
 */
#ifndef Q2_SHIM_KERNEL_H
#define Q2_SHIM_KERNEL_H

#include <linux/bits.h>
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <linux/stddef.h>
#include <linux/string.h>
#include <linux/types.h>

#define Q2_PRINTF(a, b)	__printf(a, b)

/*
 * The core allocates from the block I/O path (L2 tables on a cache miss,
 * decompression buffers), so allocations must not recurse into I/O on this
 * or another vdisk device.
 */
static inline void *q2_alloc(size_t size)
{
	return kvmalloc(size, GFP_NOIO);
}

static inline void *q2_zalloc(size_t size)
{
	return kvzalloc(size, GFP_NOIO);
}

static inline void q2_free(const void *p)
{
	kvfree(p);
}

struct q2_mutex {
	struct mutex m;		/* what it protects: see where it is embedded */
};

#define q2_mutex_init(qm)	mutex_init(&(qm)->m)

static inline void q2_mutex_lock(struct q2_mutex *qm)
{
	mutex_lock(&qm->m);
}

static inline void q2_mutex_unlock(struct q2_mutex *qm)
{
	mutex_unlock(&qm->m);
}

static inline void q2_mutex_destroy(struct q2_mutex *qm)
{
	mutex_destroy(&qm->m);
}

#define q2_warn_rl(fmt, ...) \
	pr_warn_ratelimited("vdisk: " fmt "\n", ##__VA_ARGS__)

#endif /* Q2_SHIM_KERNEL_H */
