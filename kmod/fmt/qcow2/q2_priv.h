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
#define Q2_SECTOR_BITS		9

#define Q2_SUBCLUSTERS		32
#define Q2_SUBCLUSTER_BITS	5

/**
 * struct q2_l2_slot - one cached L2 table
 * @offset: host offset of the table; 0 when the slot is empty
 * @data: the table as stored on disk (big-endian), one cluster
 * @pins: users currently holding the table (the write path will pin
 *	tables across I/O; a pinned slot is never evicted)
 * @dirty: modified in memory, to be written back before eviction (write
 *	path; never set yet)
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

struct q2_image {
	const struct q2_file_ops *ops;
	void *file;
	char name[24];
	u64 file_size;			/* sampled at open */
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

	/* Refcount table (validated for the write path, unused for reads). */
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
};

/* Stored feature-name record: type byte, bit byte, NUL-terminated name. */
#define Q2_FEATURE_REC_LEN	(2 + Q2_FEATURE_NAME_LEN + 1)

/* l2cache.c */
int q2_l2_cache_init(struct q2_image *img, u64 budget);
void q2_l2_cache_destroy(struct q2_image *img);
int q2_l2_get(struct q2_image *img, u64 offset, struct q2_l2_slot **slot);
void q2_l2_put(struct q2_l2_slot *slot);

/* map.c */
int q2_check_l2_offset(struct q2_image *img, u64 l2_off, u64 l1_index);

/* header.c */
Q2_PRINTF(2, 3)
void q2_log(const struct q2_image *img, const char *fmt, ...);

/* Bytes of the clusters an L1 table of @entries occupies. */
static inline u64 q2_l1_span(const struct q2_image *img, u32 entries)
{
	u64 bytes = (u64)entries * 8;

	return (bytes + img->cluster_size - 1) & ~(u64)(img->cluster_size - 1);
}

static inline bool q2_ranges_overlap(u64 a, u64 alen, u64 b, u64 blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

#endif /* Q2_PRIV_H */
