// SPDX-License-Identifier: GPL-2.0
/*
 * Refcounts for the write path: the refcount block cache, cluster
 * allocation (creating refcount blocks and growing the refcount table as
 * QEMU does), and releasing clusters.
 *
 * Releasing is deferred twice.  A reference dropped in memory (an L2 entry
 * moved to a new cluster, a cluster zeroed or discarded, a shared L2 table
 * copied) is queued as a "drop" and decremented only when the change that
 * dropped it is durable (q2_sync_locked()).  A cluster whose refcount then
 * reaches zero is punched and "quarantined": the allocator skips it until
 * q2_flush() has called the caller's barrier, so that no in-place data
 * write planned before it was freed can land after it gets a new owner.
 *
 * Everything here runs under img->meta.  Refcounts are kept exact: every
 * increment reaches the file before any mapping that relies on it (the
 * block cache is written back and flushed before L2 tables are), and a
 * new refcount block is on disk before the table entry naming it.
 */
#include "q2_priv.h"

int q2_refcount_init(struct q2_image *img, u64 budget)
{
	u64 nr;

	if (!budget)
		budget = Q2_L2_CACHE_DEFAULT;
	/* A quarter of the L2 budget, as QEMU sizes its refcount cache. */
	nr = (budget / 4) >> img->cluster_bits;
	if (nr < Q2_RB_MIN)
		nr = Q2_RB_MIN;
	if (nr > Q2_RB_MAX_SLOTS)
		nr = Q2_RB_MAX_SLOTS;
	img->rb = q2_zalloc(sizeof(*img->rb) * nr);
	img->drops = q2_alloc(sizeof(*img->drops) * Q2_DROPS_MAX);
	img->quar = q2_alloc(sizeof(*img->quar) * Q2_QUAR_MAX);
	if (!img->rb || !img->drops || !img->quar) {
		q2_refcount_destroy(img);
		return -ENOMEM;
	}
	img->rb_nr = (u32)nr;
	return 0;
}

void q2_refcount_destroy(struct q2_image *img)
{
	u32 i;

	for (i = 0; img->rb && i < img->rb_used; i++)
		q2_free(img->rb[i].data);
	q2_free(img->rb);
	q2_free(img->drops);
	q2_free(img->quar);
	img->rb = NULL;
	img->drops = NULL;
	img->quar = NULL;
	img->rb_used = 0;
	img->rb_nr = 0;
}

/* ---- the refcount block cache ------------------------------------------ */

static int q2_rb_write(struct q2_image *img, struct q2_rb_slot *s)
{
	int ret = q2_meta_write(img, s->data, img->cluster_size, s->offset,
				"refcount block");

	if (!ret)
		s->dirty = false;
	return ret;
}

int q2_rb_writeback(struct q2_image *img)
{
	u32 i;
	int ret;

	for (i = 0; i < img->rb_used; i++) {
		if (!img->rb[i].dirty || !img->rb[i].offset)
			continue;
		ret = q2_rb_write(img, &img->rb[i]);
		if (ret)
			return ret;
	}
	return 0;
}

static int q2_rb_victim(struct q2_image *img)
{
	struct q2_rb_slot *s;
	u32 scanned;

	if (img->rb_used < img->rb_nr) {
		s = &img->rb[img->rb_used];
		s->data = q2_alloc(img->cluster_size);
		if (!s->data)
			return -ENOMEM;
		return (int)img->rb_used++;
	}
	for (scanned = 0; scanned < 2 * img->rb_nr; scanned++) {
		u32 idx = img->rb_hand;

		s = &img->rb[idx];
		img->rb_hand = idx + 1 < img->rb_nr ? idx + 1 : 0;
		if (s->pins)
			continue;
		if (s->referenced) {
			s->referenced = false;
			continue;
		}
		return (int)idx;
	}
	return -EBUSY;		/* every slot pinned: a bug, at most 2 pins */
}

/*
 * The block at @offset, pinned; @fresh: a new block, zeroed and dirty
 * instead of read.  A dirty victim is written back first (refcount blocks
 * depend on nothing).
 */
int q2_rb_get(struct q2_image *img, u64 offset, bool fresh,
	      struct q2_rb_slot **slot)
{
	struct q2_rb_slot *s;
	int idx, ret;
	u32 i;

	for (i = 0; i < img->rb_used; i++) {
		s = &img->rb[i];
		if (s->offset != offset)
			continue;
		if (fresh) {
			memset(s->data, 0, img->cluster_size);
			s->dirty = true;
		}
		s->referenced = true;
		s->pins++;
		*slot = s;
		return 0;
	}
	idx = q2_rb_victim(img);
	if (idx < 0)
		return idx;
	s = &img->rb[idx];
	if (s->dirty && s->offset) {
		ret = q2_rb_write(img, s);
		if (ret)
			return ret;
	}
	s->offset = 0;
	s->dirty = false;
	if (fresh) {
		memset(s->data, 0, img->cluster_size);
		s->dirty = true;
	} else {
		ret = img->ops->pread(img->file, s->data, img->cluster_size,
				      offset);
		if (ret)
			return ret;
	}
	s->offset = offset;
	s->pins = 1;
	s->referenced = true;
	*slot = s;
	return 0;
}

void q2_rb_put(struct q2_rb_slot *slot)
{
	if (slot->pins)
		slot->pins--;
}

/* ---- refcounts ---------------------------------------------------------- */

static u64 q2_rb_index(const struct q2_image *img, u64 ci)
{
	return ci & ((1ULL << img->rb_bits) - 1);
}

/* Refcount of host cluster @ci: 0 where no block covers it. */
int q2_refcount(struct q2_image *img, u64 ci, u64 *rc)
{
	u64 blk = q2_rt_block(img, ci >> img->rb_bits);
	struct q2_rb_slot *s;
	int ret;

	*rc = 0;
	if (!blk)
		return 0;
	ret = q2_rb_get(img, blk, false, &s);
	if (ret)
		return ret;
	*rc = q2_rc_get(s->data, img->refcount_order, q2_rb_index(img, ci));
	q2_rb_put(s);
	return 0;
}

/* Add @delta (+1 or -1) to the refcount of @ci; its block must exist. */
int q2_refcount_add(struct q2_image *img, u64 ci, int delta, u64 *rc)
{
	u64 blk = q2_rt_block(img, ci >> img->rb_bits), v;
	struct q2_rb_slot *s;
	int ret;

	if (!blk) {
		q2_log(img, "cluster 0x%llx has no refcount block",
		       ci << img->cluster_bits);
		return -EIO;
	}
	ret = q2_rb_get(img, blk, false, &s);
	if (ret)
		return ret;
	v = q2_rc_get(s->data, img->refcount_order, q2_rb_index(img, ci));
	if ((delta > 0 && v >= img->rc_max) || (delta < 0 && !v)) {
		q2_rb_put(s);
		q2_log(img, "refcount of cluster 0x%llx is %llu: cannot %s it",
		       ci << img->cluster_bits, v,
		       delta > 0 ? "increment" : "decrement");
		return delta > 0 ? -ERANGE : -EIO;
	}
	v = delta > 0 ? v + 1 : v - 1;
	q2_rc_set(s->data, img->refcount_order, q2_rb_index(img, ci), v);
	s->dirty = true;
	q2_rb_put(s);
	if (rc)
		*rc = v;
	return 0;
}

/* ---- quarantine --------------------------------------------------------- */

/* @ci, or the first cluster past the quarantined ranges holding it. */
static u64 q2_quar_skip(const struct q2_image *img, u64 ci)
{
	bool moved = true;
	u32 i;

	while (moved) {
		moved = false;
		for (i = 0; i < img->nr_quar; i++) {
			if (ci >= img->quar[i].lo && ci < img->quar[i].hi) {
				ci = img->quar[i].hi;
				moved = true;
			}
		}
	}
	return ci;
}

static void q2_quar_add(struct q2_image *img, u64 lo, u64 hi)
{
	struct q2_quar *last = img->nr_quar ? &img->quar[img->nr_quar - 1] : NULL;

	if (last && last->seq == img->quar_seq && last->hi == lo) {
		last->hi = hi;
		return;
	}
	if (img->nr_quar == Q2_QUAR_MAX) {
		/* Out of entries: widen the last one (blocking more is safe). */
		last->lo = q2_min64(last->lo, lo);
		last->hi = q2_max64(last->hi, hi);
		last->seq = img->quar_seq;
		return;
	}
	img->quar[img->nr_quar].lo = lo;
	img->quar[img->nr_quar].hi = hi;
	img->quar[img->nr_quar].seq = img->quar_seq;
	img->nr_quar++;
}

/* The barrier after generation @seq returned: those clusters are free. */
void q2_quar_lift(struct q2_image *img, u64 seq)
{
	u32 i, j = 0;

	for (i = 0; i < img->nr_quar; i++) {
		if (img->quar[i].seq <= seq) {
			if (img->quar[i].lo < img->free_hint)
				img->free_hint = img->quar[i].lo;
			continue;
		}
		img->quar[j++] = img->quar[i];
	}
	img->nr_quar = j;
}

/* ---- allocation --------------------------------------------------------- */

/* The first position in img->rb_set (under meta) not below cluster @ci. */
static u32 q2_rb_set_pos(const struct q2_image *img, u64 ci)
{
	u32 lo = 0, hi = img->rb_set_n;

	while (lo < hi) {
		u32 mid = lo + (hi - lo) / 2;

		if (img->rb_set[mid] < ci)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Whether cluster @ci is a refcount block. */
static bool q2_is_refblock(const struct q2_image *img, u64 ci)
{
	u32 pos = q2_rb_set_pos(img, ci);

	return pos < img->rb_set_n && img->rb_set[pos] == ci;
}

/* Replace the array *@a, @used entries long, by one of @cap, zeros after. */
static int q2_realloc64(u64 **a, u32 used, u64 cap)
{
	u64 *n = q2_zalloc(cap * 8);

	if (!n)
		return -ENOMEM;
	memcpy(n, *a, (size_t)used * 8);
	q2_free(*a);
	*a = n;
	return 0;
}

/* Room for @extra more refcount blocks in img->rb_set, before any change. */
static int q2_rb_set_reserve(struct q2_image *img, u64 extra)
{
	u64 cap;

	if (img->rb_set_n + extra <= img->rb_set_cap)
		return 0;
	cap = q2_max64(2ULL * img->rb_set_cap, img->rb_set_n + extra);
	if (q2_realloc64(&img->rb_set, img->rb_set_n, cap))
		return -ENOMEM;
	img->rb_set_cap = (u32)cap;
	return 0;
}

/*
 * A new refcount block at @off, once it is named by the table in memory:
 * in the set (room reserved) for the locked checks, which cannot run
 * before (they hold meta too).  Its filter bit was set before its first
 * write, so that the lock-free fast path stops writing there in place; a
 * failure between leaves only that bit, which costs a slow path.
 */
static void q2_rb_set_insert(struct q2_image *img, u64 off)
{
	u64 ci = off >> img->cluster_bits;
	u32 pos = q2_rb_set_pos(img, ci);

	memmove(img->rb_set + pos + 1, img->rb_set + pos,
		(size_t)(img->rb_set_n - pos) * 8);
	img->rb_set[pos] = ci;
	img->rb_set_n++;
}

/*
 * Which metadata, if any, the host range [@off, @off + @len) runs into,
 * counting refcount blocks, which q2_hits_metadata() (lock-free, for
 * readers) cannot.  With meta held (img->rb_set).
 * The write path asks this before it writes a cluster in place, gives one
 * out or drops a reference to one: a hostile image could otherwise point
 * a data entry at a refcount block, have the guest zero it, and be handed
 * its header cluster as a "free" data cluster.
 */
const char *q2_write_hits_metadata(const struct q2_image *img, u64 off,
				   u64 len)
{
	const char *what = q2_hits_metadata(img, off, len);
	u64 c, last;

	if (what || !len)
		return what;
	last = (off + len - 1) >> img->cluster_bits;
	for (c = off >> img->cluster_bits; c <= last; c++)
		if (q2_rb_filter_maybe(img, c << img->cluster_bits) &&
		    q2_is_refblock(img, c))
			return "a refcount block";
	return NULL;
}

/*
 * The first cluster past what the file held at attach and everything
 * allocated since: nothing there is in use (see q2_find_free()).
 */
static u64 q2_free_limit(const struct q2_image *img)
{
	return q2_cluster_ceil(img, img->alloc_end) >> img->cluster_bits;
}

/*
 * Take a reference to cluster @ci, found free with limit @lim, which has
 * a refcount block.  Past @lim its refcount is garbage: count from 0.
 */
static int q2_refcount_claim(struct q2_image *img, u64 ci, u64 lim)
{
	struct q2_rb_slot *s;
	int ret;

	if (ci >= lim) {
		ret = q2_rb_get(img, q2_rt_block(img, ci >> img->rb_bits),
				false, &s);
		if (ret)
			return ret;
		if (q2_rc_get(s->data, img->refcount_order,
			      q2_rb_index(img, ci))) {
			q2_rc_set(s->data, img->refcount_order,
				  q2_rb_index(img, ci), 0);
			s->dirty = true;
		}
		q2_rb_put(s);
	}
	return q2_refcount_add(img, ci, 1, NULL);
}

/*
 * The first run of free clusters from the hint: up to @want long (exactly
 * @want if @exact).  Free: refcount 0 (no block counts as 0), not
 * quarantined and no metadata; or at @lim or past it, where nothing can
 * be (the end of the file at open, or of what was allocated since:
 * alloc_end, not the file's size, which q2_grow_ahead() moves ahead of
 * the allocations), whatever the refcount says.  So a hostile image whose
 * refcounts claim every cluster up to the 64 PiB limit costs a scan up to
 * the end of its file, not one of 2^35 clusters.  *@lowest is the first free cluster seen.
 */
static int q2_find_free(struct q2_image *img, u32 want, bool exact, u64 lim,
			u64 *first, u32 *got, u64 *lowest)
{
	u64 max_ci = Q2_MAX_HOST_OFFSET >> img->cluster_bits;
	u64 ci = img->free_hint, start = 0, cur_bi = ~0ULL;
	struct q2_rb_slot *s = NULL;
	u32 run = 0;
	int ret = 0;

	*lowest = ~0ULL;
	while (run < want) {
		u64 bi = ci >> img->rb_bits, rc = 0, next = ci + 1, blk;

		if (ci >= max_ci) {
			ret = -ENOSPC;
			break;
		}
		if (!(ci % 4096))
			q2_resched();
		if (ci >= lim)
			cur_bi = bi;	/* the refcount is not looked at */
		if (bi != cur_bi) {
			if (s)
				q2_rb_put(s);
			s = NULL;
			cur_bi = bi;
			blk = q2_rt_block(img, bi);
			if (blk) {
				ret = q2_rb_get(img, blk, false, &s);
				if (ret)
					break;
			}
		}
		if (s && ci < lim)
			rc = q2_rc_get(s->data, img->refcount_order,
				       q2_rb_index(img, ci));
		if (!rc) {
			u64 past = q2_quar_skip(img, ci);
			const char *what;

			if (past != ci) {
				rc = 1;
				next = past;
			} else if ((what = q2_write_hits_metadata(img,
					ci << img->cluster_bits,
					img->cluster_size))) {
				q2_log(img, "corrupt image: %s at 0x%llx has refcount 0; not reused",
				       what, ci << img->cluster_bits);
				rc = 1;
			}
		}
		if (rc) {
			if (run && !exact)
				break;
			run = 0;
			ci = next;
			continue;
		}
		if (*lowest == ~0ULL)
			*lowest = ci;
		if (!run)
			start = ci;
		run++;
		ci++;
	}
	if (s)
		q2_rb_put(s);
	if (ret == -ENOSPC)
		q2_log(img, "no free cluster below the 64 PiB host offset limit");
	if (ret)
		return ret;
	*first = start;
	*got = run;
	return 0;
}

static void q2_note_alloc(struct q2_image *img, u64 end)
{
	if (end > img->zero_from)
		img->zero_from = end;
	if (end > img->alloc_end)
		q2_store(&img->alloc_end, end);
}

void q2_punch(struct q2_image *img, u64 off, u64 len)
{
	if (img->ops->punch && len)
		img->ops->punch(img->file, off, len);	/* advisory */
}

/*
 * The refcount table must cover range @bi but is too small.  As QEMU
 * does: put new refcount blocks for ranges @bi.. and a new, larger table
 * at the start of range @bi (all free: nothing past the old coverage is
 * allocated), make the blocks count themselves and the table, write them,
 * switch the header to the new table in one write, then free the old one.
 */
static int q2_grow_reftable(struct q2_image *img, u64 bi)
{
	u64 epb = 1ULL << img->rb_bits, epc = img->cluster_size / 8;
	u64 a, k = 1, te, tc, end, need, j, ci, old_off, nmem, *nt;
	u32 old_tc;
	u8 hdr[12], *be;
	int ret;

	if (bi > (Q2_MAX_HOST_OFFSET >> img->cluster_bits) / epb)
		return -ENOSPC;
	a = bi * epb;
	for (;;) {
		/* One cluster of spare entries, so growth stays rare. */
		te = (bi + k + epc + epc - 1) / epc * epc;
		tc = te / epc;
		end = a + k + tc;
		need = (end + epb - 1) / epb - bi;
		if (need <= k)
			break;
		k = need;
	}
	if (te * 8 > Q2_MAX_REFTABLE_BYTES) {
		q2_log(img, "refcount table would exceed 8 MiB");
		return -EFBIG;
	}
	if (end > (Q2_MAX_HOST_OFFSET >> img->cluster_bits))
		return -ENOSPC;
	ret = q2_rb_set_reserve(img, k);
	if (ret)
		return ret;

	/* In memory, the new table up to its new blocks (see rt_mem). */
	nmem = q2_rt_held(bi + k, te);
	nt = q2_zalloc(nmem * 8);
	be = q2_alloc(te * 8);
	if (!nt || !be) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(nt, img->rt, (size_t)img->rt_mem * 8);
	for (j = 0; j < k; j++) {
		struct q2_rb_slot *s;
		u64 lo = (bi + j) * epb, hi = lo + epb;

		nt[bi + j] = (a + j) << img->cluster_bits;
		q2_rb_filter_add(img, nt[bi + j]);
		ret = q2_rb_get(img, nt[bi + j], true, &s);
		if (ret)
			goto out;
		for (ci = q2_max64(lo, a); ci < q2_min64(hi, end); ci++)
			q2_rc_set(s->data, img->refcount_order, ci - lo, 1);
		q2_rb_put(s);
	}
	ret = q2_rb_writeback(img);
	if (!ret)
		ret = q2_file_flush(img);
	if (ret)
		goto out;
	for (j = 0; j < te; j++)
		q2_put_be64(be + j * 8, j < nmem ? nt[j] : 0);
	ret = q2_meta_write(img, be, te * 8, (a + k) << img->cluster_bits,
			    "refcount table");
	if (!ret)
		ret = q2_file_flush(img);
	if (ret)
		goto out;
	q2_put_be64(hdr, (a + k) << img->cluster_bits);
	q2_put_be32(hdr + 8, (u32)tc);
	ret = q2_meta_write(img, hdr, sizeof(hdr), 48, "header");
	if (!ret)
		ret = q2_file_flush(img);
	if (ret)
		goto out;

	old_off = img->reftable_offset;
	old_tc = img->reftable_clusters;
	q2_free(img->rt);
	img->rt = nt;
	nt = NULL;
	for (j = 0; j < k; j++)
		q2_rb_set_insert(img, img->rt[bi + j]);
	img->rt_entries = (u32)te;
	img->rt_mem = (u32)nmem;
	q2_store(&img->reftable_offset, (a + k) << img->cluster_bits);
	q2_store(&img->reftable_clusters, (u32)tc);
	q2_note_alloc(img, end << img->cluster_bits);
	/* The header switch is durable: nothing refers to the old table. */
	q2_free_now(img, old_off, old_tc);
out:
	q2_free(nt);
	q2_free(be);
	return ret;
}

/* Hold table entry @bi in memory (below rt_entries), zero if new. */
static int q2_rt_reserve(struct q2_image *img, u64 bi)
{
	u64 n;

	if (bi < img->rt_mem)
		return 0;
	n = q2_rt_held(bi + 1, img->rt_entries);
	if (q2_realloc64(&img->rt, img->rt_mem, n))
		return -ENOMEM;
	img->rt_mem = (u32)n;
	return 0;
}

/*
 * Create the refcount block for range @bi (QEMU's alloc_refcount_block()):
 * in the lowest free cluster, counting itself if that cluster lies in
 * range @bi, else counted by the block covering it.  The block is written
 * and flushed before the table entry naming it.  The caller then searches
 * again: the block may have taken the clusters it had found.
 */
static int q2_new_refblock(struct q2_image *img, u64 bi)
{
	u64 lim = q2_free_limit(img);
	u64 b, bb, boff, lowest;
	struct q2_rb_slot *s;
	u8 ent[8];
	u32 n;
	int ret;

	if (bi >= img->rt_entries)
		return q2_grow_reftable(img, bi);
	ret = q2_find_free(img, 1, false, lim, &b, &n, &lowest);
	if (ret)
		return ret;
	bb = b >> img->rb_bits;
	if (bb != bi && !q2_rt_block(img, bb)) {
		/* That cluster is not covered either: cover its range first. */
		bi = bb;
		if (bi >= img->rt_entries)
			return q2_grow_reftable(img, bi);
	}
	/* Before any change, so that running out of memory leaves none. */
	ret = q2_rt_reserve(img, bi);
	if (!ret)
		ret = q2_rb_set_reserve(img, 1);
	if (ret)
		return ret;
	boff = b << img->cluster_bits;
	q2_rb_filter_add(img, boff);
	if (bb != bi) {
		ret = q2_refcount_claim(img, b, lim);
		if (ret)
			return ret;
	}
	ret = q2_rb_get(img, boff, true, &s);
	if (ret)
		return ret;
	if (bb == bi)
		q2_rc_set(s->data, img->refcount_order, q2_rb_index(img, b), 1);
	q2_rb_put(s);
	ret = q2_rb_writeback(img);
	if (!ret)
		ret = q2_file_flush(img);
	if (ret)
		return ret;
	q2_put_be64(ent, boff);
	ret = q2_meta_write(img, ent, 8, img->reftable_offset + bi * 8,
			    "refcount table");
	if (!ret)
		ret = q2_file_flush(img);
	if (ret)
		return ret;
	img->rt[bi] = boff;
	q2_rb_set_insert(img, boff);
	img->free_hint = b + 1;
	q2_note_alloc(img, boff + img->cluster_size);
	return 0;
}

/*
 * Allocate up to @want contiguous clusters (exactly @want if @exact): the
 * first free run from the hint, extending the file at its end.  Returns
 * the run in *@off and *@got; *@fresh if it was never written since open
 * (past the old end of file), so reads as zeros.
 */
int q2_alloc_clusters(struct q2_image *img, u32 want, bool exact, u64 *off,
		      u32 *got, bool *fresh)
{
	u32 n, tries, max_tries = 64 + 2 * ((want >> img->rb_bits) + 1);
	u64 first, lowest, bi, i, rc, end;
	bool again;
	int ret;

	for (tries = 0; tries < max_tries; tries++) {
		u64 lim = q2_free_limit(img);

		ret = q2_find_free(img, want, exact, lim, &first, &n, &lowest);
		if (ret)
			return ret;
		again = false;
		for (bi = first >> img->rb_bits;
		     bi <= (first + n - 1) >> img->rb_bits; bi++) {
			if (q2_rt_block(img, bi))
				continue;
			ret = q2_new_refblock(img, bi);
			if (ret)
				return ret;
			again = true;
			break;
		}
		if (again)
			continue;
		for (i = 0; i < n; i++) {
			ret = q2_refcount_claim(img, first + i, lim);
			if (ret) {
				while (i--)
					q2_refcount_add(img, first + i, -1, &rc);
				return ret;
			}
		}
		img->free_hint = lowest < first ? lowest : first + n;
		end = (first + n) << img->cluster_bits;
		*fresh = (first << img->cluster_bits) >= img->zero_from;
		q2_note_alloc(img, end);
		*off = first << img->cluster_bits;
		*got = n;
		return 0;
	}
	q2_log(img, "cluster allocation does not converge");
	return -EIO;
}

/* ---- releasing ---------------------------------------------------------- */

/*
 * Decrement @n clusters from @off whose last reference is gone for good
 * (durably unreferenced, or never referenced); punch those reaching zero.
 * @quarantine: keep them from reuse until the next barrier.
 */
static void q2_release(struct q2_image *img, u64 off, u64 n, bool quarantine)
{
	u64 ci = off >> img->cluster_bits, end = ci + n, lo = 0, hi = 0, rc;

	/* [lo, hi): the current run of clusters freed, punched in one go. */
	for (; ci <= end; ci++) {
		const char *what = ci < end ?
			q2_write_hits_metadata(img, ci << img->cluster_bits,
					       img->cluster_size) : NULL;
		bool freed = ci < end && !what &&
			     !q2_refcount_add(img, ci, -1, &rc) && !rc;

		/*
		 * A data entry that named metadata, or a cluster that became
		 * metadata since its drop was queued (a new refcount block or
		 * table): keep the reference, a leak.
		 */
		if (what)
			q2_log(img, "corrupt image: a reference to %s at 0x%llx dropped; kept",
			       what, ci << img->cluster_bits);

		if (freed && hi > lo && hi == ci) {
			hi++;
			continue;
		}
		if (hi > lo) {
			q2_punch(img, lo << img->cluster_bits,
				 (hi - lo) << img->cluster_bits);
			if (quarantine)
				q2_quar_add(img, lo, hi);
			else if (lo < img->free_hint)
				img->free_hint = lo;
		}
		lo = ci;
		hi = freed ? ci + 1 : ci;
	}
}

void q2_free_now(struct q2_image *img, u64 off, u64 n)
{
	q2_release(img, off, n, false);
}

/* Queue a dropped reference; full queue: make everything durable first. */
int q2_drop(struct q2_image *img, u64 off, u64 n)
{
	struct q2_drop *last = img->nr_drops ? &img->drops[img->nr_drops - 1] : NULL;
	int ret;

	if (!n)
		return 0;
	if (last && last->off + (last->n << img->cluster_bits) == off) {
		last->n += n;
		return 0;
	}
	if (img->nr_drops == Q2_DROPS_MAX) {
		ret = q2_sync_locked(img);
		if (ret)
			return ret;
	}
	img->drops[img->nr_drops].off = off;
	img->drops[img->nr_drops].n = n;
	img->nr_drops++;
	return 0;
}

/* The changes behind every queued drop are durable: decrement. */
void q2_drops_apply(struct q2_image *img)
{
	u32 i;

	for (i = 0; i < img->nr_drops; i++)
		q2_release(img, img->drops[i].off, img->drops[i].n, true);
	img->nr_drops = 0;
}
