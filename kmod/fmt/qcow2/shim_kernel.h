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
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/stddef.h>
#include <linux/string.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <asm/barrier.h>

#define Q2_PRINTF(a, b)	__printf(a, b)

/*
 * The core allocates from the block I/O path (L2 tables on a cache miss,
 * decompression buffers), so allocations must not recurse into I/O on this
 * or another vdisk device.  A noio scope rather than GFP_NOIO: kvmalloc()
 * on 6.1 falls back to vmalloc only for GFP_KERNEL-compatible flags, and
 * the refcount table alone may need 8 MiB.
 */
static inline void *q2_alloc(size_t size)
{
	unsigned int noio = memalloc_noio_save();
	void *p = kvmalloc(size, GFP_KERNEL);

	memalloc_noio_restore(noio);
	return p;
}

static inline void *q2_zalloc(size_t size)
{
	unsigned int noio = memalloc_noio_save();
	void *p = kvzalloc(size, GFP_KERNEL);

	memalloc_noio_restore(noio);
	return p;
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

static inline bool q2_mutex_trylock(struct q2_mutex *qm)
{
	return mutex_trylock(&qm->m);
}

static inline void q2_mutex_unlock(struct q2_mutex *qm)
{
	mutex_unlock(&qm->m);
}

static inline void q2_mutex_destroy(struct q2_mutex *qm)
{
	mutex_destroy(&qm->m);
}

/* Sleeping until a counter moves on (the write path's in-flight waits). */
struct q2_waitq {
	wait_queue_head_t wq;
};

#define q2_waitq_init(w)	init_waitqueue_head(&(w)->wq)

static inline void q2_waitq_destroy(struct q2_waitq *w)
{
}

static inline void q2_wait_change(struct q2_waitq *w, const u64 *seq, u64 old)
{
	wait_event(w->wq, READ_ONCE(*seq) != old);
}

static inline void q2_wake_all(struct q2_waitq *w)
{
	wake_up_all(&w->wq);
}

#define q2_load(p)		READ_ONCE(*(p))
#define q2_store(p, v)		WRITE_ONCE(*(p), (v))
#define q2_load_acquire(p)	smp_load_acquire(p)
#define q2_store_release(p, v)	smp_store_release(p, v)

/* Long scans (the free-cluster search) run in workers: let others run. */
#define q2_resched()		cond_resched()
/* Long work at open runs for a command: its caller may be killed. */
#define q2_killed()		fatal_signal_pending(current)
#define q2_sort(base, n, size, cmp)	sort(base, n, size, cmp, NULL)

#define q2_warn_rl(fmt, ...) \
	pr_warn_ratelimited("vdisk: " fmt "\n", ##__VA_ARGS__)

#endif /* Q2_SHIM_KERNEL_H */
