// SPDX-License-Identifier: GPL-2.0
/*
 * Guest-to-host translation: L1 (in memory) -> L2 (cached) -> extents.
 *
 * Every host offset taken from the image is checked before it is used: a
 * table or data cluster must be cluster aligned, past the header cluster,
 * clear of the L1 and refcount tables and (where it is read) inside the
 * file.  A violation is corruption: the map fails with -EIO and one
 * rate-limited line is logged.  The work per call is bounded by one L2
 * table (or by the L1 size for unallocated L1 entries).
 */
#include "q2_priv.h"

Q2_PRINTF(3, 4)
static int q2_corrupt(struct q2_image *img, u64 guest, const char *fmt, ...)
{
	char buf[96];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	q2_log(img, "corrupt image at guest offset 0x%llx: %s", guest, buf);
	return -EIO;
}

/* Which metadata, if any, the host range [@off, @off + @len) runs into. */
const char *q2_hits_metadata(const struct q2_image *img, u64 off, u64 len)
{
	if (off < img->cluster_size)
		return "the header cluster";
	/* Metadata owns whole clusters, as in QEMU's overlap checks. */
	if (q2_ranges_overlap(off, len, img->active_l1_offset,
			      q2_l1_span(img, img->active_l1_size)))
		return "the L1 table";
	if (img->l1_offset != img->active_l1_offset &&
	    q2_ranges_overlap(off, len, img->l1_offset,
			      q2_l1_span(img, img->l1_size)))
		return "the snapshot L1 table";
	if (q2_ranges_overlap(off, len, q2_load(&img->reftable_offset),
			      (u64)q2_load(&img->reftable_clusters) << img->cluster_bits))
		return "the refcount table";
	return NULL;
}

/* Bytes of the file that may hold metadata: what the file had, or more. */
static u64 q2_meta_limit(const struct q2_image *img)
{
	return q2_max64(q2_load(&img->file_size), q2_load(&img->alloc_end));
}

int q2_check_l2_offset(struct q2_image *img, u64 l2_off, u64 l1_index)
{
	u64 guest = l1_index << (img->cluster_bits + img->l2_bits);
	const char *what;

	if (l2_off & (img->cluster_size - 1))
		return q2_corrupt(img, guest, "L2 table offset 0x%llx unaligned",
				  l2_off);
	what = q2_hits_metadata(img, l2_off, img->cluster_size);
	if (what)
		return q2_corrupt(img, guest, "L2 table at 0x%llx overlaps %s",
				  l2_off, what);
	if (l2_off > q2_meta_limit(img) ||
	    q2_meta_limit(img) - l2_off < img->cluster_size)
		return q2_corrupt(img, guest, "L2 table at 0x%llx past end of file",
				  l2_off);
	return 0;
}

/* A data cluster's host offset, before any of it is read. */
static int q2_check_data(struct q2_image *img, u64 hc, u64 guest)
{
	const char *what;

	if (hc & (img->cluster_size - 1))
		return q2_corrupt(img, guest, "data cluster offset 0x%llx unaligned",
				  hc);
	what = q2_hits_metadata(img, hc, img->cluster_size);
	if (what)
		return q2_corrupt(img, guest, "data cluster at 0x%llx overlaps %s",
				  hc, what);
	return 0;
}

/*
 * Type of granule @sc (a subcluster with extended L2, else the cluster) of
 * the L2 entry @e with subcluster bitmap @bm.  For %Q2_DATA, *@host is the
 * host cluster offset; for %Q2_COMPRESSED, the entry itself.
 */
static int q2_classify(struct q2_image *img, u64 e, u64 bm, u32 sc, u64 guest,
		       enum q2_type *type, u64 *host)
{
	u64 hc = e & Q2_OFFSET_MASK;
	u32 alloc = (u32)bm, zero = (u32)(bm >> 32), bit = 1U << sc;

	*host = hc;
	if (e & Q2_OFLAG_COMPRESSED) {
		if (bm)
			return q2_corrupt(img, guest,
					  "compressed cluster with subcluster bitmap 0x%llx",
					  bm);
		*type = Q2_COMPRESSED;
		*host = e;
		return 0;
	}
	if (!img->extended_l2) {
		if (e & Q2_OFLAG_ZERO) {
			if (img->version < 3)
				return q2_corrupt(img, guest,
						  "zero flag in a version 2 image");
			if (hc & (img->cluster_size - 1))
				return q2_corrupt(img, guest,
						  "zero cluster offset 0x%llx unaligned",
						  hc);
			*type = Q2_ZERO;
			return 0;
		}
		if (!hc) {
			*type = Q2_UNALLOC;
			return 0;
		}
		*type = Q2_DATA;
		return q2_check_data(img, hc, guest);
	}

	if (alloc & zero)
		return q2_corrupt(img, guest,
				  "subclusters both allocated and zero (0x%llx)", bm);
	if (!hc) {
		if (alloc)
			return q2_corrupt(img, guest,
					  "unallocated cluster with allocated subclusters (0x%llx)",
					  bm);
		*type = zero & bit ? Q2_ZERO : Q2_UNALLOC;
		return 0;
	}
	if (hc & (img->cluster_size - 1))
		return q2_corrupt(img, guest, "cluster offset 0x%llx unaligned", hc);
	if (zero & bit) {
		*type = Q2_ZERO;
		return 0;
	}
	if (!(alloc & bit)) {
		*type = Q2_UNALLOC;
		return 0;
	}
	*type = Q2_DATA;
	return q2_check_data(img, hc, guest);
}

/*
 * Decode a compressed cluster descriptor (x = 62 - (cluster_bits - 8)):
 * bits 0..x-1 the host offset, bits x..61 the number of 512-byte sectors
 * beyond the first.  The last sector may run past EOF: the data itself
 * ends earlier, so the read is clipped to the file.
 */
static int q2_compressed(struct q2_image *img, u64 e, u64 guest,
			 struct q2_extent *ext)
{
	u64 fsize = q2_load(&img->file_size);
	u64 coff = e & img->coffset_mask;
	u64 nb = ((e >> img->csize_shift) & img->csize_mask) + 1;
	u64 clen = (nb << Q2_SECTOR_BITS) - (coff & ((1U << Q2_SECTOR_BITS) - 1));
	const char *what;

	if (coff >= Q2_MAX_HOST_OFFSET)
		return q2_corrupt(img, guest, "compressed offset 0x%llx too large",
				  coff);
	if (coff >= fsize)
		return q2_corrupt(img, guest,
				  "compressed data at 0x%llx past end of file", coff);
	if (clen > fsize - coff)
		clen = fsize - coff;
	what = q2_hits_metadata(img, coff, clen);
	if (what)
		return q2_corrupt(img, guest,
				  "compressed data at 0x%llx+%llu overlaps %s",
				  coff, clen, what);
	ext->comp_off = coff;
	ext->comp_len = (u32)clen;	/* at most two clusters */
	return 0;
}

/* Map [@off, @end) within the L2 table @table; @end is inside the table. */
static int q2_map_table(struct q2_image *img, const u8 *table, u64 off,
			u64 end, struct q2_extent *ext)
{
	u64 gran = 1ULL << img->gran_bits, pos = off;
	u64 fsize = q2_load(&img->file_size);
	u32 idx_mask = (1U << img->l2_bits) - 1;
	enum q2_type type = Q2_UNALLOC;
	int ret;

	while (pos < end) {
		u64 cl = pos >> img->cluster_bits;
		const u8 *p = table + (size_t)(cl & idx_mask) * img->l2_entry_bytes;
		u64 e = q2_be64(p);
		u64 bm = img->extended_l2 ? q2_be64(p + 8) : 0;
		u32 sc = img->extended_l2 ?
			 (u32)(pos >> img->gran_bits) & (Q2_SUBCLUSTERS - 1) : 0;
		u64 gstart = pos & ~(gran - 1);
		u64 seg_end = gstart + gran < end ? gstart + gran : end;
		u64 host, hpos = 0;

		ret = q2_classify(img, e, bm, sc, pos, &type, &host);
		if (ret)
			return ret;
		if (type == Q2_DATA) {
			u64 hs = host + ((u64)sc << img->gran_bits);

			if (hs >= fsize && hs >= q2_meta_limit(img))
				return q2_corrupt(img, pos,
						  "data at 0x%llx past end of file (0x%llx)",
						  hs, fsize);
			/*
			 * A file may end inside its last cluster (QEMU does not
			 * always write whole clusters); the rest reads as zeros.
			 */
			hpos = hs + (pos - gstart);
			if (hpos >= fsize)
				type = Q2_ZERO;
			else if (fsize - hpos < seg_end - pos)
				seg_end = pos + (fsize - hpos);
		}
		if (pos == off) {
			ext->type = type;
			if (type == Q2_DATA)
				ext->host_off = hpos;
			if (type == Q2_COMPRESSED) {
				u64 cend = (cl + 1) << img->cluster_bits;

				ret = q2_compressed(img, host, pos, ext);
				if (ret)
					return ret;
				ext->cluster_off = (u32)(pos & (img->cluster_size - 1));
				pos = cend < end ? cend : end;
				break;
			}
		} else if (type != ext->type ||
			   (type == Q2_DATA && hpos != ext->host_off + (pos - off))) {
			break;
		}
		pos = seg_end;
	}
	ext->len = pos - off;
	return 0;
}

/*
 * Every cache slot holds a dirty table (the write path writes them back
 * when it needs room, readers cannot): map from a private copy.  A table
 * not in the cache is clean, so the file has it.
 */
static int q2_map_bypass(struct q2_image *img, u64 l2_off, u64 off, u64 end,
			 struct q2_extent *ext)
{
	u8 *buf = q2_alloc(img->cluster_size);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = img->ops->pread(img->file, buf, img->cluster_size, l2_off);
	if (!ret)
		ret = q2_map_table(img, buf, off, end, ext);
	q2_free(buf);
	return ret;
}

/*
 * Write path: an L2 entry (@bm its bitmap with extended L2) about to be
 * written through or replaced, checked as the read path would: reserved
 * bits aside, anything q2_map() would call corrupt is -EIO here too, and
 * host clusters must not be metadata we know.
 */
int q2_check_entry(struct q2_image *img, u64 e, u64 bm, u64 guest)
{
	u64 hc = e & Q2_OFFSET_MASK;
	u32 alloc = (u32)bm, zero = (u32)(bm >> 32);
	const char *what;

	if (e & Q2_OFLAG_COMPRESSED) {
		u64 coff = e & img->coffset_mask;

		if (bm)
			return q2_corrupt(img, guest,
					  "compressed cluster with subcluster bitmap 0x%llx",
					  bm);
		if (coff >= Q2_MAX_HOST_OFFSET || coff < img->cluster_size)
			return q2_corrupt(img, guest,
					  "compressed offset 0x%llx invalid", coff);
		return 0;
	}
	if (img->extended_l2) {
		if (alloc & zero)
			return q2_corrupt(img, guest,
					  "subclusters both allocated and zero (0x%llx)",
					  bm);
		if (!hc && alloc)
			return q2_corrupt(img, guest,
					  "unallocated cluster with allocated subclusters (0x%llx)",
					  bm);
	} else if ((e & Q2_OFLAG_ZERO) && img->version < 3) {
		return q2_corrupt(img, guest, "zero flag in a version 2 image");
	}
	if (!hc)
		return 0;
	if (hc & (img->cluster_size - 1))
		return q2_corrupt(img, guest, "cluster offset 0x%llx unaligned", hc);
	what = q2_hits_metadata(img, hc, img->cluster_size);
	if (what)
		return q2_corrupt(img, guest, "data cluster at 0x%llx overlaps %s",
				  hc, what);
	return 0;
}

/*
 * The part of q2_map() before the L2 table: clip, read the L1 entry, map
 * an empty one.  Returns 1 with *@l2_off and *@end set when the table is
 * needed, else 0 (@ext filled) or -errno.
 */
static int q2_map_l1(struct q2_image *img, u64 off, u64 len,
		     struct q2_extent *ext, u64 *l2_off, u64 *end)
{
	u32 span_bits = img->cluster_bits + img->l2_bits;
	u64 l1_index, tbl_end;
	int ret;

	memset(ext, 0, sizeof(*ext));
	if (img->header_only || !len || off >= img->disk_size)
		return -EINVAL;
	/* disk_size < 2^62 (checked at open), so none of this overflows. */
	if (len > img->disk_size - off)
		len = img->disk_size - off;
	*end = off + len;
	l1_index = off >> span_bits;
	/* The write path changes L1 entries under us: load each once. */
	*l2_off = l1_index < img->l1_size ?
		  q2_load_acquire(&img->l1[l1_index]) & Q2_OFFSET_MASK : 0;

	if (!*l2_off) {
		/* Coalesce a run of empty L1 entries, bounded by the L1 size. */
		u64 i = l1_index + 1;

		while (i < img->l1_size && (i << span_bits) < *end &&
		       !(q2_load(&img->l1[i]) & Q2_OFFSET_MASK))
			i++;
		tbl_end = i < img->l1_size ? i << span_bits : *end;
		ext->type = Q2_UNALLOC;
		ext->len = (tbl_end < *end ? tbl_end : *end) - off;
		return 0;
	}

	ret = q2_check_l2_offset(img, *l2_off, l1_index);
	if (ret)
		return ret;
	tbl_end = (l1_index + 1) << span_bits;
	if (*end > tbl_end)
		*end = tbl_end;
	return 1;
}

int q2_map(struct q2_image *img, u64 off, u64 len, struct q2_extent *ext)
{
	struct q2_l2_slot *slot;
	u64 l2_off, end;
	int ret, tries;

	ret = q2_map_l1(img, off, len, ext, &l2_off, &end);
	if (ret <= 0)
		return ret;

	for (tries = 0; tries < 2; tries++) {
		q2_mutex_lock(&img->l2.lock);
		ret = q2_l2_get(img, l2_off, &slot);
		if (!ret) {
			ret = q2_map_table(img, slot->data, off, end, ext);
			q2_l2_put(slot);
		}
		q2_mutex_unlock(&img->l2.lock);
		/*
		 * Every slot dirty: have the write path (installed before it
		 * dirtied any) write them back, else map from a copy.
		 */
		if (ret != -EAGAIN || !img->wreclaim || img->wreclaim(img))
			break;
	}
	if (ret == -EAGAIN)
		ret = q2_map_bypass(img, l2_off, off, end, ext);
	if (ret == -EIO)
		memset(ext, 0, sizeof(*ext));
	return ret;
}

int q2_map_nowait(struct q2_image *img, u64 off, u64 len,
		  struct q2_extent *ext)
{
	struct q2_l2_slot *slot;
	u64 l2_off, end;
	int ret;

	ret = q2_map_l1(img, off, len, ext, &l2_off, &end);
	if (ret <= 0)
		return ret;
	if (!q2_mutex_trylock(&img->l2.lock))
		return -EAGAIN;
	slot = q2_l2_peek(img, l2_off);
	if (slot) {
		ret = q2_map_table(img, slot->data, off, end, ext);
		q2_l2_put(slot);
	} else {
		ret = -EAGAIN;
	}
	q2_mutex_unlock(&img->l2.lock);
	if (ret == -EIO)
		memset(ext, 0, sizeof(*ext));
	return ret;
}
