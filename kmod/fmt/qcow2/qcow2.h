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
 * Writes (Q2_OPEN_WRITE): the caller writes guest data itself, at host
 * ranges the core plans (q2_write_begin() / q2_write_commit()); the core
 * allocates clusters, copies on write, keeps refcounts exact and orders
 * its metadata writes as QEMU does, so that a crash at any point leaves an
 * image qemu-img check finds consistent (at worst with leaked clusters).
 *
 * Thread safety: after q2_open() returns, q2_map(), q2_read_compressed(),
 * q2_chain_map(), q2_cache_stats(), the info accessors and, on a writable
 * image, q2_write_begin(), q2_write_commit(), q2_zero() and q2_flush() may
 * be called concurrently from any number of threads.  q2_resize() and
 * q2_close() must not race with anything on the image.
 *
 * Locking (writable images): one metadata mutex per image serialises
 * planning, commits, zeroing, allocation and cache write-back; it is held
 * across metadata I/O but never across the caller's data I/O nor the
 * copy-on-write I/O of q2_write_begin().  Readers take only the L2 cache
 * mutex (they never wait for a flush, except on a table cache miss while
 * the table is read).  Every entry point may sleep.
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
 * @size: current size of the file in bytes.  Sampled at open; the core
 *	grows the file by writing past its end and tracks the size itself.
 * @pwrite: write exactly @len bytes of @buf at @off (extending the file if
 *	needed): 0 or -errno.  Needed for Q2_OPEN_WRITE; may sleep.  Metadata
 *	writes are small and unaligned (8 bytes of an L1 entry, 12 bytes of
 *	the header): use buffered I/O, as for @pread.
 * @flush: make every completed write durable (fdatasync): 0 or -errno.
 *	Needed for Q2_OPEN_WRITE.
 * @punch: deallocate [@off, @off + @len) so that it reads as zeros and
 *	takes no space (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE); may be
 *	NULL.  Advisory: any error (-EOPNOTSUPP...) is ignored.
 * @grow: make the file @size bytes long, allocating [@from, @size) so that
 *	it reads as zeros and later writes there allocate nothing (fallocate
 *	mode 0).  Partial writes into new clusters in [@fill_from, @size) are
 *	expected (@fill_from == @size: none): write zeros over that part too
 *	if that makes such writes cheaper; never below @fill_from, which may
 *	hold data or metadata already.  May be NULL.  Advisory: on error the
 *	core extends the file by writing, as without.
 */
struct q2_file_ops {
	int (*pread)(void *file, void *buf, size_t len, u64 off);
	u64 (*size)(void *file);
	int (*pwrite)(void *file, const void *buf, size_t len, u64 off);
	int (*flush)(void *file);
	int (*punch)(void *file, u64 off, u64 len);
	int (*grow)(void *file, u64 from, u64 size, u64 fill_from);
};

/*
 * Q2_OPEN_HEADER_ONLY: parse the header, extensions and snapshot table for
 * info tools, but do not load the L1 table; q2_map() then fails with
 * -EINVAL.  Encrypted images and external data files are accepted in this
 * mode (they are reported by q2_get_info()), since no data is translated.
 */
#define Q2_OPEN_HEADER_ONLY	BIT(0)
/*
 * Q2_OPEN_WRITE: open the active state for writing.  Refused (-EROFS, with
 * a reason in @err) for a snapshot, an image marked corrupt or dirty
 * (qemu-img check -r all repairs both), and ops without pwrite/flush;
 * encryption and external data files are refused in every mode.  An
 * inconsistent refcount table or metadata with a zero refcount is -EINVAL.
 * Version 2 images and lazy_refcounts images are writable (refcounts are
 * kept exact; the dirty bit is never set).  Unknown autoclear bits are
 * cleared on the first modification, as the spec requires.
 */
#define Q2_OPEN_WRITE		BIT(1)
#define Q2_OPEN_ALL		(Q2_OPEN_HEADER_ONLY | Q2_OPEN_WRITE)

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
 * @barrier: writable images: called by q2_flush(), with no core lock held,
 *	before clusters freed since the previous call may get a new owner.
 *	It must return only when every data write to a host range planned
 *	in place (q2_write_begin() returned with @commit false) before the
 *	call has completed, so that no stale write lands in a recycled
 *	cluster.  It must not wait for anything that needs this image's
 *	locks (e.g. a request blocked in q2_write_begin()).  NULL: the
 *	caller guarantees no such writes are ever outstanding at q2_flush().
 * @barrier_ctx: passed to @barrier.
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
	void (*barrier)(void *ctx);
	void *barrier_ctx;
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

/*
 * Free the image.  A writable image is flushed first (q2_close_clean()),
 * errors only logged.  No other call on @img may be running or follow.
 */
void q2_close(struct q2_image *img);

/*
 * Writable images: q2_flush(), then write back the refcount decrements
 * that flush released and flush again, so that qemu-img check finds no
 * leaks; then free the image as q2_close() does.  Returns 0 or the first
 * error (the image is freed either way).
 */
int q2_close_clean(struct q2_image *img);

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
 * q2_map() for callers that must not block (the kernel's inline read
 * path): the same answer, or -EAGAIN when that would need I/O (the L2
 * table is not cached) or waiting (the cache lock is taken).
 */
int q2_map_nowait(struct q2_image *img, u64 guest_off, u64 len,
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
	bool writable;			/* opened with Q2_OPEN_WRITE */
	bool failed;			/* a write failed: writes refused */
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
 * @ops, @file: a raw layer's file, read by q2_write_begin() for
 *	copy-on-write (qcow2 layers use their image's); may be NULL otherwise
 */
struct q2_layer {
	struct q2_image *img;
	u64 raw_size;
	const char *path;
	u64 id[2];
	const struct q2_file_ops *ops;	/* raw layer: reads for q2_write_begin() */
	void *file;
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

/* ---- Writing ------------------------------------------------------------ */

/**
 * struct q2_write - one planned write (caller-owned, opaque but for the
 *	three results; it lives from q2_write_begin() until the commit)
 * @host_off: where in the image file the caller writes the guest data
 * @len: guest bytes planned, starting at the offset asked for (at least
 *	one, at most what was asked); the caller writes exactly these
 * @commit: true if q2_write_commit() must follow the data write; false
 *	for an in-place write (commit is then optional and does nothing)
 */
struct q2_write {
	u64 host_off;
	u64 len;
	bool commit;
	/* Private to the core. */
	u8 kind;
	bool fresh;
	u32 nr_cl;
	u64 guest_off;
	u64 first_cl;
	u64 host_cl;
	struct q2_write *next;
	struct q2_write **pprev;
};

/*
 * Plan the longest prefix of [@off, @off + @len) (clipped to the virtual
 * size) that is one contiguous host range, in @w.  @chain is the image's
 * chain (layers[0].img == @img; raw layers need @ops and @file) or NULL
 * for an image without a backing file; it supplies copy-on-write data.
 *
 *  - In place (@w->commit false): the clusters are allocated and owned
 *    (COPIED).  Write @w->len bytes at @w->host_off; nothing else.
 *  - Allocating (@w->commit true): new clusters are allocated, or owned
 *    clusters gain allocated subclusters; the parts of the touched
 *    clusters outside the range are already filled (copied from the old
 *    cluster, decompressed, read from the backing chain, or zeroed) when
 *    this returns.  Write the data at @w->host_off, then call
 *    q2_write_commit() with the write's result.  Until the commit the
 *    guest still reads the old contents, and other calls that would
 *    change the same guest clusters' mapping (allocating plans, q2_zero())
 *    sleep; the plan must not be abandoned without its commit.
 *
 * In-place plans are usually made under the L2 cache mutex alone, so
 * they do not wait for a q2_flush() in progress.  May sleep (metadata
 * I/O, copy-on-write I/O, waiting for another write's commit).
 * Returns 0, -EINVAL (bad range or chain), -EROFS (not
 * writable), -EIO (corrupt metadata, or the image failed earlier),
 * -ENOSPC/-EFBIG (host offsets or the refcount table at their limits),
 * -ENOMEM, or an I/O error.
 */
int q2_write_begin(struct q2_image *img, const struct q2_chain *chain,
		   u64 off, u64 len, struct q2_write *w);

/*
 * The in-place case of q2_write_begin() for a caller that must not sleep
 * (an inline fast path): all of [@off, @off + @len) is one run of owned,
 * allocated clusters in a cached L2 table, found without waiting for any
 * lock.  0 with @w (@w->commit false), or -EAGAIN: use q2_write_begin().
 */
int q2_write_nowait(struct q2_image *img, u64 off, u64 len,
		    struct q2_write *w);

/*
 * Finish a write planned by q2_write_begin(): @err is the result of the
 * caller's data write.  @err == 0: the L2 entries now point at the new
 * data (COPIED set; subcluster bits updated) and the old clusters are
 * released at the next q2_flush().  @err != 0: newly allocated clusters
 * are freed and the mapping is unchanged.  Wakes writers waiting for these
 * clusters.  Returns @err, or -EIO if the image failed.  May sleep.
 */
int q2_write_commit(struct q2_image *img, struct q2_write *w, int err);

#define Q2_ZERO_MAY_UNMAP	BIT(0)
#define Q2_DISCARD		BIT(1)

/*
 * Zero (or with Q2_DISCARD, discard) [@off, @off + @len) through metadata
 * only.  On return *@done is the end of the prefix handled.
 *
 * Zeroing handles whole clusters (v3: the zero flag, the host cluster
 * kept allocated unless Q2_ZERO_MAY_UNMAP or it was compressed; v2
 * without a backing file: deallocation; nothing where the range reads as
 * zeros already) and, with extended L2, whole subclusters (zero bits).
 * If *@done < @off + @len, the caller must write zeros as ordinary data
 * (q2_write_begin()/commit) over [*@done, min(@off + @len, next multiple
 * of q2_zero_granule() above *@done)) and call q2_zero() again for the
 * rest: a partial head or tail granule, a v2 cluster over a backing file,
 * a compressed cluster partly zeroed with extended L2.
 *
 * Q2_DISCARD is advisory and leaves nothing to the caller (*@done is the
 * end): each whole cluster becomes unallocated if the chain has no
 * backing layer, else reads as zeros (v3) or is left alone (v2); partial
 * clusters are left alone.  Host clusters freed here are punched once the
 * change is durable (next q2_flush()).  May sleep.  Returns 0 or -errno.
 */
int q2_zero(struct q2_image *img, const struct q2_chain *chain, u64 off,
	    u64 len, unsigned int flags, u64 *done);

/* What q2_zero() handles whole: the subcluster, else the cluster size. */
u32 q2_zero_granule(const struct q2_image *img);

/*
 * Make every write committed (and every in-place data write completed)
 * before the call durable: write back the refcount blocks, flush, the
 * dirty L2 tables, flush, the dirty L1 entries, flush.  Then release the
 * clusters whose references were dropped (their refcount decrements are
 * written back later), call the barrier and let them be reused.  May
 * sleep.  Returns 0, or -EIO after a failure (the image then refuses
 * further writes and is marked corrupt).
 */
int q2_flush(struct q2_image *img);

/*
 * The image's file failed to flush outside q2_flush() (the device's
 * cache-mode change fsyncs it): pages the core wrote may not be on disk,
 * so the image is handled as after a failed flush of its own (writes
 * refused, marked corrupt).  Nothing for an image opened read-only.
 * Takes flush_lock and meta.
 */
void q2_flush_failed(struct q2_image *img, int err);

/*
 * Grow the virtual size to @new_size (a multiple of 512): the L1 table is
 * moved to a larger one if needed.  The new range is unallocated, so over
 * a backing file it reads the backing file (call q2_zero() over it to
 * hide it, as qemu-img resize does).  Shrinking is -EOPNOTSUPP.  Must not
 * race with any other call on @img (quiesce the queue).  May sleep.
 */
int q2_resize(struct q2_image *img, u64 new_size);

/* True for an image opened with Q2_OPEN_WRITE that has not failed. */
bool q2_writable(const struct q2_image *img);

#endif /* Q2_QCOW2_H */
