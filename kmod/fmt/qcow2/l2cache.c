// SPDX-License-Identifier: GPL-2.0
/*
 * The L2 table cache: a fixed number of cluster-sized slots found through a
 * small hash on the table's host offset, evicted by CLOCK.  Buffers are
 * allocated on first use, so an image touching few tables costs little
 * whatever its budget.
 *
 * Everything here runs under img->l2.lock, but q2_l2_writeback().  A table
 * returned by q2_l2_get() or q2_l2_install() is pinned until q2_l2_put();
 * pinned or dirty slots are never evicted.  Only the write path (under the
 * image's metadata mutex) dirties tables, installs new ones and writes
 * them back; when every slot is dirty, q2_l2_get() says -EAGAIN and a
 * reader maps from a private copy (map.c) while a writer makes room.
 */
#include "q2_priv.h"

/* More slots than this would only cost slot-array memory. */
#define Q2_L2_MAX_SLOTS		65536U

int q2_l2_cache_init(struct q2_image *img, u64 budget)
{
	struct q2_l2_cache *c = &img->l2;
	u64 nr;
	unsigned int i, buckets = 1;

	if (!budget)
		budget = Q2_L2_CACHE_DEFAULT;
	nr = budget >> img->cluster_bits;
	/* There cannot be more distinct tables than L1 entries in use. */
	if (nr > img->l1_size)
		nr = img->l1_size;
	if (nr > Q2_L2_MAX_SLOTS)
		nr = Q2_L2_MAX_SLOTS;
	if (nr < Q2_L2_MIN)
		nr = Q2_L2_MIN;
	while (buckets < nr)
		buckets <<= 1;

	c->slots = q2_zalloc(sizeof(*c->slots) * nr);
	c->buckets = q2_alloc(sizeof(*c->buckets) * buckets);
	if (!c->slots || !c->buckets) {
		q2_free(c->slots);
		q2_free(c->buckets);
		c->slots = NULL;
		c->buckets = NULL;
		return -ENOMEM;
	}
	for (i = 0; i < buckets; i++)
		c->buckets[i] = -1;
	for (i = 0; i < nr; i++)
		c->slots[i].next = -1;
	c->nr = nr;
	c->bucket_mask = buckets - 1;
	q2_mutex_init(&c->lock);
	return 0;
}

void q2_l2_cache_destroy(struct q2_image *img)
{
	struct q2_l2_cache *c = &img->l2;
	unsigned int i;

	if (!c->slots)
		return;
	for (i = 0; i < c->nr; i++)
		q2_free(c->slots[i].data);
	q2_free(c->slots);
	q2_free(c->buckets);
	c->slots = NULL;
	q2_mutex_destroy(&c->lock);
}

static unsigned int q2_l2_hash(const struct q2_image *img, u64 offset)
{
	u64 k = offset >> img->cluster_bits;

	return (unsigned int)(k ^ (k >> 17) ^ (k >> 31)) & img->l2.bucket_mask;
}

static void q2_l2_unhash(struct q2_image *img, int idx)
{
	struct q2_l2_cache *c = &img->l2;
	int *pp = &c->buckets[q2_l2_hash(img, c->slots[idx].offset)];

	while (*pp != idx)
		pp = &c->slots[*pp].next;
	*pp = c->slots[idx].next;
	c->slots[idx].next = -1;
	c->slots[idx].offset = 0;
}

/* A slot to (re)use: a never-used one, else CLOCK over unpinned clean ones. */
static int q2_l2_victim(struct q2_image *img)
{
	struct q2_l2_cache *c = &img->l2;
	struct q2_l2_slot *s;
	unsigned int scanned;

	if (c->used < c->nr)
		return c->used;
	for (scanned = 0; scanned < 2 * c->nr; scanned++) {
		s = &c->slots[c->hand];
		c->hand = c->hand + 1 < c->nr ? c->hand + 1 : 0;
		if (s->pins || s->dirty)
			continue;
		if (s->referenced) {
			s->referenced = false;
			continue;
		}
		return s - c->slots;
	}
	return -1;
}

int q2_l2_get(struct q2_image *img, u64 offset, struct q2_l2_slot **slot)
{
	struct q2_l2_cache *c = &img->l2;
	unsigned int b = q2_l2_hash(img, offset);
	struct q2_l2_slot *s;
	int idx, ret;

	for (idx = c->buckets[b]; idx >= 0; idx = c->slots[idx].next) {
		s = &c->slots[idx];
		if (s->offset == offset) {
			c->hits++;
			s->referenced = true;
			s->pins++;
			*slot = s;
			return 0;
		}
	}
	c->misses++;
	idx = q2_l2_victim(img);
	if (idx < 0)
		return -EAGAIN;		/* every slot pinned or dirty */
	s = &c->slots[idx];
	if (!s->data) {
		s->data = q2_alloc(img->cluster_size);
		if (!s->data)
			return -ENOMEM;
		c->used++;
	} else if (s->offset) {
		q2_l2_unhash(img, idx);
	}
	ret = img->ops->pread(img->file, s->data, img->cluster_size, offset);
	if (ret)
		return ret;		/* the slot stays empty */
	s->offset = offset;
	s->referenced = true;
	s->pins = 1;
	s->next = c->buckets[b];
	c->buckets[b] = idx;
	*slot = s;
	return 0;
}

/* The table at @offset if cached (pinned), else NULL; never reads. */
struct q2_l2_slot *q2_l2_peek(struct q2_image *img, u64 offset)
{
	struct q2_l2_cache *c = &img->l2;
	int idx;

	for (idx = c->buckets[q2_l2_hash(img, offset)]; idx >= 0;
	     idx = c->slots[idx].next) {
		if (c->slots[idx].offset == offset) {
			c->hits++;
			c->slots[idx].referenced = true;
			c->slots[idx].pins++;
			return &c->slots[idx];
		}
	}
	return NULL;
}

void q2_l2_put(struct q2_l2_slot *slot)
{
	if (slot->pins)
		slot->pins--;
}

/*
 * A table the write path creates at @offset: a copy of @src, or zeros.
 * Dirty and pinned.  A stale slot for the same offset is reused.
 */
int q2_l2_install(struct q2_image *img, u64 offset, const u8 *src,
		  struct q2_l2_slot **slot)
{
	struct q2_l2_cache *c = &img->l2;
	unsigned int b = q2_l2_hash(img, offset);
	struct q2_l2_slot *s = NULL;
	int idx;

	for (idx = c->buckets[b]; idx >= 0; idx = c->slots[idx].next)
		if (c->slots[idx].offset == offset) {
			s = &c->slots[idx];
			break;
		}
	if (!s) {
		idx = q2_l2_victim(img);
		if (idx < 0)
			return -EAGAIN;
		s = &c->slots[idx];
		if (!s->data) {
			s->data = q2_alloc(img->cluster_size);
			if (!s->data)
				return -ENOMEM;
			c->used++;
		} else if (s->offset) {
			q2_l2_unhash(img, idx);
		}
		s->offset = offset;
		s->next = c->buckets[b];
		c->buckets[b] = idx;
	}
	if (src)
		memcpy(s->data, src, img->cluster_size);
	else
		memset(s->data, 0, img->cluster_size);
	s->dirty = true;
	s->referenced = true;
	s->pins++;
	*slot = s;
	return 0;
}

/* Slots a new table could take now: never used, or clean and unpinned. */
unsigned int q2_l2_room(struct q2_image *img)
{
	struct q2_l2_cache *c = &img->l2;
	unsigned int i, n = c->nr - c->used;

	for (i = 0; i < c->used; i++)
		n += !c->slots[i].pins && !c->slots[i].dirty;
	return n;
}

bool q2_l2_any_dirty(struct q2_image *img)
{
	struct q2_l2_cache *c = &img->l2;
	bool dirty = false;
	unsigned int i;

	q2_mutex_lock(&c->lock);
	for (i = 0; i < c->used && !dirty; i++)
		dirty = c->slots[i].dirty;
	q2_mutex_unlock(&c->lock);
	return dirty;
}

/*
 * Write every dirty table (the caller holds the metadata mutex, which
 * alone dirties tables, and has made what they depend on durable).  The
 * lock is dropped across each write: the slot is pinned, and readers may
 * keep reading it.
 */
int q2_l2_writeback(struct q2_image *img)
{
	struct q2_l2_cache *c = &img->l2;
	struct q2_l2_slot *s;
	unsigned int i;
	u64 off;
	int ret = 0;

	for (i = 0; i < c->nr && !ret; i++) {
		q2_mutex_lock(&c->lock);
		s = &c->slots[i];
		if (i >= c->used || !s->dirty || !s->offset) {
			q2_mutex_unlock(&c->lock);
			continue;
		}
		s->pins++;
		off = s->offset;
		q2_mutex_unlock(&c->lock);

		ret = img->ops->pwrite(img->file, s->data, img->cluster_size, off);

		q2_mutex_lock(&c->lock);
		s->pins--;
		if (!ret)
			s->dirty = false;
		q2_mutex_unlock(&c->lock);
		img->unflushed = true;
	}
	return ret;
}

void q2_cache_stats(struct q2_image *img, struct q2_cache_stats *st)
{
	struct q2_l2_cache *c = &img->l2;

	memset(st, 0, sizeof(*st));
	st->table_bytes = img->cluster_size;
	if (!c->slots)
		return;
	q2_mutex_lock(&c->lock);
	st->hits = c->hits;
	st->misses = c->misses;
	st->tables = c->nr;
	st->used = c->used;
	q2_mutex_unlock(&c->lock);
}
