/* SPDX-License-Identifier: GPL-2.0 */
/*
 * qcow2 format core: the API the kernel glue and the userspace tools use.
 *
 * The core is environment-neutral C (see shim.h): it parses and validates
 * an image, translates guest offsets to host extents and decompresses
 * compressed clusters.  It never touches a struct file, a bio or a page:
 * file access goes through struct q2_file_ops supplied by the caller, and
 * the caller issues the data I/O itself from the extents q2_map() returns.
 *
 * Read-only for now.  The structures are laid out for the write path (L2
 * cache entries carry pin counts and a dirty flag, the refcount table is
 * validated at open, the ops table has pwrite and flush slots).
 *
 * Thread safety: after q2_open() returns, q2_map(), q2_read_compressed(),
 * q2_chain_map(), q2_cache_stats() and the info accessors may be called
 * concurrently from any number of threads; q2_close() must not race with
 * any of them.
 */
#ifndef Q2_QCOW2_H
#define Q2_QCOW2_H

#include "shim.h"

#define Q2_MAGIC		0x514649fbU	/* "QFI\xfb" */
#define Q2_MAGIC_LEN		4

/* Longest error message q2_open()/q2_chain_check() write, plus the NUL. */
#define Q2_ERR_MAX		76

/* Default L2 cache budget; the cache always holds at least Q2_L2_MIN. */
#define Q2_L2_CACHE_DEFAULT	(1024 * 1024)
#define Q2_L2_MIN		4

/* Deepest chain q2_chain_check() accepts: top + VDISK_BACKING_MAX. */
#define Q2_CHAIN_MAX		17

/**
 * struct q2_file_ops - how the core reaches the image file
 * @pread: read exactly @len bytes at @off into @buf: 0, or -errno (a short
 *	read is -EIO).  Called with core mutexes held; may sleep.
 * @size: current size of the file in bytes.
 * @pwrite: reserved for the write path; may be NULL.
 * @flush: reserved for the write path; may be NULL.
 */
struct q2_file_ops {
	int (*pread)(void *file, void *buf, size_t len, u64 off);
	u64 (*size)(void *file);
	int (*pwrite)(void *file, const void *buf, size_t len, u64 off);
	int (*flush)(void *file);
};

/*
 * Q2_OPEN_HEADER_ONLY: parse the header, extensions and snapshot table for
 * info tools, but do not load the L1 table; q2_map() then fails with
 * -EINVAL.  Encrypted images and external data files are accepted in this
 * mode (they are reported by q2_get_info()), since no data is translated.
 */
#define Q2_OPEN_HEADER_ONLY	BIT(0)
#define Q2_OPEN_ALL		Q2_OPEN_HEADER_ONLY

/**
 * struct q2_open_args - how to open an image
 * @ops: file access
 * @file: opaque handle passed to @ops
 * @flags: Q2_OPEN_*
 * @snapshot: internal snapshot to open (its id, else its name, as qemu-img
 *	matches), or NULL for the active state.  A snapshot is read-only.
 * @l2_cache_bytes: L2 table cache budget; 0 picks Q2_L2_CACHE_DEFAULT.  At
 *	least Q2_L2_MIN tables are cached whatever the budget.  Tables are
 *	allocated on first use, so small images use less.
 * @name: prefix for runtime warnings (e.g. "vdisk0"); may be NULL.
 * @err: receives one human-readable reason on failure (at most
 *	Q2_ERR_MAX - 1 characters, e.g. "cluster_bits 31 out of range 9..21");
 *	may be NULL.
 * @err_len: size of @err.
 */
struct q2_open_args {
	const struct q2_file_ops *ops;
	void *file;
	unsigned int flags;
	const char *snapshot;
	u64 l2_cache_bytes;
	const char *name;
	char *err;
	size_t err_len;
};

struct q2_image;

/*
 * Returns 0 and the image in *@out, or -errno with a message in
 * @args->err: -EINVAL for a malformed image, -EOPNOTSUPP for a valid one
 * using something this core refuses (encryption, external data file,
 * unknown feature), -ENOENT for an unknown snapshot, -ENOMEM, or what
 * @ops->pread returned.
 */
int q2_open(const struct q2_open_args *args, struct q2_image **out);
void q2_close(struct q2_image *img);

/* True if @buf (at least Q2_MAGIC_LEN bytes) starts with the qcow2 magic. */
bool q2_probe(const void *buf, size_t len);

/* Bytes the guest sees: the header's size, or the open snapshot's. */
u64 q2_virtual_size(const struct q2_image *img);
u32 q2_cluster_size(const struct q2_image *img);

/**
 * enum q2_type - what a guest range is backed by
 * @Q2_UNALLOC: nothing in this image: read the backing layer (or zeros).
 * @Q2_ZERO: reads as zeros; the backing layer is not consulted.
 * @Q2_DATA: stored uncompressed at @host_off, contiguous for @len bytes.
 * @Q2_COMPRESSED: part of one compressed cluster; read it with
 *	q2_read_compressed().
 */
enum q2_type {
	Q2_UNALLOC,
	Q2_ZERO,
	Q2_DATA,
	Q2_COMPRESSED,
};

/**
 * struct q2_extent - one uniform guest range, as q2_map() found it
 * @type: see enum q2_type
 * @len: guest bytes covered, from the offset asked for
 * @host_off: %Q2_DATA: file offset of the first byte
 * @comp_off: %Q2_COMPRESSED: file offset of the compressed bytes
 * @comp_len: %Q2_COMPRESSED: compressed bytes to read (to EOF at most)
 * @cluster_off: %Q2_COMPRESSED: offset of the first byte in the cluster
 */
struct q2_extent {
	enum q2_type type;
	u64 len;
	u64 host_off;
	u64 comp_off;
	u32 comp_len;
	u32 cluster_off;
};

/*
 * Map the longest uniform prefix of [@guest_off, @guest_off + @len), @len
 * clipped to the virtual size.  Contiguous data clusters (or subclusters)
 * of one L2 table coalesce into one extent; a compressed extent never
 * leaves its cluster.  Data stored past the end of the file (a file that
 * ends inside a cluster) maps as zeros, as QEMU reads it.
 *
 * Returns 0, -EINVAL for a range outside the disk or a header-only image,
 * -EIO for corrupt metadata (logged once, rate-limited), -ENOMEM, or a
 * pread error.
 */
int q2_map(struct q2_image *img, u64 guest_off, u64 len,
	   struct q2_extent *ext);

/*
 * Copy @len bytes, starting @skip bytes into the compressed extent @ext
 * (from q2_map() on @img), into @buf.  The last decompressed cluster is
 * kept, so calling this once per page of one extent decompresses once.
 * Returns 0, -EINVAL, -EIO (corrupt compressed data), -ENOMEM or a pread
 * error.
 */
int q2_read_compressed(struct q2_image *img, const struct q2_extent *ext,
		       u64 skip, void *buf, size_t len);

struct q2_cache_stats {
	u64 hits;
	u64 misses;
	u32 tables;		/* capacity, in tables */
	u32 used;		/* tables currently allocated */
	u64 table_bytes;	/* bytes per table */
};

void q2_cache_stats(struct q2_image *img, struct q2_cache_stats *st);

/* Feature bits (header fields incompatible/compatible/autoclear). */
#define Q2_INCOMPAT_DIRTY	BIT_ULL(0)
#define Q2_INCOMPAT_CORRUPT	BIT_ULL(1)
#define Q2_INCOMPAT_DATA_FILE	BIT_ULL(2)
#define Q2_INCOMPAT_COMPRESSION	BIT_ULL(3)
#define Q2_INCOMPAT_EXTL2	BIT_ULL(4)
#define Q2_INCOMPAT_KNOWN	0x1fULL
#define Q2_COMPAT_LAZY_REFCOUNTS	BIT_ULL(0)
#define Q2_AUTOCLEAR_BITMAPS	BIT_ULL(0)
#define Q2_AUTOCLEAR_DATA_FILE_RAW	BIT_ULL(1)

enum q2_feature_type {
	Q2_FEAT_INCOMPAT,
	Q2_FEAT_COMPAT,
	Q2_FEAT_AUTOCLEAR,
};

#define Q2_CRYPT_NONE		0
#define Q2_CRYPT_AES		1
#define Q2_CRYPT_LUKS		2

/**
 * struct q2_snapshot - one internal snapshot
 * @id: unique id string (NUL-terminated copy)
 * @name: name ("tag" in qemu-img; NUL-terminated copy)
 * @l1_offset: the snapshot's L1 table
 * @l1_size: entries in it
 * @disk_size: virtual size when taken (extra data; else the image's size)
 * @vm_state_size: bytes of saved VM state
 * @date_sec: creation time, seconds since the Epoch
 * @date_nsec: sub-second part of @date_sec
 * @vm_clock_nsec: guest run time when taken
 * @icount: record/replay instruction count, or ~0ULL if absent
 * @extra_size: bytes of extra data in the table entry
 */
struct q2_snapshot {
	const char *id;
	const char *name;
	u64 l1_offset;
	u32 l1_size;
	u64 disk_size;
	u64 vm_state_size;
	u32 date_sec;
	u32 date_nsec;
	u64 vm_clock_nsec;
	u64 icount;
	u32 extra_size;
};

/**
 * struct q2_info - everything qemu-img info shows about the format
 *
 * Strings and the snapshot array belong to the image and live until
 * q2_close().  Absent strings are NULL.
 */
struct q2_info {
	u32 version;			/* 2 or 3 */
	u64 virtual_size;		/* header size (the active state) */
	u64 open_size;			/* q2_virtual_size() */
	u32 cluster_bits;
	u32 cluster_size;
	u32 refcount_order;
	u32 refcount_bits;
	u32 header_length;
	u64 incompatible;
	u64 compatible;
	u64 autoclear;
	u32 compression_type;		/* Q2_COMP_* */
	u32 crypt_method;		/* Q2_CRYPT_* */
	bool dirty;
	bool corrupt;
	bool extended_l2;
	bool lazy_refcounts;
	bool has_data_file;
	bool has_bitmaps;		/* bitmaps extension present */
	bool has_crypto_header;		/* FDE header extension present */
	const char *backing_file;
	const char *backing_format;
	const char *data_file;		/* external data file name extension */
	u32 l1_size;			/* active L1 */
	u64 l1_table_offset;
	u64 refcount_table_offset;
	u32 refcount_table_clusters;
	u32 nb_snapshots;
	u64 snapshots_offset;
	const struct q2_snapshot *snapshots;
	int open_snapshot;		/* index in @snapshots, or -1 */
	u64 file_size;
};

void q2_get_info(const struct q2_image *img, struct q2_info *info);

/*
 * Name of a feature bit: the image's feature name table first, then the
 * names this core knows.  NULL if neither has one.  The result points
 * into @img or is static; the table's names are NUL-terminated copies.
 */
const char *q2_feature_name(const struct q2_image *img,
			    enum q2_feature_type type, unsigned int bit);

/* "zlib" or "zstd", as qemu-img names them. */
const char *q2_compression_name(u32 type);

/**
 * struct q2_layer - one layer of a backing chain
 * @img: the layer's qcow2 image, or NULL for a raw layer
 * @raw_size: raw layer: its size in bytes (the file's size)
 * @path: display path; its final component must match the backing name
 *	recorded by the layer above (the kernel cannot resolve paths, so
 *	userspace resolves them and the kernel checks consistency)
 * @id: opaque identity (e.g. device and inode) used to refuse loops
 */
struct q2_layer {
	struct q2_image *img;
	u64 raw_size;
	const char *path;
	u64 id[2];
};

/* @layers[0] is the top (the image attached), then its backing files. */
struct q2_chain {
	const struct q2_layer *layers;
	unsigned int nr;
};

/**
 * struct q2_chain_extent - which layer serves a guest range
 * @layer: index of the serving layer: for %Q2_DATA the file to read (a
 *	raw layer's @ext.host_off is the guest offset), for %Q2_COMPRESSED
 *	the image to pass to q2_read_compressed(); for %Q2_ZERO the layer
 *	that decided it, or @nr when no layer has the range.
 * @ext: the extent within that layer (never %Q2_UNALLOC)
 */
struct q2_chain_extent {
	unsigned int layer;
	struct q2_extent ext;
};

/*
 * Map the longest prefix of [@off, @off + @len) served uniformly by one
 * layer.  Unallocated ranges go on to the next layer; ranges past a
 * layer's virtual size read as zeros; unallocated at the bottom reads as
 * zeros.  Iterative.  @len is clipped to the top layer's size.
 */
int q2_chain_map(const struct q2_chain *chain, u64 off, u64 len,
		 struct q2_chain_extent *cx);

/*
 * Check that @chain is consistent: every qcow2 layer naming a backing file
 * has a next layer and no other layer does; a backing format extension
 * matches the next layer's format; the final path component of each next
 * layer's @path equals that of the recorded backing name; no identity
 * appears twice; at most Q2_CHAIN_MAX layers.  Returns 0 or -EINVAL (or
 * -ELOOP) with a reason in @err.
 */
int q2_chain_check(const struct q2_chain *chain, char *err, size_t err_len);

/* Virtual size of a layer: its image's, or a raw layer's @raw_size. */
u64 q2_layer_size(const struct q2_layer *layer);

#endif /* Q2_QCOW2_H */
