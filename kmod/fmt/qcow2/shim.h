/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The environment the qcow2 core is written against.  The core is plain C
 * that builds both into the vdisk module and into userspace tools (the way
 * filesystem tools share code with the kernel); this header is the only
 * place that knows which one it is in.
 *
 * Each shim provides:
 *  - u8, u16, u32, u64, s64, S64_MAX, size_t, bool, true/false, NULL;
 *  - memcpy, memset, memcmp, memchr, strlen, strcmp, strchr, strrchr,
 *    snprintf, vsnprintf (same names and semantics in both worlds);
 *  - the negative errno values the core returns (EIO, EINVAL, ENOMEM,
 *    EOPNOTSUPP, ENOENT, EFBIG, ERANGE, ELOOP, ENOSPC, EROFS, EBUSY);
 *  - q2_alloc(), q2_zalloc(), q2_free(): may sleep; in the kernel they
 *    never recurse into I/O (GFP_NOIO), since the core runs in the block
 *    I/O path;
 *  - struct q2_mutex and q2_mutex_init/lock/trylock/unlock/destroy;
 *  - struct q2_waitq: q2_waitq_init/destroy, q2_wait_change(wq, &seq, old)
 *    sleeps until the u64 @seq no longer equals @old, q2_wake_all(wq)
 *    wakes every sleeper (call it after changing @seq with q2_store());
 *  - q2_load(p)/q2_store(p, v): single-copy-atomic loads and stores of
 *    fields read without a lock (u64 on 64-bit hosts);
 *    q2_load_acquire()/q2_store_release(): the same with ordering;
 *  - q2_warn_rl(fmt, ...): one rate-limited warning line;
 *  - Q2_PRINTF(a, b): printf format checking;
 *  - BIT(), BIT_ULL(), ARRAY_SIZE();
 *  - struct q2_dctx: a decompressor for one cluster (see below).
 */
#ifndef Q2_SHIM_H
#define Q2_SHIM_H

#ifdef __KERNEL__
#include "shim_kernel.h"
#else
#include "shim_user.h"
#endif

/* Big-endian loads and stores on unaligned bytes, the same everywhere. */
static inline u16 q2_be16(const void *p)
{
	const u8 *b = p;

	return (u16)((u16)b[0] << 8 | b[1]);
}

static inline u32 q2_be32(const void *p)
{
	const u8 *b = p;

	return (u32)b[0] << 24 | (u32)b[1] << 16 | (u32)b[2] << 8 | b[3];
}

static inline u64 q2_be64(const void *p)
{
	return (u64)q2_be32(p) << 32 | q2_be32((const u8 *)p + 4);
}

static inline void q2_put_be16(void *p, u16 v)
{
	u8 *b = p;

	b[0] = v >> 8;
	b[1] = (u8)v;
}

static inline void q2_put_be32(void *p, u32 v)
{
	u8 *b = p;

	b[0] = v >> 24;
	b[1] = v >> 16;
	b[2] = v >> 8;
	b[3] = v;
}

static inline void q2_put_be64(void *p, u64 v)
{
	q2_put_be32(p, v >> 32);
	q2_put_be32((u8 *)p + 4, (u32)v);
}

/*
 * Decompressing one qcow2 cluster.  @type is Q2_COMP_DEFLATE (raw deflate,
 * window bits -12, no zlib header) or Q2_COMP_ZSTD; @cluster_size bounds the
 * output and sizes the zstd window.
 *
 * q2_dctx_decompress() must fill @dst (exactly @dlen bytes) from @src, whose
 * last sector may carry trailing garbage; anything else (stream ends short,
 * corrupt input, no progress) is -EIO.  Not thread safe: one caller at a
 * time per context.
 */
#define Q2_COMP_DEFLATE	0
#define Q2_COMP_ZSTD	1

struct q2_dctx;
struct q2_dctx *q2_dctx_alloc(int type, u32 cluster_size);
void q2_dctx_free(struct q2_dctx *dctx);
int q2_dctx_decompress(struct q2_dctx *dctx, const void *src, size_t slen,
		       void *dst, size_t dlen);

#endif /* Q2_SHIM_H */
