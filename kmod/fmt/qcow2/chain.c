// SPDX-License-Identifier: GPL-2.0
/*
 * Backing chains: which layer serves a guest range, and whether a chain the
 * caller assembled is the one the images describe.  The chain length is
 * image-controlled, so both walk it iteratively.
 */
#include "q2_priv.h"

u64 q2_layer_size(const struct q2_layer *layer)
{
	return layer->img ? q2_virtual_size(layer->img) : layer->raw_size;
}

int q2_chain_map(const struct q2_chain *chain, u64 off, u64 len,
		 struct q2_chain_extent *cx)
{
	const struct q2_layer *l;
	unsigned int i;
	u64 size;
	int ret;

	memset(cx, 0, sizeof(*cx));
	if (!chain->nr || !len)
		return -EINVAL;
	size = q2_layer_size(&chain->layers[0]);
	if (off >= size)
		return -EINVAL;

	for (i = 0; i < chain->nr; i++) {
		l = &chain->layers[i];
		size = q2_layer_size(l);
		cx->layer = i;
		/* A shorter backing layer reads as zeros past its end. */
		if (off >= size) {
			cx->ext.type = Q2_ZERO;
			cx->ext.len = len;
			return 0;
		}
		if (len > size - off)
			len = size - off;
		if (!l->img) {
			cx->ext.type = Q2_DATA;
			cx->ext.host_off = off;
			cx->ext.len = len;
			return 0;
		}
		ret = q2_map(l->img, off, len, &cx->ext);
		if (ret)
			return ret;
		if (cx->ext.type != Q2_UNALLOC)
			return 0;
		/* The next layer serves this much, no more. */
		len = cx->ext.len;
	}
	cx->layer = chain->nr;
	memset(&cx->ext, 0, sizeof(cx->ext));
	cx->ext.type = Q2_ZERO;
	cx->ext.len = len;
	return 0;
}

static const char *q2_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

Q2_PRINTF(4, 5)
static int q2_chain_fail(char *err, size_t err_len, int ret,
			 const char *fmt, ...)
{
	va_list ap;

	if (err && err_len) {
		va_start(ap, fmt);
		vsnprintf(err, err_len < Q2_ERR_MAX ? err_len : Q2_ERR_MAX,
			  fmt, ap);
		va_end(ap);
	}
	return ret;
}

static bool q2_same_id(const struct q2_layer *a, const struct q2_layer *b)
{
	/* An all-zero identity is "unknown" and matches nothing. */
	if (!a->id[0] && !a->id[1])
		return false;
	return a->id[0] == b->id[0] && a->id[1] == b->id[1];
}

static int q2_check_link(const struct q2_chain *chain, unsigned int i,
			 char *err, size_t err_len)
{
	const struct q2_layer *l = &chain->layers[i];
	const struct q2_layer *next = i + 1 < chain->nr ? l + 1 : NULL;
	const char *bname = l->img ? l->img->backing_name : NULL;
	const char *fmt;

	if (!l->img) {
		if (next)
			return q2_chain_fail(err, err_len, -EINVAL,
					     "layer %u is raw and cannot have a backing file",
					     i);
		return 0;
	}
	if (!bname && next)
		return q2_chain_fail(err, err_len, -EINVAL,
				     "layer %u has no backing file, but layer %u was given",
				     i, i + 1);
	if (bname && !next)
		return q2_chain_fail(err, err_len, -EINVAL,
				     "layer %u needs its backing file '%.32s'",
				     i, q2_basename(bname));
	if (!bname)
		return 0;
	fmt = next->img ? "qcow2" : "raw";
	if (l->img->has_backing_fmt && strcmp(l->img->backing_fmt, fmt))
		return q2_chain_fail(err, err_len, -EINVAL,
				     "layer %u: backing format is %.15s but layer %u is %s",
				     i, l->img->backing_fmt, i + 1, fmt);
	if (!next->path)
		return q2_chain_fail(err, err_len, -EINVAL,
				     "layer %u has no path to match backing name '%.24s'",
				     i + 1, q2_basename(bname));
	if (strcmp(q2_basename(next->path), q2_basename(bname)))
		return q2_chain_fail(err, err_len, -EINVAL,
				     "layer %u is '%.20s', backing name says '%.20s'",
				     i + 1, q2_basename(next->path),
				     q2_basename(bname));
	return 0;
}

int q2_chain_check(const struct q2_chain *chain, char *err, size_t err_len)
{
	unsigned int i, j;
	int ret;

	if (err && err_len)
		err[0] = 0;
	if (!chain->nr)
		return q2_chain_fail(err, err_len, -EINVAL, "empty backing chain");
	if (chain->nr > Q2_CHAIN_MAX)
		return q2_chain_fail(err, err_len, -EINVAL,
				     "backing chain of %u layers exceeds %u",
				     chain->nr, Q2_CHAIN_MAX);
	for (i = 0; i < chain->nr; i++) {
		for (j = 0; j < i; j++)
			if (q2_same_id(&chain->layers[i], &chain->layers[j]))
				return q2_chain_fail(err, err_len, -ELOOP,
						     "backing chain loop: layer %u is layer %u again",
						     i, j);
		ret = q2_check_link(chain, i, err, err_len);
		if (ret)
			return ret;
	}
	return 0;
}
