/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userspace helpers around the qcow2 core: POSIX and in-memory file ops,
 * and opening a whole backing chain the way qemu-img resolves it.
 */
#ifndef Q2U_H
#define Q2U_H

#include <stdio.h>

#include "qcow2.h"

/* A file opened read-only; @size is sampled by q2u_posix_ops.size. */
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

/* An opened chain, top first. */
struct q2u_chain {
	unsigned int nr;
	struct q2_layer layers[Q2_CHAIN_MAX];
	struct q2u_file files[Q2_CHAIN_MAX];
	char *paths[Q2_CHAIN_MAX];
	struct q2_chain chain;
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

/* Read [@off, @off + @len) of the chain's guest view into @buf. */
int q2u_chain_read(struct q2u_chain *c, void *buf, u64 off, size_t len);

/* info.c: qemu-img-info-like description of the qcow2 image at @path. */
int q2_print_info(FILE *out, const char *path, bool json);

#endif /* Q2U_H */
