/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userspace helpers around the qcow2 core: POSIX and in-memory file ops,
 * and opening a whole backing chain the way qemu-img resolves it.
 */
#ifndef Q2U_H
#define Q2U_H

#include <stdio.h>

#include "qcow2.h"

/*
 * A file; q2u_posix_ops reads, writes (pwrite, fdatasync, punch with
 * fallocate) and sizes it.
 */
struct q2u_file {
	int fd;
};

extern const struct q2_file_ops q2u_posix_ops;

/* An in-memory image.  Bytes at or past @len read as zeros up to @size
 * (a sparse tail), or as copies of @tile if it is set.
 */
struct q2u_mem {
	const u8 *data;
	size_t len;
	u64 size;
	const u8 *tile;
	size_t tile_len;
	u64 tile_off;
};

extern const struct q2_file_ops q2u_mem_ops;

/*
 * A writable in-memory file, growing up to @max bytes (pwrite past it is
 * -ENOSPC).  Not thread safe.  @fail_writes: the n-th pwrite from now
 * fails with -EIO (0: never).
 */
struct q2u_wmem {
	u8 *data;
	size_t len;
	size_t cap;
	size_t max;
	unsigned long writes;
	unsigned long flushes;
	u64 punched;
	unsigned long fail_writes;
};

extern const struct q2_file_ops q2u_wmem_ops;
int q2u_wmem_init(struct q2u_wmem *m, const void *data, size_t len, size_t max);
void q2u_wmem_free(struct q2u_wmem *m);

/* An opened chain, top first. */
struct q2u_chain {
	unsigned int nr;
	struct q2_layer layers[Q2_CHAIN_MAX];
	struct q2u_file files[Q2_CHAIN_MAX];
	char *paths[Q2_CHAIN_MAX];
	struct q2_chain chain;
	void (*barrier)(void *ctx);	/* set before q2u_chain_open_flags() */
	void *barrier_ctx;
};

/*
 * Open @top and its backing chain: the @nb_backing paths given (top first
 * below @top), or, if none, the names the images record, relative to each
 * image's directory, with the recorded backing format or probing.  The
 * top is opened at @snapshot if not NULL.  Returns 0 or -errno with a
 * message in @err.
 */
int q2u_chain_open(struct q2u_chain *c, const char *top,
		   const char *const *backing, unsigned int nb_backing,
		   const char *snapshot, u64 cache_bytes, char *err,
		   size_t err_len);
void q2u_chain_close(struct q2u_chain *c);

/*
 * As q2u_chain_open(), the top opened with @top_flags (Q2_OPEN_WRITE: the
 * file read-write); c->barrier and c->barrier_ctx, if set before the call,
 * go to the top's open.  Every layer's ops and file are set (raw layers
 * need them for copy-on-write).
 */
int q2u_chain_open_flags(struct q2u_chain *c, const char *top,
			 const char *const *backing, unsigned int nb_backing,
			 const char *snapshot, u64 cache_bytes,
			 unsigned int top_flags, char *err, size_t err_len);
/* Close, flushing a writable top (q2_close_clean()); its error. */
int q2u_chain_close_clean(struct q2u_chain *c);

/* Read [@off, @off + @len) of the chain's guest view into @buf. */
int q2u_chain_read(struct q2u_chain *c, void *buf, u64 off, size_t len);

/* info.c: qemu-img-info-like description of the qcow2 image at @path. */
int q2_print_info(FILE *out, const char *path, bool json);

#endif /* Q2U_H */
