// SPDX-License-Identifier: GPL-2.0
/*
 * The write path: planning writes (q2_write_begin/commit), zeroing and
 * discarding, write-back with QEMU's ordering rules, resize.
 *
 * Ordering (what makes a crash at any point leave a consistent image):
 *  - a data cluster is written (by the caller, or filled here) before the
 *    commit that maps it, and an L2 table is written only after a flush
 *    that follows its last commit;
 *  - refcount increments happen in the block cache before the mapping
 *    that relies on them, and dirty refcount blocks are written and
 *    flushed before any L2 table (q2_l2_flush_dirty());
 *  - a new L2 table is written and flushed before the L1 entry naming it
 *    (L1 entries are written only by q2_writeback_locked(), last);
 *  - decrements wait for the change that dropped the reference to be
 *    durable (refcount.c: drops), and freed clusters wait for the
 *    caller's barrier before reuse.
 *
 * Locking: img->meta serialises every metadata change and is held across
 * metadata I/O; the copy-on-write fills and the caller's data writes run
 * without it.  A plan that will change a mapping is "in flight" from
 * q2_write_begin() until q2_write_commit(): other plans and zero requests
 * touching its guest clusters sleep until it commits (img->waitq), so a
 * cluster is never allocated twice.  Lock order: flush_lock, meta,
 * l2.lock; dlock (compressed reads) is taken without meta.
 */
#include "q2_priv.h"

/* ---- failure, metadata I/O ---------------------------------------------- */

/*
 * A metadata write failed: the image can no longer be kept consistent.
 * Refuse further writes, mark the header corrupt (best effort) and log.
 */
int q2_write_failed(struct q2_image *img, const char *what, int err)
{
	u8 b[8];

	if (q2_load(&img->failed))
		return -EIO;
	q2_store(&img->failed, true);
	q2_log(img, "%s failed (error %d): image marked corrupt, writes refused",
	       what, err);
	if (img->version >= 3) {
		q2_put_be64(b, img->incompat | Q2_INCOMPAT_CORRUPT);
		if (!img->ops->pwrite(img->file, b, sizeof(b), 72))
			img->ops->flush(img->file);
	}
	return -EIO;
}

int q2_meta_write(struct q2_image *img, const void *buf, size_t len, u64 off,
		  const char *what)
{
	int ret;

	if (q2_load(&img->failed))
		return -EIO;
	ret = img->ops->pwrite(img->file, buf, len, off);
	if (ret)
		return q2_write_failed(img, what, ret);
	img->unflushed = true;
	return 0;
}

void q2_flush_failed(struct q2_image *img, int err)
{
	/* Nothing of ours to lose, and a header vdisk must not change. */
	if (!img->writable)
		return;
	q2_mutex_lock(&img->flush_lock);
	q2_mutex_lock(&img->meta);
	q2_write_failed(img, "flushing the file", err);
	q2_mutex_unlock(&img->meta);
	q2_mutex_unlock(&img->flush_lock);
}

int q2_file_flush(struct q2_image *img)
{
	int ret;

	if (q2_load(&img->failed))
		return -EIO;
	ret = img->ops->flush(img->file);
	if (ret)
		return q2_write_failed(img, "flushing the file", ret);
	img->unflushed = false;
	return 0;
}

/* ---- L1 and L2 write-back ----------------------------------------------- */

static void q2_l1_set(struct q2_image *img, u64 idx, u64 val)
{
	q2_store_release(&img->l1[idx], val);
	img->l1_dirty[idx / 512] |= (u8)(1U << ((idx / 64) % 8));
	img->l1_any_dirty = true;
}

/* Dirty L1 sectors (64 entries each), after the tables they name. */
static int q2_l1_writeback(struct q2_image *img)
{
	u64 nsec = ((u64)img->l1_size * 8 + 511) / 512, s, j, first, n;
	int ret;

	for (s = 0; s < nsec; s++) {
		if (!(img->l1_dirty[s / 8] & (1U << (s % 8))))
			continue;
		first = s * 64;
		n = q2_min64(64, img->l1_size - first);
		for (j = 0; j < n; j++)
			q2_put_be64(img->sbuf + j * 8, img->l1[first + j]);
		ret = q2_meta_write(img, img->sbuf, n * 8,
				    img->l1_offset + s * 512, "L1 table write");
		if (ret)
			return ret;
		img->l1_dirty[s / 8] &= (u8)~(1U << (s % 8));
	}
	img->l1_any_dirty = false;
	return 0;
}

/*
 * Write back every dirty L2 table: first what they depend on (refcount
 * increments, and the data of every commit: a flush).
 */
static int q2_l2_flush_dirty(struct q2_image *img)
{
	int ret = q2_rb_writeback(img);

	if (!ret)
		ret = q2_file_flush(img);
	if (!ret) {
		ret = q2_l2_writeback(img);
		if (ret)
			ret = q2_write_failed(img, "L2 table write", ret);
	}
	return ret;
}

/* At least @need L2 cache slots free or clean, for tables to come. */
static int q2_l2_make_room(struct q2_image *img, unsigned int need)
{
	unsigned int room;

	q2_mutex_lock(&img->l2.lock);
	room = q2_l2_room(img);
	q2_mutex_unlock(&img->l2.lock);
	if (room >= need)
		return 0;
	return q2_l2_flush_dirty(img);
}

/* Refcounts, flush, L2 tables, flush, L1 entries, flush. */
static int q2_writeback_locked(struct q2_image *img)
{
	int ret;

	if (q2_load(&img->failed))
		return -EIO;
	ret = q2_rb_writeback(img);
	if (!ret && q2_l2_any_dirty(img))
		ret = q2_l2_flush_dirty(img);
	if (!ret && img->l1_any_dirty) {
		if (img->unflushed)
			ret = q2_file_flush(img);
		if (!ret)
			ret = q2_l1_writeback(img);
	}
	if (!ret)
		ret = q2_file_flush(img);
	return ret;
}

/* Everything durable; then the queued drops can be applied. */
int q2_sync_locked(struct q2_image *img)
{
	int ret = q2_writeback_locked(img);

	if (!ret)
		q2_drops_apply(img);
	return ret;
}

/*
 * Pin the L2 table at @t for a metadata change.  Returns 0 with
 * img->l2.lock held, or -errno without it.  Called with img->meta held.
 *
 * Room is made (every dirty table written back, behind a flush) only
 * when the lookup finds no slot: a table that is cached already needs
 * none.  Making room up front instead cost a flush per allocating write
 * once every slot was dirty (random writes over a fresh image larger
 * than the cache covers).
 */
static int q2_l2_get_locked(struct q2_image *img, u64 t,
			    struct q2_l2_slot **slot)
{
	bool made_room = false;
	int ret;

	for (;;) {
		q2_mutex_lock(&img->l2.lock);
		ret = q2_l2_get(img, t, slot);
		if (!ret)
			return 0;
		q2_mutex_unlock(&img->l2.lock);
		/* -EAGAIN twice: every slot pinned, which cannot be. */
		if (ret != -EAGAIN || made_room)
			return ret == -EAGAIN ? -EIO : ret;
		ret = q2_l2_make_room(img, 1);
		if (ret)
			return ret;
		made_room = true;
	}
}

/* ---- setup -------------------------------------------------------------- */

static int q2_wclose(struct q2_image *img);

/* A reader found every L2 slot dirty (it holds no lock): make room. */
static int q2_wreclaim(struct q2_image *img)
{
	int ret;

	q2_mutex_lock(&img->meta);
	ret = q2_l2_make_room(img, 1);
	q2_mutex_unlock(&img->meta);
	return ret;
}

/* The write state, on first use; then the autoclear bits (spec). */
static int q2_wstart(struct q2_image *img)
{
	u8 zero[8] = { 0 };
	int ret;

	if (q2_load(&img->failed))
		return -EIO;
	if (!img->wready) {
		ret = q2_refcount_init(img, (u64)img->l2.nr << img->cluster_bits);
		if (ret)
			return ret;
		img->l1_dirty = q2_zalloc(((u64)img->l1_size * 8 + 511) / 512 / 8 + 1);
		if (!img->l1_dirty) {
			q2_refcount_destroy(img);
			return -ENOMEM;
		}
		img->wclose = q2_wclose;
		img->wreclaim = q2_wreclaim;
		q2_store(&img->wready, true);
	}
	if (!img->autoclear_done) {
		if (img->version >= 3 && img->autoclear) {
			ret = q2_meta_write(img, zero, sizeof(zero), 88, "header write");
			if (!ret)
				ret = q2_file_flush(img);
			if (ret)
				return ret;
			img->autoclear = 0;
		}
		q2_store(&img->autoclear_done, true);
	}
	return 0;
}

static int q2_wcheck(struct q2_image *img, const struct q2_chain *chain,
		     u64 off, u64 *len)
{
	if (!img->writable)
		return -EROFS;
	if (q2_load(&img->failed))
		return -EIO;
	if (!*len || off >= img->disk_size)
		return -EINVAL;
	if (*len > img->disk_size - off)
		*len = img->disk_size - off;
	if (chain) {
		if (!chain->nr || chain->layers[0].img != img)
			return -EINVAL;
		if (img->backing_name && chain->nr < 2)
			return -EINVAL;
	} else if (img->backing_name) {
		return -EINVAL;
	}
	return 0;
}

/* ---- in-flight plans ---------------------------------------------------- */

static bool q2_conflict(const struct q2_image *img, u64 cl, u64 n)
{
	const struct q2_write *w;

	for (w = img->inflight; w; w = w->next)
		if (w->first_cl < cl + n && cl < w->first_cl + w->nr_cl)
			return true;
	return false;
}

static void q2_inflight_add(struct q2_image *img, struct q2_write *w)
{
	w->next = img->inflight;
	if (w->next)
		w->next->pprev = &w->next;
	w->pprev = &img->inflight;
	img->inflight = w;
}

static void q2_inflight_del(struct q2_write *w)
{
	if (!w->pprev)
		return;
	*w->pprev = w->next;
	if (w->next)
		w->next->pprev = w->pprev;
	w->next = NULL;
	w->pprev = NULL;
}

/* Sleep, without meta, until some plan commits. */
static void q2_wait_commit(struct q2_image *img)
{
	u64 seq = img->commit_seq;

	q2_mutex_unlock(&img->meta);
	q2_wait_change(&img->waitq, &img->commit_seq, seq);
	q2_mutex_lock(&img->meta);
}

/* ---- L2 tables ---------------------------------------------------------- */

static void q2_entry_at(const struct q2_image *img, const u8 *table, u64 gc,
			u64 *e, u64 *bm)
{
	const u8 *p = table + (size_t)(gc & ((1ULL << img->l2_bits) - 1)) *
			      img->l2_entry_bytes;

	*e = q2_be64(p);
	*bm = img->extended_l2 ? q2_be64(p + 8) : 0;
}

static void q2_entry_put(const struct q2_image *img, u8 *table, u64 gc, u64 e,
			 u64 bm)
{
	u8 *p = table + (size_t)(gc & ((1ULL << img->l2_bits) - 1)) *
		      img->l2_entry_bytes;

	q2_put_be64(p, e);
	if (img->extended_l2)
		q2_put_be64(p + 8, bm);
}

/*
 * The L2 table for L1 entry @l1i, owned by the active state: allocated
 * (zeroed) if absent, copied if shared with a snapshot (the copy keeps
 * the entries, COPIED clear where they were; the old table loses the
 * reference when that is durable).  Its offset in *@t.
 */
/*
 * q2_check_l2_offset() for an L2 table the write path will write (to
 * itself, in place, when COPIED) or copy: also no refcount block there,
 * which a hostile L1 entry could name (q2_write_hits_metadata()).
 */
static int q2_check_wl2(struct q2_image *img, u64 l2_off, u64 l1i)
{
	int ret = q2_check_l2_offset(img, l2_off, l1i);
	const char *what;

	if (ret)
		return ret;
	what = q2_write_hits_metadata(img, l2_off, img->cluster_size);
	if (what) {
		q2_log(img, "corrupt image: L1 entry %llu names %s at 0x%llx as its L2 table",
		       l1i, what, l2_off);
		return -EIO;
	}
	return 0;
}

static int q2_l2_owned(struct q2_image *img, u64 l1i, u64 *t)
{
	u64 e = img->l1[l1i], old = e & Q2_OFFSET_MASK, n;
	struct q2_l2_slot *src = NULL, *dst;
	bool fresh;
	u32 got;
	int ret;

	if (old) {
		ret = q2_check_wl2(img, old, l1i);
		if (ret)
			return ret;
		if (e & Q2_OFLAG_COPIED) {
			*t = old;
			return 0;
		}
	}
	ret = q2_alloc_clusters(img, 1, false, &n, &got, &fresh);
	if (ret)
		return ret;
	ret = q2_l2_make_room(img, 2);
	if (ret)
		goto undo;
	q2_mutex_lock(&img->l2.lock);
	if (old)
		ret = q2_l2_get(img, old, &src);
	if (!ret)
		ret = q2_l2_install(img, n, src ? src->data : NULL, &dst);
	if (src)
		q2_l2_put(src);
	if (!ret) {
		q2_l2_put(dst);
		q2_l1_set(img, l1i, n | Q2_OFLAG_COPIED);
	}
	q2_mutex_unlock(&img->l2.lock);
	if (ret)
		goto undo;
	*t = n;
	return old ? q2_drop(img, old, 1) : 0;
undo:
	q2_free_now(img, n, 1);
	return ret == -EAGAIN ? -EIO : ret;
}

/* Host clusters an entry holds: compressed, every one its data touches. */
static bool q2_entry_host(const struct q2_image *img, u64 e, u64 *off, u64 *n)
{
	u64 coff, csize, first, last;

	if (e & Q2_OFLAG_COMPRESSED) {
		coff = e & img->coffset_mask;
		csize = (((e >> img->csize_shift) & img->csize_mask) + 1) << 9;
		csize -= coff & 511;
		first = coff >> img->cluster_bits;
		last = (coff + csize - 1) >> img->cluster_bits;
		*off = first << img->cluster_bits;
		*n = last - first + 1;
		return true;
	}
	*off = e & Q2_OFFSET_MASK;
	*n = 1;
	return *off != 0;
}

/* ---- planning ----------------------------------------------------------- */

/*
 * q2_check_entry() for an entry the write path will write in place, copy
 * from or drop: also no refcount block among its host clusters (see
 * q2_write_hits_metadata()), and an in-place cluster inside what the file
 * may hold, so a write cannot extend the file to a hostile offset.
 */
static int q2_check_wentry(struct q2_image *img, u64 e, u64 bm, u64 guest)
{
	int ret = q2_check_entry(img, e, bm, guest);
	const char *what;
	u64 off, n;

	if (ret || !q2_entry_host(img, e, &off, &n))
		return ret;
	if (!(e & Q2_OFLAG_COMPRESSED) && off >= img->alloc_end) {
		q2_log(img, "corrupt image at guest offset 0x%llx: host cluster 0x%llx is past the end of the file",
		       guest, off);
		return -EIO;
	}
	what = q2_write_hits_metadata(img, off, n << img->cluster_bits);
	if (what) {
		q2_log(img, "corrupt image at guest offset 0x%llx: host cluster 0x%llx overlaps %s",
		       guest, off, what);
		return -EIO;
	}
	return 0;
}

/*
 * Granules of guest cluster @gc that [@off, @end) touches, and (*@full)
 * those it covers entirely; without extended L2 the cluster is bit 0.
 */
static u32 q2_touched(const struct q2_image *img, u64 off, u64 end, u64 gc,
		      u32 *full)
{
	u64 base = gc << img->cluster_bits;
	u64 a = q2_max64(off, base) - base;
	u64 b = q2_min64(end, base + img->cluster_size) - base;
	u32 first, last, fa, fb, t, f;

	if (!img->extended_l2) {
		if (full)
			*full = a == 0 && b == img->cluster_size;
		return 1;
	}
	first = (u32)(a >> img->gran_bits);
	last = (u32)((b - 1) >> img->gran_bits);
	t = (last == 31 ? ~0U : (1U << (last + 1)) - 1) & ~((1U << first) - 1);
	fa = (u32)((a + (1ULL << img->gran_bits) - 1) >> img->gran_bits);
	fb = (u32)(b >> img->gran_bits);
	f = 0;
	if (fb > fa)
		f = (fb == 32 ? ~0U : (1U << fb) - 1) & ~((1U << fa) - 1);
	if (full)
		*full = f;
	return t;
}

/* What writing granules @touched of the entry (@e, @bm) takes. */
static u8 q2_wkind(const struct q2_image *img, u64 e, u64 bm, u32 touched)
{
	u64 host = e & Q2_OFFSET_MASK;

	if ((e & Q2_OFLAG_COMPRESSED) || !host || !(e & Q2_OFLAG_COPIED))
		return Q2W_NEW;
	if (!img->extended_l2)
		return (e & Q2_OFLAG_ZERO) ? Q2W_REUSE : Q2W_INPLACE;
	return ((u32)bm & touched) == touched ? Q2W_INPLACE : Q2W_REUSE;
}

/* Old entries of the first and last cluster of a plan, for its fills. */
struct q2_fills {
	u64 e[2];
	u64 bm[2];
	u64 fsize;
};

/* The guest range's data write would end in a cluster past the file:
 * make the file reach the cluster's end (zeros where nothing was). */
static int q2_extend_to(struct q2_image *img, u64 ce)
{
	u64 fsize = q2_load(&img->file_size), from;
	int ret;

	if (ce <= fsize)
		return 0;
	from = q2_max64(fsize, ce - 512);
	memset(img->sbuf, 0, sizeof(img->sbuf));
	ret = img->ops->pwrite(img->file, img->sbuf, ce - from, from);
	if (!ret)
		q2_store(&img->file_size, ce);
	return ret;
}

/*
 * New clusters past the end of the file.  Extending the file a cluster at
 * a time (by writing each one's last sector) costs a size change, a block
 * allocation and a journal update per cluster, serialised on the file's
 * lock, and makes every data write into the cluster a write into a hole.
 * Instead, allocate the file a chunk (4 to 32 MiB) at a time: the
 * space reads as zeros (the clusters stay fresh: no zero fill) and data
 * writes into it need no block allocation.  When the write that grows the
 * file covers part of a cluster only (small random writes), ask for the
 * zeros to be written as well, so that later small writes are plain
 * overwrites rather than conversions of unwritten extents; whole-cluster
 * writes (sequential ones) would only pay for the zeros twice.  The
 * file may then end up to a chunk past its last cluster (until close,
 * which gives the rest back: q2_trim_tail()), as a QEMU image
 * created with preallocation=falloc does; nothing refers to that space
 * and qemu-img check is content with it.  Advisory: if the call fails
 * (no space for a whole chunk, or no @grow), q2_do_fills() extends the
 * file as before.  Under meta, so file_size only ever grows here.
 */
#define Q2_GROW_CHUNK	(4ULL << 20)
#define Q2_GROW_MAX	(32ULL << 20)

static void q2_grow_ahead(struct q2_image *img, u64 hcl, u64 hend,
			 bool partial)
{
	u64 fsize = q2_load(&img->file_size), to, chunk = Q2_GROW_CHUNK;
	u64 fill_from = q2_max64(fsize, hcl);
	bool fill;

	if (hend <= fsize || !img->ops->grow)
		return;
	/*
	 * Growing makes the file system wait for the direct writes in
	 * flight: grow a larger file in larger steps (an eighth of it, up to
	 * Q2_GROW_MAX), a power of two so a multiple of every cluster size.
	 */
	while (chunk < Q2_GROW_MAX && chunk * 8 <= fsize)
		chunk <<= 1;
	to = (hend + chunk - 1) & ~(chunk - 1);
	/*
	 * Zeros go only over this plan's clusters and the space past them,
	 * and only when nothing was allocated past this plan.  What lies
	 * between the old end of the file and the plan is already written:
	 * metadata (which does not move file_size: a new refcount block at
	 * the start of the range it covers, an L2 table) or another plan's
	 * data.  Zeroing it (as until 2026-12-07) wiped a refcount block
	 * the refcount table already named on disk, until the next flush
	 * wrote it again.  The space itself is allocated either way.
	 */
	fill = partial && q2_load(&img->alloc_end) == hend;
	if (img->ops->grow(img->file, fsize, to, fill ? fill_from : to))
		return;
	if (!img->grown_from)
		img->grown_from = fsize;
	q2_store(&img->file_size, to);
}

/*
 * At close: give back the part of the last chunk q2_grow_ahead() took that
 * no cluster uses (every allocation since open ends by alloc_end).
 */
static void q2_trim_tail(struct q2_image *img)
{
	u64 from = q2_max64(q2_load(&img->alloc_end), img->grown_from);
	u64 fsize = q2_load(&img->file_size);

	from = q2_cluster_ceil(img, from);
	if (img->grown_from && from < fsize)
		q2_punch(img, from, fsize - from);
}

static int q2_plan(struct q2_image *img, u64 off, u64 len,
		   struct q2_write *w, struct q2_fills *fp)
{
	u32 cb = img->cluster_bits, n = 1, max_n, got;
	u64 end = off + len, gc, l1i, t, e, bm, ne, nbm, host, tbl_end, h;
	struct q2_l2_slot *slot;
	bool fresh;
	u8 kind;
	int ret;

again:
	if (q2_load(&img->failed))
		return -EIO;
	gc = off >> cb;
	if (q2_conflict(img, gc, 1)) {
		q2_wait_commit(img);
		goto again;
	}
	l1i = gc >> img->l2_bits;
	ret = q2_l2_owned(img, l1i, &t);
	if (ret)
		return ret;
	tbl_end = (l1i + 1) << (cb + img->l2_bits);
	if (end > tbl_end)
		end = tbl_end;
	max_n = (u32)q2_min64(((end - (gc << cb)) + img->cluster_size - 1) >> cb,
			      Q2_PLAN_MAX_CL);

	ret = q2_l2_get_locked(img, t, &slot);
	if (ret)
		return ret;
	q2_entry_at(img, slot->data, gc, &e, &bm);
	ret = q2_check_wentry(img, e, bm, off);
	kind = q2_wkind(img, e, bm, q2_touched(img, off, end, gc, NULL));
	host = e & Q2_OFFSET_MASK;
	fp->e[0] = fp->e[1] = e;
	fp->bm[0] = fp->bm[1] = bm;
	while (!ret && kind != Q2W_REUSE && n < max_n) {
		u64 ngc = gc + n;

		q2_entry_at(img, slot->data, ngc, &ne, &nbm);
		if (q2_check_wentry(img, ne, nbm, ngc << cb) ||
		    q2_wkind(img, ne, nbm,
			     q2_touched(img, off, end, ngc, NULL)) != kind)
			break;
		if (kind == Q2W_INPLACE &&
		    (ne & Q2_OFFSET_MASK) != host + ((u64)n << cb))
			break;
		if (kind == Q2W_NEW && q2_conflict(img, ngc, 1))
			break;
		fp->e[1] = ne;
		fp->bm[1] = nbm;
		n++;
	}
	q2_l2_put(slot);
	q2_mutex_unlock(&img->l2.lock);
	if (ret)
		return ret;

	w->guest_off = off;
	w->first_cl = gc;
	w->kind = kind;
	if (kind == Q2W_NEW) {
		ret = q2_alloc_clusters(img, n, false, &h, &got, &fresh);
		if (ret)
			return ret;
		if (got < n) {
			/* A shorter run: its last cluster's old entry. */
			n = got;
			ret = q2_l2_get_locked(img, t, &slot);
			if (ret) {
				q2_free_now(img, h, got);
				return ret;
			}
			q2_entry_at(img, slot->data, gc + n - 1,
				    &fp->e[1], &fp->bm[1]);
			q2_l2_put(slot);
			q2_mutex_unlock(&img->l2.lock);
		}
		w->host_cl = h;
		w->fresh = fresh;
	} else {
		/* In place or reuse: the cluster is going to be written. */
		w->host_cl = host;
		w->fresh = host >= img->zero_from;
		if (host + ((u64)n << cb) > img->zero_from)
			img->zero_from = host + ((u64)n << cb);
	}
	w->nr_cl = n;
	w->len = q2_min64(end, (gc + n) << cb) - off;
	w->host_off = w->host_cl + (off & (img->cluster_size - 1));
	if (kind == Q2W_INPLACE) {
		/* A file ending inside the cluster: extend it first. */
		return q2_extend_to(img, host + ((u64)n << cb));
	}
	w->commit = true;
	if (kind == Q2W_NEW)
		q2_grow_ahead(img, w->host_cl, w->host_cl + ((u64)n << cb),
			      (off & (img->cluster_size - 1)) ||
			      (w->len & (img->cluster_size - 1)));
	fp->fsize = q2_load(&img->file_size);
	q2_inflight_add(img, w);
	return 0;
}

/* ---- copy-on-write fills (without meta) --------------------------------- */

static int q2_layer_pread(const struct q2_chain *chain, unsigned int i,
			  void *buf, size_t len, u64 off)
{
	const struct q2_layer *l = &chain->layers[i];

	if (l->img)
		return l->img->ops->pread(l->img->file, buf, len, off);
	if (!l->ops || !l->file)
		return -EINVAL;
	return l->ops->pread(l->file, buf, len, off);
}

/*
 * Copy guest [@guest, +@len) as the chain reads it now (the plan keeps it
 * from changing) to @host.  Zeros are not written if @dst_zero.
 */
/* The fill buffer, allocated on first use (most fills of fresh clusters need none). */
static u8 *q2_fill_buf(u8 **bufp, size_t blen)
{
	if (!*bufp)
		*bufp = q2_alloc(blen);
	return *bufp;
}

static int q2_fill(struct q2_image *img, const struct q2_chain *chain,
		   u64 guest, u64 len, u64 host, bool dst_zero, u8 **bufp,
		   size_t blen)
{
	struct q2_chain_extent cx;
	bool zeroed = false;
	u64 n, done;
	size_t k;
	u8 *buf;
	int ret;

	while (len) {
		if (guest >= img->disk_size) {
			/* Past the disk (its last cluster): zeros. */
			memset(&cx, 0, sizeof(cx));
			cx.ext.type = Q2_ZERO;
			cx.ext.len = len;
		} else {
			ret = q2_chain_map(chain, guest, len, &cx);
			if (ret)
				return ret;
			if (!cx.ext.len || cx.ext.len > len)
				return -EIO;
		}
		n = cx.ext.len;
		for (done = 0; done < n; done += k) {
			k = (size_t)q2_min64(blen, n - done);
			if (cx.ext.type != Q2_DATA &&
			    cx.ext.type != Q2_COMPRESSED && dst_zero) {
				k = (size_t)(n - done);
				continue;
			}
			buf = q2_fill_buf(bufp, blen);
			if (!buf)
				return -ENOMEM;
			switch (cx.ext.type) {
			case Q2_DATA:
				zeroed = false;
				ret = q2_layer_pread(chain, cx.layer, buf, k,
						     cx.ext.host_off + done);
				break;
			case Q2_COMPRESSED:
				zeroed = false;
				ret = q2_read_compressed(chain->layers[cx.layer].img,
							 &cx.ext, done, buf, k);
				break;
			default:
				if (!zeroed)
					memset(buf, 0, blen);
				zeroed = true;
				ret = 0;
				break;
			}
			if (!ret)
				ret = img->ops->pwrite(img->file, buf, k,
						       host + done);
			if (ret)
				return ret;
		}
		guest += n;
		host += n;
		len -= n;
	}
	return 0;
}

/*
 * Fill the part [@a, @b) of the plan's cluster @which (0 first, 1 last)
 * that the data write leaves out.  Without extended L2 all of it; with
 * it, granules partly written, plus (new cluster) the old cluster's data.
 */
static int q2_fill_part(struct q2_image *img, const struct q2_chain *chain,
			const struct q2_write *w, const struct q2_fills *fp,
			int which, u64 a, u64 b, u8 **bufp, size_t blen)
{
	u64 base = w->first_cl << img->cluster_bits, gran, e, g, ge, s;
	u32 touched, data, bit;
	int ret;

	if (!img->extended_l2)
		return q2_fill(img, chain, a, b - a, w->host_cl + (a - base),
			       w->fresh, bufp, blen);
	gran = 1ULL << img->gran_bits;
	e = fp->e[which];
	touched = q2_touched(img, w->guest_off, w->guest_off + w->len,
			     a >> img->cluster_bits, NULL);
	if (e & Q2_OFLAG_COMPRESSED)
		data = ~0U;
	else
		data = (e & Q2_OFFSET_MASK) ? (u32)fp->bm[which] : 0;
	for (g = a; g < b; g = ge) {
		bool need;

		ge = q2_min64((g | (gran - 1)) + 1, b);
		bit = 1U << ((g >> img->gran_bits) & (Q2_SUBCLUSTERS - 1));
		if (w->kind == Q2W_NEW)
			need = (touched & bit) || (data & bit);
		else
			need = (touched & bit) && !(data & bit);
		if (!need)
			continue;
		/* Coalesce the following granules that need it too. */
		s = g;
		while (ge < b) {
			u32 nbit = bit << 1;

			if (!nbit)
				break;
			if (w->kind == Q2W_NEW ?
			    !((touched & nbit) || (data & nbit)) :
			    !((touched & nbit) && !(data & nbit)))
				break;
			bit = nbit;
			ge = q2_min64(ge + gran, b);
		}
		ret = q2_fill(img, chain, s, ge - s, w->host_cl + (s - base),
			      w->fresh, bufp, blen);
		if (ret)
			return ret;
	}
	return 0;
}

static int q2_do_fills(struct q2_image *img, const struct q2_chain *chain,
		       const struct q2_write *w, const struct q2_fills *fp)
{
	u32 cb = img->cluster_bits;
	u64 cs = img->cluster_size, off = w->guest_off, end = off + w->len;
	u64 first = w->first_cl << cb, last_end = (w->first_cl + w->nr_cl) << cb;
	u64 hend = w->host_cl + ((u64)w->nr_cl << cb);
	size_t blen = (size_t)q2_min64(cs, Q2_BOUNCE_MAX);
	u8 *buf = NULL;
	int ret = 0;

	/*
	 * The file must reach the end of the last cluster once it is mapped
	 * (past the file, mapped data reads as zeros): write its last
	 * sector now unless the data write or a fill will.
	 */
	if (hend > fp->fsize && end < last_end) {
		u64 from = q2_max64(end, last_end - 512);

		if (!q2_fill_buf(&buf, blen))
			return -ENOMEM;
		memset(buf, 0, (size_t)(last_end - from));
		ret = img->ops->pwrite(img->file, buf, last_end - from,
				       hend - (last_end - from));
	}
	if (!ret && off > first)
		ret = q2_fill_part(img, chain, w, fp, 0, first, off, &buf, blen);
	if (!ret && end < last_end)
		ret = q2_fill_part(img, chain, w, fp, 1, end, last_end, &buf,
				   blen);
	if (buf)
		q2_free(buf);
	return ret;
}

/*
 * The common case without the metadata mutex (so in-place writes go on
 * while q2_flush() holds it across its flushes): a run of owned clusters,
 * the touched granules allocated, inside the file, in an owned and
 * cached L2 table.  Entries are read under the cache mutex, as readers
 * do; a cluster freed just after is the barrier's business.  Anything
 * else (or anything odd) goes to q2_plan().
 */
static bool q2_fast_inplace(struct q2_image *img, u64 off, u64 len,
			    struct q2_write *w, bool nowait)
{
	u32 cb = img->cluster_bits, n = 0, max_n;
	u64 gc = off >> cb, l1i = gc >> img->l2_bits, l1e, t, end, host = 0;
	u64 fsize = q2_load(&img->file_size), e, bm;
	struct q2_l2_slot *slot;

	if (!q2_load(&img->wready) || !q2_load(&img->autoclear_done))
		return false;
	l1e = q2_load_acquire(&img->l1[l1i]);
	t = l1e & Q2_OFFSET_MASK;
	if (!t || !(l1e & Q2_OFLAG_COPIED))
		return false;
	end = q2_min64(off + len, (l1i + 1) << (cb + img->l2_bits));
	max_n = (u32)q2_min64(((end - (gc << cb)) + img->cluster_size - 1) >> cb,
			      Q2_PLAN_MAX_CL);
	if (!nowait)
		q2_mutex_lock(&img->l2.lock);
	else if (!q2_mutex_trylock(&img->l2.lock))
		return false;
	slot = q2_l2_peek(img, t);
	while (slot && n < max_n) {
		u64 h;

		q2_entry_at(img, slot->data, gc + n, &e, &bm);
		h = e & Q2_OFFSET_MASK;
		if (q2_wkind(img, e, bm, q2_touched(img, off, end, gc + n, NULL)) !=
		    Q2W_INPLACE || (h & (img->cluster_size - 1)) ||
		    ((u32)bm & (u32)(bm >> 32)) ||
		    (n && h != host + ((u64)n << cb)) ||
		    h + img->cluster_size > fsize ||
		    q2_hits_metadata(img, h, img->cluster_size) ||
		    q2_rb_filter_maybe(img, h))
			break;
		if (!n)
			host = h;
		n++;
	}
	if (slot)
		q2_l2_put(slot);
	q2_mutex_unlock(&img->l2.lock);
	if (!n)
		return false;
	w->kind = Q2W_INPLACE;
	w->guest_off = off;
	w->first_cl = gc;
	w->nr_cl = n;
	w->host_cl = host;
	w->len = q2_min64(end, (gc + n) << cb) - off;
	w->host_off = host + (off & (img->cluster_size - 1));
	return true;
}

int q2_write_begin(struct q2_image *img, const struct q2_chain *chain,
		   u64 off, u64 len, struct q2_write *w)
{
	struct q2_layer self = { .img = img };
	struct q2_chain one = { &self, 1 };
	struct q2_fills fp;
	int ret;

	memset(w, 0, sizeof(*w));
	ret = q2_wcheck(img, chain, off, &len);
	if (ret)
		return ret;
	if (q2_fast_inplace(img, off, len, w, false))
		return 0;
	if (!chain)
		chain = &one;
	q2_mutex_lock(&img->meta);
	ret = q2_wstart(img);
	if (!ret)
		ret = q2_plan(img, off, len, w, &fp);
	q2_mutex_unlock(&img->meta);
	if (ret || !w->commit)
		return ret;
	ret = q2_do_fills(img, chain, w, &fp);
	if (ret)
		q2_write_commit(img, w, ret);
	return ret;
}

int q2_write_nowait(struct q2_image *img, u64 off, u64 len,
		    struct q2_write *w)
{
	memset(w, 0, sizeof(*w));
	if (!img->writable || q2_load(&img->failed) || !len ||
	    off >= img->disk_size || len > img->disk_size - off)
		return -EAGAIN;
	if (!q2_fast_inplace(img, off, len, w, true) || w->len != len)
		return -EAGAIN;
	return 0;
}

/* ---- commit ------------------------------------------------------------- */

/* The entry a committed plan leaves for guest cluster @gc (old @e, @bm). */
static void q2_new_entry(const struct q2_image *img, const struct q2_write *w,
			 u64 gc, u64 e, u64 bm, u64 *ne, u64 *nbm)
{
	u64 host = w->host_cl + ((gc - w->first_cl) << img->cluster_bits);
	u32 touched, alloc, zero;

	*ne = host | Q2_OFLAG_COPIED;
	*nbm = 0;
	if (!img->extended_l2)
		return;
	touched = q2_touched(img, w->guest_off, w->guest_off + w->len, gc, NULL);
	if (w->kind == Q2W_REUSE) {
		*ne = e;
		alloc = (u32)bm | touched;
		zero = (u32)(bm >> 32) & ~alloc;
	} else if (e & Q2_OFLAG_COMPRESSED) {
		alloc = ~0U;
		zero = 0;
	} else {
		alloc = touched | ((e & Q2_OFFSET_MASK) ? (u32)bm : 0);
		zero = (u32)(bm >> 32) & ~alloc;
	}
	*nbm = (u64)zero << 32 | alloc;
}

#define Q2_BATCH	8

static int q2_commit_locked(struct q2_image *img, struct q2_write *w,
			    bool *linked)
{
	u64 l1e = img->l1[w->first_cl >> img->l2_bits], t = l1e & Q2_OFFSET_MASK;
	u64 hend = w->host_cl + ((u64)w->nr_cl << img->cluster_bits);
	struct q2_drop batch[Q2_BATCH];
	struct q2_l2_slot *slot;
	u32 i = 0, nb, j;
	int ret;

	if (!t || !(l1e & Q2_OFLAG_COPIED))
		return q2_write_failed(img, "commit (L2 table lost)", -EIO);
	/* Readers must see the data in the file before they see the entry. */
	if (hend > q2_load(&img->file_size))
		q2_store(&img->file_size, hend);
	while (i < w->nr_cl) {
		ret = q2_l2_get_locked(img, t, &slot);
		if (ret)
			return ret;
		for (nb = 0; i < w->nr_cl && nb < Q2_BATCH; i++) {
			u64 gc = w->first_cl + i, e, bm, ne, nbm;

			q2_entry_at(img, slot->data, gc, &e, &bm);
			q2_new_entry(img, w, gc, e, bm, &ne, &nbm);
			if (w->kind == Q2W_NEW &&
			    q2_entry_host(img, e, &batch[nb].off, &batch[nb].n))
				nb++;
			q2_entry_put(img, slot->data, gc, ne, nbm);
			*linked = true;
		}
		slot->dirty = true;
		q2_l2_put(slot);
		q2_mutex_unlock(&img->l2.lock);
		for (j = 0; j < nb; j++) {
			ret = q2_drop(img, batch[j].off, batch[j].n);
			if (ret)
				return ret;
		}
	}
	return 0;
}

int q2_write_commit(struct q2_image *img, struct q2_write *w, int err)
{
	bool linked = false;
	int ret = err;

	if (!w->commit)
		return err;
	q2_mutex_lock(&img->meta);
	if (!ret && q2_load(&img->failed))
		ret = -EIO;
	if (!ret)
		ret = q2_commit_locked(img, w, &linked);
	if (ret && w->kind == Q2W_NEW && !linked)
		q2_free_now(img, w->host_cl, w->nr_cl);
	q2_inflight_del(w);
	q2_store(&img->commit_seq, img->commit_seq + 1);
	q2_mutex_unlock(&img->meta);
	q2_wake_all(&img->waitq);
	w->commit = false;
	return ret;
}

/* ---- zeroing and discarding --------------------------------------------- */

u32 q2_zero_granule(const struct q2_image *img)
{
	return 1U << img->gran_bits;
}

#define Q2Z_SET		1	/* the entry changes to (*ne, *nbm) */
#define Q2Z_STOP	2	/* the caller must write zeros at *stop */

struct q2_zctx {
	unsigned int flags;
	bool backing;
};

/*
 * What zeroing [@a, @b) of the guest cluster at @base, whose entry is
 * (@e, @bm), takes.
 */
static int q2_zero_action(const struct q2_image *img, const struct q2_zctx *z,
			  u64 e, u64 bm, u64 base, u64 a, u64 b, u64 *ne,
			  u64 *nbm, u64 *stop)
{
	bool discard = z->flags & Q2_DISCARD, unmap = z->flags & Q2_ZERO_MAY_UNMAP;
	bool comp = e & Q2_OFLAG_COMPRESSED;
	u64 host = comp ? 0 : e & Q2_OFFSET_MASK, gran = 1ULL << img->gran_bits;
	bool full = a == base && (b == base + img->cluster_size ||
				  b == img->disk_size);
	u32 alloc = (u32)bm, zero = (u32)(bm >> 32);

	*ne = e;
	*nbm = bm;
	if (!img->extended_l2) {
		bool reads_zero = !comp && ((e & Q2_OFLAG_ZERO) ||
					    (!host && !z->backing));

		if (!full) {
			if (discard || reads_zero)
				return 0;
			*stop = a;
			return Q2Z_STOP;
		}
		if (discard) {
			if (z->backing && img->version < 3)
				return 0;
			*ne = z->backing ? Q2_OFLAG_ZERO : 0;
		} else if (img->version < 3) {
			if (z->backing) {
				*stop = a;
				return Q2Z_STOP;
			}
			*ne = 0;
		} else if (reads_zero && !(unmap && host)) {
			return 0;
		} else if (host && !unmap) {
			*ne = e | Q2_OFLAG_ZERO;
		} else {
			*ne = Q2_OFLAG_ZERO;
		}
		return *ne != e ? Q2Z_SET : 0;
	}

	if (!full) {
		u64 g, ge;
		u32 m = 0, bit;

		if (discard)
			return 0;
		/* Whole granules get the zero bit; stop at a partial one. */
		for (g = a; g < b; g = ge) {
			ge = q2_min64((g | (gran - 1)) + 1, b);
			bit = 1U << ((g >> img->gran_bits) & (Q2_SUBCLUSTERS - 1));
			if (ge - g == gran || (ge == img->disk_size && !(g & (gran - 1)))) {
				if (comp) {
					*stop = g;
					break;
				}
				m |= bit;
				continue;
			}
			/* Partial: fine if it reads as zeros already. */
			if (!comp && ((zero & bit) || (!(alloc & bit) && !z->backing)))
				continue;
			*stop = g;
			break;
		}
		if (m) {
			alloc &= ~m;
			zero |= m;
			*nbm = (u64)zero << 32 | alloc;
		}
		return (*nbm != bm ? Q2Z_SET : 0) | (g < b ? Q2Z_STOP : 0);
	}
	if (discard) {
		*ne = 0;
		*nbm = z->backing ? Q2_BM_ALL_ZERO : 0;
	} else if (!comp && !alloc && (zero == ~0U || !z->backing) &&
		   !(unmap && host)) {
		return 0;		/* reads as zeros already */
	} else if (host && !unmap) {
		*nbm = Q2_BM_ALL_ZERO;
	} else {
		*ne = 0;
		*nbm = Q2_BM_ALL_ZERO;
	}
	return (*ne != e || *nbm != bm) ? Q2Z_SET : 0;
}

/*
 * One pass over guest clusters [@pos, @end) of one L2 table at @t (0: no
 * table, all entries zero).  @apply: change the entries (the table must
 * be owned), a batch at a time so drops can be queued without the cache
 * lock.  Returns the Q2Z_* bits seen; *@stop where a Q2Z_STOP stopped.
 */
static int q2_zero_pass(struct q2_image *img, const struct q2_zctx *z, u64 t,
			u64 pos, u64 end, bool apply, u64 *stop)
{
	u32 cb = img->cluster_bits;
	u64 gc = pos >> cb, last = (end - 1) >> cb;
	struct q2_drop batch[Q2_BATCH];
	struct q2_l2_slot *slot = NULL;
	int seen = 0, act, ret = 0;
	u32 nb, j;

	while (gc <= last && !(seen & Q2Z_STOP)) {
		if (t) {
			ret = q2_l2_get_locked(img, t, &slot);
			if (ret)
				return ret;
		}
		for (nb = 0; gc <= last && nb < Q2_BATCH && !(seen & Q2Z_STOP);
		     gc++) {
			u64 base = gc << cb, e = 0, bm = 0, ne, nbm;

			if (slot)
				q2_entry_at(img, slot->data, gc, &e, &bm);
			ret = q2_check_wentry(img, e, bm, base);
			if (ret)
				break;
			act = q2_zero_action(img, z, e, bm, base,
					     q2_max64(pos, base),
					     q2_min64(end, base + img->cluster_size),
					     &ne, &nbm, stop);
			seen |= act;
			if (!(act & Q2Z_SET) || !apply)
				continue;
			if ((ne & Q2_OFFSET_MASK) != (e & Q2_OFFSET_MASK) ||
			    (e & Q2_OFLAG_COMPRESSED)) {
				if (q2_entry_host(img, e, &batch[nb].off,
						  &batch[nb].n))
					nb++;
			}
			q2_entry_put(img, slot->data, gc, ne, nbm);
			slot->dirty = true;
		}
		if (slot) {
			q2_l2_put(slot);
			q2_mutex_unlock(&img->l2.lock);
			slot = NULL;
		}
		if (ret)
			return ret;
		if (!apply)
			continue;
		for (j = 0; j < nb; j++) {
			ret = q2_drop(img, batch[j].off, batch[j].n);
			if (ret)
				return ret;
		}
	}
	return seen;
}

/*
 * Zero [*@pos, @end), inside one L2 table.  Returns 0 (done), 1 (stopped
 * at *@pos for the caller), -EAGAIN (slept for a plan: try again), or an
 * error.
 */
static int q2_zero_table(struct q2_image *img, const struct q2_zctx *z,
			 u64 *pos, u64 end)
{
	u32 cb = img->cluster_bits;
	u64 gc = *pos >> cb, l1i = gc >> img->l2_bits, t, stop = end;
	int seen, ret;

	if (q2_conflict(img, gc, ((end - 1) >> cb) - gc + 1)) {
		q2_wait_commit(img);
		return -EAGAIN;
	}
	t = img->l1[l1i] & Q2_OFFSET_MASK;
	if (t) {
		ret = q2_check_wl2(img, t, l1i);
		if (ret)
			return ret;
	}
	seen = q2_zero_pass(img, z, t, *pos, end, false, &stop);
	if (seen < 0)
		return seen;
	if (seen & Q2Z_SET) {
		ret = q2_l2_owned(img, l1i, &t);
		if (ret)
			return ret;
		seen = q2_zero_pass(img, z, t, *pos, end, true, &stop);
		if (seen < 0)
			return seen;
	}
	if (seen & Q2Z_STOP) {
		*pos = stop;
		return 1;
	}
	*pos = end;
	return 0;
}

int q2_zero(struct q2_image *img, const struct q2_chain *chain, u64 off,
	    u64 len, unsigned int flags, u64 *done)
{
	struct q2_zctx z = { .flags = flags };
	u64 end, pos = off, span = (u64)img->cluster_size << img->l2_bits;
	int ret;

	*done = off;
	if (flags & ~(Q2_ZERO_MAY_UNMAP | Q2_DISCARD))
		return -EINVAL;
	ret = q2_wcheck(img, chain, off, &len);
	if (ret)
		return ret;
	end = off + len;
	z.backing = chain && chain->nr > 1;
	q2_mutex_lock(&img->meta);
	ret = q2_wstart(img);
	while (!ret && pos < end) {
		u64 seg = q2_min64(end, (pos / span + 1) * span);

		ret = q2_zero_table(img, &z, &pos, seg);
		if (ret == -EAGAIN) {
			ret = 0;
			continue;
		}
		if (ret)
			break;
		/* Let writers in between tables. */
		q2_mutex_unlock(&img->meta);
		q2_mutex_lock(&img->meta);
		if (q2_load(&img->failed))
			ret = -EIO;
	}
	q2_mutex_unlock(&img->meta);
	if (ret == 1)
		ret = 0;
	*done = (!ret && (flags & Q2_DISCARD)) ? end : pos;
	return ret;
}

/* ---- flush, resize, close ----------------------------------------------- */

int q2_flush(struct q2_image *img)
{
	bool lift;
	u64 seq;
	int ret;

	if (!img->writable)
		return -EROFS;
	q2_mutex_lock(&img->flush_lock);
	q2_mutex_lock(&img->meta);
	if (q2_load(&img->failed))
		ret = -EIO;
	else if (img->wready)
		ret = q2_sync_locked(img);
	else
		ret = q2_file_flush(img);
	seq = img->quar_seq;
	lift = !ret && img->nr_quar;
	if (lift)
		img->quar_seq++;
	q2_mutex_unlock(&img->meta);
	if (lift) {
		if (img->barrier)
			(img->barrier)(img->barrier_ctx);
		q2_mutex_lock(&img->meta);
		q2_quar_lift(img, seq);
		q2_mutex_unlock(&img->meta);
	}
	q2_mutex_unlock(&img->flush_lock);
	return ret;
}

/* Move the L1 table to a new one of @need entries, with the new size. */
static int q2_grow_l1(struct q2_image *img, u32 need, u64 new_size)
{
	u64 bytes = (u64)need * 8, nclu = (bytes + img->cluster_size - 1) >>
					   img->cluster_bits;
	u64 old_off = img->l1_offset, old_n, noff, i, *nl1 = NULL;
	u8 *buf = NULL, *ndirty = NULL, hdr[24];
	bool fresh;
	u32 got;
	int ret;

	/* Every L2 table and L1 entry durable: the copy is complete. */
	ret = q2_sync_locked(img);
	if (ret)
		return ret;
	buf = q2_zalloc(nclu << img->cluster_bits);
	nl1 = q2_zalloc(bytes);
	ndirty = q2_zalloc((bytes + 511) / 512 / 8 + 1);
	if (!buf || !nl1 || !ndirty) {
		ret = -ENOMEM;
		goto out;
	}
	ret = q2_alloc_clusters(img, (u32)nclu, true, &noff, &got, &fresh);
	if (ret)
		goto out;
	for (i = 0; i < img->l1_size; i++) {
		nl1[i] = img->l1[i];
		q2_put_be64(buf + i * 8, nl1[i]);
	}
	ret = q2_rb_writeback(img);
	if (!ret)
		ret = q2_file_flush(img);
	if (!ret)
		ret = q2_meta_write(img, buf, nclu << img->cluster_bits, noff,
				    "L1 table write");
	if (!ret)
		ret = q2_file_flush(img);
	if (ret) {
		if (!q2_load(&img->failed))
			q2_free_now(img, noff, nclu);
		goto out;
	}
	/* Size, (unchanged) encryption, L1 size and offset: one write. */
	q2_put_be64(hdr, new_size);
	q2_put_be32(hdr + 8, img->crypt_method);
	q2_put_be32(hdr + 12, need);
	q2_put_be64(hdr + 16, noff);
	ret = q2_meta_write(img, hdr, sizeof(hdr), 24, "header write");
	if (!ret)
		ret = q2_file_flush(img);
	if (ret)
		goto out;
	old_n = q2_l1_span(img, img->l1_size) >> img->cluster_bits;
	q2_free(img->l1);
	q2_free(img->l1_dirty);
	img->l1 = nl1;
	img->l1_dirty = ndirty;
	nl1 = NULL;
	ndirty = NULL;
	img->l1_size = img->active_l1_size = need;
	img->l1_offset = img->active_l1_offset = noff;
	if (old_n)
		q2_free_now(img, old_off, old_n);
out:
	q2_free(buf);
	q2_free(nl1);
	q2_free(ndirty);
	return ret;
}

int q2_resize(struct q2_image *img, u64 new_size)
{
	u32 span_bits = img->cluster_bits + img->l2_bits;
	u64 need;
	u8 b[8];
	int ret;

	if (!img->writable)
		return -EROFS;
	if (q2_load(&img->failed))
		return -EIO;
	if (new_size < img->disk_size) {
		q2_log(img, "shrinking a qcow2 image is not supported");
		return -EOPNOTSUPP;
	}
	if (new_size & 511)
		return -EINVAL;
	if (new_size == img->disk_size)
		return 0;
	need = (new_size >> span_bits) + !!(new_size & ((1ULL << span_bits) - 1));
	if (need > Q2_MAX_L1_ENTRIES)
		return -EFBIG;
	q2_mutex_lock(&img->flush_lock);
	q2_mutex_lock(&img->meta);
	ret = q2_wstart(img);
	if (!ret && need > img->l1_size) {
		ret = q2_grow_l1(img, (u32)need, new_size);
	} else if (!ret) {
		q2_put_be64(b, new_size);
		ret = q2_meta_write(img, b, sizeof(b), 24, "header write");
		if (!ret)
			ret = q2_file_flush(img);
	}
	if (!ret)
		img->size = img->disk_size = new_size;
	q2_mutex_unlock(&img->meta);
	q2_mutex_unlock(&img->flush_lock);
	return ret;
}

/* q2_close_clean() through img->wclose: flush, write the decrements. */
static int q2_wclose(struct q2_image *img)
{
	int ret = -EIO;

	if (!q2_load(&img->failed)) {
		ret = q2_flush(img);
		q2_mutex_lock(&img->meta);
		if (!ret)
			ret = q2_rb_writeback(img);
		if (!ret) {
			q2_trim_tail(img);
			ret = q2_file_flush(img);
		}
		q2_mutex_unlock(&img->meta);
		if (ret)
			q2_log(img, "flushing at close failed (error %d)", ret);
	}
	q2_refcount_destroy(img);
	q2_free(img->l1_dirty);
	img->l1_dirty = NULL;
	return ret;
}
