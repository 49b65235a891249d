/* SPDX-License-Identifier: GPL-2.0 */
/*
 * qcow2 core internals: the image structure and helpers shared by the
 * core's files.  Not for the glue or the tools (they use qcow2.h).
 */
#ifndef Q2_PRIV_H
#define Q2_PRIV_H

#include "qcow2.h"

#define Q2_V2_HEADER_LEN	72
#define Q2_V3_HEADER_LEN	104
#define Q2_MIN_CLUSTER_BITS	9
#define Q2_MAX_CLUSTER_BITS	21
#define Q2_MAX_REFCOUNT_ORDER	6

/* QEMU's implementation limits, which every image it writes respects. */
#define Q2_MAX_L1_BYTES		(32U * 1024 * 1024)
#define Q2_MAX_L1_ENTRIES	(Q2_MAX_L1_BYTES / 8)
#define Q2_MAX_REFTABLE_BYTES	(8U * 1024 * 1024)
#define Q2_MAX_SNAPSHOTS	65536U
#define Q2_MAX_SNAPSHOTS_BYTES	(64U * 1024 * 1024)
#define Q2_MAX_SNAPSHOT_EXTRA	1024U
#define Q2_SNAPSHOT_HDR_LEN	40
#define Q2_BACKING_NAME_MAX	1023U
#define Q2_BACKING_FMT_MAX	15U	/* QEMU: shorter than 16 */
#define Q2_FEATURE_ENTRY_LEN	48
#define Q2_FEATURE_NAME_LEN	46

/* Header extension magics. */
#define Q2_EXT_END		0x00000000U
#define Q2_EXT_BACKING_FORMAT	0xe2792acaU
#define Q2_EXT_FEATURE_TABLE	0x6803f857U
#define Q2_EXT_BITMAPS		0x23852875U
#define Q2_EXT_CRYPTO		0x0537be77U
#define Q2_EXT_DATA_FILE	0x44415441U

/* L1/L2 entry bits. */
#define Q2_OFFSET_MASK		0x00fffffffffffe00ULL	/* bits 9-55 */
#define Q2_OFLAG_COPIED		BIT_ULL(63)
#define Q2_OFLAG_COMPRESSED	BIT_ULL(62)
#define Q2_OFLAG_ZERO		BIT_ULL(0)
#define Q2_MAX_HOST_OFFSET	BIT_ULL(56)
#define Q2_RB_FILTER_BITS	32768U
#define Q2_SECTOR_BITS		9

#define Q2_SUBCLUSTERS		32
#define Q2_SUBCLUSTER_BITS	5
#define Q2_BM_ALL_ZERO		0xffffffff00000000ULL	/* extended L2 */

/* Refcount table entries: bits 0-8 reserved. */
#define Q2_RT_RESERVED		0x1ffULL
/* Standard cluster descriptor bits QEMU's check calls reserved. */
#define Q2_L2_RESERVED		0x3f000000000001feULL

/* Write path bounds. */
#define Q2_RB_MIN		4	/* refcount blocks cached, at least */
#define Q2_RT_MEM_STEP		64U	/* refcount table entries held: a multiple */
#define Q2_RB_MAX_SLOTS		1024U
#define Q2_DROPS_MAX		1024U	/* pending drops before a forced sync */
#define Q2_QUAR_MAX		256U	/* freed ranges awaiting the barrier */
#define Q2_PLAN_MAX_CL		1024U	/* clusters in one allocating plan */
#define Q2_BOUNCE_MAX		(64U * 1024)

/* struct q2_write.kind */
#define Q2W_INPLACE		1
#define Q2W_NEW			2	/* fresh clusters replace the old */
#define Q2W_REUSE		3	/* owned cluster gains allocation */

/**
 * struct q2_l2_slot - one cached L2 table
 * @offset: host offset of the table; 0 when the slot is empty
 * @data: the table as stored on disk (big-endian), one cluster
 * @pins: users currently holding the table (the write path pins tables
 *	across their write-back; a pinned slot is never evicted)
 * @dirty: modified in memory, to be written back before eviction (only
 *	by the write path, under the image's metadata mutex)
 * @referenced: CLOCK second-chance bit
 * @next: next slot in the same hash bucket, or -1
 */
struct q2_l2_slot {
	u64 offset;
	u8 *data;
	u32 pins;
	bool dirty;
	bool referenced;
	int next;
};

struct q2_l2_cache {
	struct q2_mutex lock;		/* protects everything below */
	struct q2_l2_slot *slots;
	unsigned int nr;		/* capacity */
	unsigned int used;		/* slots with a buffer */
	unsigned int hand;		/* CLOCK hand */
	int *buckets;
	unsigned int bucket_mask;
	u64 hits;
	u64 misses;
};

/**
 * struct q2_rb_slot - one cached refcount block (write path, under meta)
 * @offset: host offset of the block; 0 when the slot is empty
 * @data: the block as stored (packed refcounts)
 * @pins: users holding the slot
 * @dirty: to be written back
 * @referenced: CLOCK second-chance bit
 */
struct q2_rb_slot {
	u64 offset;
	u8 *data;
	u32 pins;
	bool dirty;
	bool referenced;
};

/* A reference dropped in memory: @n host clusters from @off, decremented
 * once the change is durable. */
struct q2_drop {
	u64 off;
	u64 n;
};

/* Freed host clusters [@lo, @hi) (cluster indices), not reused before the
 * barrier that follows generation @seq. */
struct q2_quar {
	u64 lo;
	u64 hi;
	u64 seq;
};

struct q2_image {
	const struct q2_file_ops *ops;
	void *file;
	char name[24];
	/*
	 * Bytes below this are in the file (sampled at open, raised as writes
	 * complete; q2_load()).  Data mapped past it reads as zeros.
	 */
	u64 file_size;
	bool header_only;

	/* Header. */
	u32 version;
	u32 cluster_bits;
	u32 cluster_size;
	u32 refcount_order;
	u32 header_length;
	u32 crypt_method;
	u64 size;			/* header virtual size */
	u64 incompat;
	u64 compat;
	u64 autoclear;
	u32 compression_type;
	bool extended_l2;

	/* Geometry derived from the header. */
	u32 l2_bits;			/* log2 of entries per L2 table */
	u32 l2_entry_bytes;		/* 8, or 16 with extended L2 */
	u32 gran_bits;			/* log2 of the mapping granule */
	u32 csize_shift;		/* compressed descriptor layout */
	u64 csize_mask;
	u64 coffset_mask;

	/* Active L1 (from the header) and the one in use (maybe a snapshot). */
	u64 active_l1_offset;
	u32 active_l1_size;
	u64 l1_offset;
	u32 l1_size;
	u64 *l1;			/* host-endian; NULL if header-only */
	u64 disk_size;			/* what the guest sees */
	int snap_index;			/* open snapshot, or -1 */

	/* Refcount table (read with q2_load(): it moves when it grows). */
	u64 reftable_offset;
	u32 reftable_clusters;

	/* Extensions. */
	char *backing_name;		/* NUL-terminated, or NULL */
	char backing_fmt[Q2_BACKING_FMT_MAX + 1];
	bool has_backing_fmt;
	char *data_file_name;
	char *feature_names;		/* nr * (1 + 1 + 47): type, bit, name */
	u32 nr_feature_names;
	bool has_bitmaps;
	bool has_crypto_header;

	/* Snapshots. */
	u32 nb_snapshots;
	u64 snapshots_offset;
	u64 snapshots_bytes;
	struct q2_snapshot *snapshots;
	char *snap_strings;

	struct q2_l2_cache l2;

	/* Compressed clusters: one decoder and the last cluster decoded. */
	struct q2_mutex dlock;		/* protects everything below */
	struct q2_dctx *dctx;
	u8 *cbuf;			/* 2 clusters: the largest descriptor */
	u8 *dbuf;			/* 1 cluster */
	bool dvalid;
	u64 dkey_off;
	u32 dkey_len;

	/*
	 * Write path (Q2_OPEN_WRITE).  Everything below is under @meta unless
	 * noted; header.c sets up the refcount table and the locks, write.c
	 * the rest on first use (@wready).
	 */
	bool writable;
	bool failed;			/* a write failed: q2_load() */
	bool wready;
	bool autoclear_done;
	bool unflushed;			/* metadata written since last flush */
	bool l1_any_dirty;
	void (*barrier)(void *ctx);
	void *barrier_ctx;
	int (*wclose)(struct q2_image *img);	/* write.c: flush, free */
	int (*wreclaim)(struct q2_image *img);	/* write.c: clean L2 slots */
	struct q2_mutex meta;
	struct q2_mutex flush_lock;	/* serialises q2_flush(); before meta */
	struct q2_waitq waitq;
	u64 commit_seq;			/* q2_store()d, watched by sleepers */
	struct q2_write *inflight;	/* plans awaiting their commit */
	u64 alloc_end;			/* end of all allocations: q2_load() */
	u64 grown_from;			/* file size before q2_grow_ahead() */
	u64 zero_from;			/* clusters from here never written */

	/* Refcounts. */
	/*
	 * The table in host order, up to its last block in use: a table is a
	 * cluster or more on disk (64 KiB covers 16 TiB) and nearly all zeros,
	 * so only the @rt_mem entries from the start are held (q2_rt_block()).
	 */
	u64 *rt;
	u32 rt_entries;			/* entries in the table on disk */
	u32 rt_mem;			/* entries in @rt; past them, zeros */
	/*
	 * Bit (cluster index % Q2_RB_FILTER_BITS) set for every refcount
	 * block: a lock-free "surely not a refcount block" for the write
	 * fast path, and the cheap first test of q2_write_hits_metadata().
	 * Bits are only ever set (refcount blocks are never freed).
	 */
	u64 rb_filter[Q2_RB_FILTER_BITS / 64];
	/*
	 * Write mode, under meta: the refcount blocks' cluster indices,
	 * sorted (a table may name thousands: 512-byte clusters, or large
	 * images), for q2_write_hits_metadata().
	 */
	u64 *rb_set;
	u32 rb_set_n;
	u32 rb_set_cap;
	u32 rb_bits;			/* log2 of refcounts per block */
	u64 rc_max;
	u64 free_hint;			/* cluster index; none free below */
	struct q2_rb_slot *rb;
	u32 rb_nr;
	u32 rb_used;
	u32 rb_hand;

	/* Deferred drops, and freed clusters awaiting the barrier. */
	struct q2_drop *drops;
	u32 nr_drops;
	struct q2_quar *quar;
	u32 nr_quar;
	u64 quar_seq;

	/* Active L1 write-back: one bit per 512-byte sector. */
	u8 *l1_dirty;
	u8 sbuf[512];
};

/* Stored feature-name record: type byte, bit byte, NUL-terminated name. */
#define Q2_FEATURE_REC_LEN	(2 + Q2_FEATURE_NAME_LEN + 1)

/* l2cache.c (get/install/room under l2.lock; writeback under meta only) */
int q2_l2_cache_init(struct q2_image *img, u64 budget);
void q2_l2_cache_destroy(struct q2_image *img);
int q2_l2_get(struct q2_image *img, u64 offset, struct q2_l2_slot **slot);
void q2_l2_put(struct q2_l2_slot *slot);
struct q2_l2_slot *q2_l2_peek(struct q2_image *img, u64 offset);
int q2_l2_install(struct q2_image *img, u64 offset, const u8 *src,
		  struct q2_l2_slot **slot);
unsigned int q2_l2_room(struct q2_image *img);
bool q2_l2_any_dirty(struct q2_image *img);
int q2_l2_writeback(struct q2_image *img);

/* map.c */
int q2_check_l2_offset(struct q2_image *img, u64 l2_off, u64 l1_index);
const char *q2_hits_metadata(const struct q2_image *img, u64 off, u64 len);
const char *q2_write_hits_metadata(const struct q2_image *img, u64 off,
				   u64 len);
int q2_check_entry(struct q2_image *img, u64 e, u64 bm, u64 guest);

/* refcount.c (all under meta) */
int q2_rb_get(struct q2_image *img, u64 offset, bool fresh,
	      struct q2_rb_slot **slot);
void q2_rb_put(struct q2_rb_slot *slot);
int q2_rb_writeback(struct q2_image *img);
int q2_refcount(struct q2_image *img, u64 ci, u64 *rc);
int q2_refcount_add(struct q2_image *img, u64 ci, int delta, u64 *rc);
int q2_alloc_clusters(struct q2_image *img, u32 want, bool exact, u64 *off,
		      u32 *got, bool *fresh);
void q2_free_now(struct q2_image *img, u64 off, u64 n);
/* Deallocate [@off, @off + @len) of the file; advisory (errors ignored). */
void q2_punch(struct q2_image *img, u64 off, u64 len);
int q2_drop(struct q2_image *img, u64 off, u64 n);
void q2_drops_apply(struct q2_image *img);
void q2_quar_lift(struct q2_image *img, u64 seq);
int q2_refcount_init(struct q2_image *img, u64 budget);
void q2_refcount_destroy(struct q2_image *img);

/* write.c */
int q2_write_failed(struct q2_image *img, const char *what, int err);
int q2_meta_write(struct q2_image *img, const void *buf, size_t len, u64 off,
		  const char *what);
int q2_file_flush(struct q2_image *img);
int q2_sync_locked(struct q2_image *img);

/* header.c */
Q2_PRINTF(2, 3)
void q2_log(const struct q2_image *img, const char *fmt, ...);

/*
 * @bytes rounded up to a whole cluster.  The mask must be 64 bits wide:
 * ~(cluster_size - 1) on the u32 alone is zero-extended and clears every
 * bit above 4 GiB (q2_trim_tail() once punched from the allocation end
 * modulo 4 GiB to the end of the file this way).
 */
static inline u64 q2_cluster_ceil(const struct q2_image *img, u64 bytes)
{
	return (bytes + img->cluster_size - 1) & ~((u64)img->cluster_size - 1);
}

/* Bytes of the clusters an L1 table of @entries occupies. */
static inline u64 q2_l1_span(const struct q2_image *img, u32 entries)
{
	return q2_cluster_ceil(img, (u64)entries * 8);
}

static inline bool q2_ranges_overlap(u64 a, u64 alen, u64 b, u64 blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

static inline u64 q2_max64(u64 a, u64 b)
{
	return a > b ? a : b;
}

static inline u64 q2_min64(u64 a, u64 b)
{
	return a < b ? a : b;
}

/* Offset of the refcount block for range @bi; 0 where there is none. */
static inline u64 q2_rt_block(const struct q2_image *img, u64 bi)
{
	return bi < img->rt_mem ? img->rt[bi] : 0;
}

/* Note the refcount block at host offset @off in img->rb_filter. */
static inline void q2_rb_filter_add(struct q2_image *img, u64 off)
{
	u64 bit = (off >> img->cluster_bits) % Q2_RB_FILTER_BITS;

	q2_store(&img->rb_filter[bit / 64],
		 q2_load(&img->rb_filter[bit / 64]) | (1ULL << (bit % 64)));
}

/* False if the cluster at @off is surely no refcount block (no lock). */
static inline bool q2_rb_filter_maybe(const struct q2_image *img, u64 off)
{
	u64 bit = (off >> img->cluster_bits) % Q2_RB_FILTER_BITS;

	return q2_load(&img->rb_filter[bit / 64]) & (1ULL << (bit % 64));
}

/* Entries to hold (rt_mem) so that the first @need are: whole steps of
 * Q2_RT_MEM_STEP, at most the @entries of the table on disk. */
static inline u64 q2_rt_held(u64 need, u64 entries)
{
	return q2_min64(entries, (need + Q2_RT_MEM_STEP - 1) / Q2_RT_MEM_STEP *
				 Q2_RT_MEM_STEP);
}

/*
 * Refcount @i of a block of 2^@order-bit refcounts: below 8 bits packed
 * from the least significant bit of each byte, from 8 bits big-endian, as
 * QEMU stores them.
 */
static inline u64 q2_rc_get(const u8 *blk, u32 order, u64 i)
{
	u32 bits, sh;

	switch (order) {
	case 3:
		return blk[i];
	case 4:
		return q2_be16(blk + 2 * i);
	case 5:
		return q2_be32(blk + 4 * i);
	case 6:
		return q2_be64(blk + 8 * i);
	default:
		bits = 1U << order;
		sh = (u32)(i & ((8U >> order) - 1)) * bits;
		return (blk[i >> (3 - order)] >> sh) & ((1U << bits) - 1);
	}
}

static inline void q2_rc_set(u8 *blk, u32 order, u64 i, u64 v)
{
	u32 bits, sh, mask;
	u8 *b;

	switch (order) {
	case 3:
		blk[i] = (u8)v;
		break;
	case 4:
		q2_put_be16(blk + 2 * i, (u16)v);
		break;
	case 5:
		q2_put_be32(blk + 4 * i, (u32)v);
		break;
	case 6:
		q2_put_be64(blk + 8 * i, v);
		break;
	default:
		bits = 1U << order;
		mask = (1U << bits) - 1;
		sh = (u32)(i & ((8U >> order) - 1)) * bits;
		b = &blk[i >> (3 - order)];
		*b = (u8)((*b & ~(mask << sh)) | (((u32)v & mask) << sh));
		break;
	}
}

#endif /* Q2_PRIV_H */
