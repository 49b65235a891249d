// SPDX-License-Identifier: GPL-2.0
/*
 * vdiskctl reads qcow2 headers, tables and backing chains, never a data
 * cluster, so it links this instead of the core's zlib and libzstd
 * decompressors: two shared libraries fewer to load on every run, which
 * under the test guest's 9p root was a quarter of an attach's time in
 * vdiskctl (Documentation/performance.rst).  A compressed read, if one is
 * ever added, fails loudly here rather than silently.
 */
#include "shim.h"

struct q2_dctx *q2_dctx_alloc(int type, u32 cluster_size)
{
	(void)type;
	(void)cluster_size;
	q2_shim_warn("vdiskctl: compressed clusters are not decoded here\n");
	return NULL;
}

void q2_dctx_free(struct q2_dctx *dctx)
{
	(void)dctx;
}

int q2_dctx_decompress(struct q2_dctx *dctx, const void *src, size_t slen,
		       void *dst, size_t dlen)
{
	(void)dctx;
	(void)src;
	(void)slen;
	(void)dst;
	(void)dlen;
	return -EOPNOTSUPP;
}
