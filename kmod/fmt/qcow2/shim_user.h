/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userspace side of the qcow2 core's environment: libc, pthreads, zlib and
 * libzstd (see shim_user.c and shim_user_decomp.c).
 */
#ifndef Q2_SHIM_USER_H
#define Q2_SHIM_USER_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kernel's spellings, so that "%llu" is right for u64 in both. */
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef unsigned long long u64;
typedef long long s64;

#define S64_MAX		((s64)(~0ULL >> 1))

#define Q2_PRINTF(a, b)	__attribute__((format(printf, a, b)))

#ifndef BIT
#define BIT(n)		(1UL << (n))
#endif
#ifndef BIT_ULL
#define BIT_ULL(n)	(1ULL << (n))
#endif
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#endif

static inline void *q2_alloc(size_t size)
{
	return malloc(size ? size : 1);
}

static inline void *q2_zalloc(size_t size)
{
	return calloc(1, size ? size : 1);
}

static inline void q2_free(const void *p)
{
	free((void *)p);
}

struct q2_mutex {
	pthread_mutex_t m;
};

static inline void q2_mutex_init(struct q2_mutex *qm)
{
	pthread_mutex_init(&qm->m, NULL);
}

static inline void q2_mutex_lock(struct q2_mutex *qm)
{
	pthread_mutex_lock(&qm->m);
}

static inline bool q2_mutex_trylock(struct q2_mutex *qm)
{
	return !pthread_mutex_trylock(&qm->m);
}

static inline void q2_mutex_unlock(struct q2_mutex *qm)
{
	pthread_mutex_unlock(&qm->m);
}

static inline void q2_mutex_destroy(struct q2_mutex *qm)
{
	pthread_mutex_destroy(&qm->m);
}

struct q2_waitq {
	pthread_mutex_t m;
	pthread_cond_t c;
};

static inline void q2_waitq_init(struct q2_waitq *w)
{
	pthread_mutex_init(&w->m, NULL);
	pthread_cond_init(&w->c, NULL);
}

static inline void q2_waitq_destroy(struct q2_waitq *w)
{
	pthread_cond_destroy(&w->c);
	pthread_mutex_destroy(&w->m);
}

/* Sleep until *@seq != @old; the waker stores @seq before q2_wake_all(). */
static inline void q2_wait_change(struct q2_waitq *w, const u64 *seq, u64 old)
{
	pthread_mutex_lock(&w->m);
	while (__atomic_load_n(seq, __ATOMIC_ACQUIRE) == old)
		pthread_cond_wait(&w->c, &w->m);
	pthread_mutex_unlock(&w->m);
}

static inline void q2_wake_all(struct q2_waitq *w)
{
	pthread_mutex_lock(&w->m);
	pthread_cond_broadcast(&w->c);
	pthread_mutex_unlock(&w->m);
}

#define q2_load(p)		__atomic_load_n((p), __ATOMIC_RELAXED)
#define q2_store(p, v)		__atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define q2_load_acquire(p)	__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define q2_store_release(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)

static inline void q2_resched(void)
{
}

static inline bool q2_killed(void)
{
	return false;
}

#define q2_sort(base, n, size, cmp)	qsort(base, n, size, cmp)

/*
 * Warnings go to stderr, at most a burst per second; q2_shim_quiet (set by
 * tests and the fuzzer) silences them and only counts them.
 */
extern bool q2_shim_quiet;
extern unsigned long q2_shim_warnings;
Q2_PRINTF(1, 2) void q2_shim_warn(const char *fmt, ...);
#define q2_warn_rl(fmt, ...)	q2_shim_warn("vdisk: " fmt "\n", ##__VA_ARGS__)

#endif /* Q2_SHIM_USER_H */
