// SPDX-License-Identifier: GPL-2.0
/*
 * qcow2 open: header, header extensions, refcount table, snapshot table and
 * L1 table, each validated before anything is allocated from it.  Every
 * refusal writes one short reason naming the field and its value, since it
 * becomes a netlink extended-ACK message (80 bytes at most).
 *
 * Layout and limits follow QEMU's docs/interop/qcow2.rst and the checks of
 * QEMU's own qcow2_do_open(), whose implementation limits (32 MiB L1, 8 MiB
 * refcount table, 65536 snapshots in 64 MiB) every image it writes obeys.
 */
#include "q2_priv.h"

struct q2_open_ctx {
	const struct q2_open_args *args;
	struct q2_image *img;
	u8 *hbuf;			/* the header cluster, zero padded */
};

Q2_PRINTF(3, 4)
static int q2_fail(struct q2_open_ctx *ctx, int ret, const char *fmt, ...)
{
	const struct q2_open_args *a = ctx->args;
	size_t len;
	va_list ap;

	if (a->err && a->err_len) {
		len = a->err_len < Q2_ERR_MAX ? a->err_len : Q2_ERR_MAX;
		va_start(ap, fmt);
		vsnprintf(a->err, len, fmt, ap);
		va_end(ap);
	}
	return ret;
}

void q2_log(const struct q2_image *img, const char *fmt, ...)
{
	char buf[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	q2_warn_rl("%s%s%s", img->name, img->name[0] ? ": " : "", buf);
}

bool q2_probe(const void *buf, size_t len)
{
	return len >= Q2_MAGIC_LEN && q2_be32(buf) == Q2_MAGIC;
}

/* Number of L1 entries needed to map @size bytes, without overflow. */
static u64 q2_size_to_l1(const struct q2_image *img, u64 size)
{
	u32 shift = img->cluster_bits + img->l2_bits;

	return (size >> shift) + !!(size & ((1ULL << shift) - 1));
}

/* Largest virtual size the L1 limit can address. */
static u64 q2_max_size(const struct q2_image *img)
{
	return (u64)Q2_MAX_L1_ENTRIES << (img->cluster_bits + img->l2_bits);
}

static bool q2_past_eof(const struct q2_image *img, u64 off, u64 len)
{
	return off > img->file_size || len > img->file_size - off;
}

static const char *q2_crypt_name(u32 method)
{
	return method == Q2_CRYPT_AES ? "AES" : "LUKS";
}

static int q2_parse_fixed(struct q2_open_ctx *ctx)
{
	struct q2_image *img = ctx->img;
	const u8 *h = ctx->hbuf;
	u64 boff;

	img->size = q2_be64(h + 24);
	img->crypt_method = q2_be32(h + 32);
	img->active_l1_size = q2_be32(h + 36);
	img->active_l1_offset = q2_be64(h + 40);
	img->reftable_offset = q2_be64(h + 48);
	img->reftable_clusters = q2_be32(h + 56);
	img->nb_snapshots = q2_be32(h + 60);
	img->snapshots_offset = q2_be64(h + 64);

	if (img->version == 2) {
		img->refcount_order = 4;
		img->header_length = Q2_V2_HEADER_LEN;
	} else {
		img->incompat = q2_be64(h + 72);
		img->compat = q2_be64(h + 80);
		img->autoclear = q2_be64(h + 88);
		img->refcount_order = q2_be32(h + 96);
		img->header_length = q2_be32(h + 100);
		if (img->header_length < Q2_V3_HEADER_LEN)
			return q2_fail(ctx, -EINVAL,
				       "header_length %u too small (minimum 104)",
				       img->header_length);
		if (img->header_length > img->cluster_size)
			return q2_fail(ctx, -EINVAL,
				       "header_length %u exceeds the %u-byte cluster",
				       img->header_length, img->cluster_size);
		if (img->header_length > Q2_V3_HEADER_LEN)
			img->compression_type = h[104];
	}
	if (img->refcount_order > Q2_MAX_REFCOUNT_ORDER)
		return q2_fail(ctx, -EINVAL,
			       "refcount_order %u out of range 0..6",
			       img->refcount_order);
	if (img->crypt_method > Q2_CRYPT_LUKS)
		return q2_fail(ctx, -EINVAL, "unknown crypt_method %u",
			       img->crypt_method);

	boff = q2_be64(h + 8);
	if (boff) {
		u32 blen = q2_be32(h + 16);

		if (blen > Q2_BACKING_NAME_MAX)
			return q2_fail(ctx, -EINVAL,
				       "backing file name length %u exceeds 1023",
				       blen);
		if (boff < img->header_length)
			return q2_fail(ctx, -EINVAL,
				       "backing file name at 0x%llx overlaps the header",
				       boff);
		if (boff > img->cluster_size || blen > img->cluster_size - boff)
			return q2_fail(ctx, -EINVAL,
				       "backing file name at 0x%llx+%u is outside the header cluster",
				       boff, blen);
		if (q2_past_eof(img, boff, blen))
			return q2_fail(ctx, -EINVAL,
				       "backing file name at 0x%llx+%u is past end of file",
				       boff, blen);
		if (memchr(h + boff, 0, blen))
			return q2_fail(ctx, -EINVAL,
				       "backing file name contains a NUL byte");
		/* An empty name means no backing file, as in QEMU. */
		if (blen) {
			img->backing_name = q2_alloc(blen + 1);
			if (!img->backing_name)
				return -ENOMEM;
			memcpy(img->backing_name, h + boff, blen);
			img->backing_name[blen] = 0;
		}
	}
	return 0;
}

static char *q2_strndup(const u8 *s, u32 len)
{
	const u8 *nul = memchr(s, 0, len);
	char *p;

	if (nul)
		len = nul - s;
	p = q2_alloc(len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = 0;
	}
	return p;
}

static int q2_parse_feature_table(struct q2_open_ctx *ctx, const u8 *p,
				  u32 len)
{
	struct q2_image *img = ctx->img;
	u32 i, n = len / Q2_FEATURE_ENTRY_LEN;
	char *rec;

	if (img->feature_names || !n)
		return 0;	/* QEMU, too, uses the first table */
	img->feature_names = q2_zalloc((size_t)n * Q2_FEATURE_REC_LEN);
	if (!img->feature_names)
		return -ENOMEM;
	img->nr_feature_names = n;
	for (i = 0; i < n; i++) {
		rec = img->feature_names + (size_t)i * Q2_FEATURE_REC_LEN;
		rec[0] = p[0];
		rec[1] = p[1];
		memcpy(rec + 2, p + 2, Q2_FEATURE_NAME_LEN);
		p += Q2_FEATURE_ENTRY_LEN;
	}
	return 0;
}

static int q2_parse_extensions(struct q2_open_ctx *ctx)
{
	struct q2_image *img = ctx->img;
	const u8 *h = ctx->hbuf;
	u64 boff = q2_be64(h + 8);
	u32 off = img->header_length;
	u32 end, magic, len;
	int ret;

	/*
	 * Extensions run from the end of the header to the backing file name
	 * (or the end of the header cluster); QEMU stops at an end marker or
	 * when no room is left.
	 */
	end = boff && boff < img->cluster_size ? (u32)boff : img->cluster_size;
	while (off < end) {
		if (end - off < 8)
			return q2_fail(ctx, -EINVAL,
				       "header extension at 0x%x overruns the header area",
				       off);
		magic = q2_be32(h + off);
		len = q2_be32(h + off + 4);
		off += 8;
		if (len > end - off)
			return q2_fail(ctx, -EINVAL,
				       "header extension 0x%08x at 0x%x: length %u too large",
				       magic, off - 8, len);
		switch (magic) {
		case Q2_EXT_END:
			return 0;
		case Q2_EXT_BACKING_FORMAT:
			if (len > Q2_BACKING_FMT_MAX)
				return q2_fail(ctx, -EINVAL,
					       "backing format extension too long (%u bytes)",
					       len);
			memcpy(img->backing_fmt, h + off, len);
			img->backing_fmt[len] = 0;
			img->has_backing_fmt = true;
			break;
		case Q2_EXT_FEATURE_TABLE:
			ret = q2_parse_feature_table(ctx, h + off, len);
			if (ret)
				return ret;
			break;
		case Q2_EXT_BITMAPS:
			/* Dirty bitmaps do not change what the guest reads. */
			img->has_bitmaps = true;
			break;
		case Q2_EXT_CRYPTO:
			if (img->crypt_method != Q2_CRYPT_LUKS)
				return q2_fail(ctx, -EINVAL,
					       "encryption header extension without LUKS encryption");
			if (len != 16)
				return q2_fail(ctx, -EINVAL,
					       "encryption header extension length %u, not 16",
					       len);
			img->has_crypto_header = true;
			break;
		case Q2_EXT_DATA_FILE:
			if (!img->data_file_name) {
				img->data_file_name = q2_strndup(h + off, len);
				if (!img->data_file_name)
					return -ENOMEM;
			}
			break;
		default:
			/* Unknown extensions are safe to ignore (spec). */
			break;
		}
		/* Padding to 8; may step past @end, which ends the loop. */
		off += (u32)(((u64)len + 7) & ~7ULL);
	}
	return 0;
}

static const char *const q2_incompat_names[] = {
	"dirty bit", "corrupt bit", "external data file", "compression type",
	"extended L2 entries",
};

const char *q2_feature_name(const struct q2_image *img,
			    enum q2_feature_type type, unsigned int bit)
{
	const char *rec;
	u32 i;

	for (i = 0; i < img->nr_feature_names; i++) {
		rec = img->feature_names + (size_t)i * Q2_FEATURE_REC_LEN;
		if ((u8)rec[0] == type && (u8)rec[1] == bit && rec[2])
			return rec + 2;
	}
	switch (type) {
	case Q2_FEAT_INCOMPAT:
		if (bit < ARRAY_SIZE(q2_incompat_names))
			return q2_incompat_names[bit];
		break;
	case Q2_FEAT_COMPAT:
		if (bit == 0)
			return "lazy refcounts";
		break;
	case Q2_FEAT_AUTOCLEAR:
		if (bit == 0)
			return "bitmaps";
		if (bit == 1)
			return "raw external data";
		break;
	}
	return NULL;
}

const char *q2_compression_name(u32 type)
{
	return type == Q2_COMP_ZSTD ? "zstd" : "zlib";
}

static int q2_check_features(struct q2_open_ctx *ctx)
{
	struct q2_image *img = ctx->img;
	bool header_only = img->header_only;
	u64 unknown = img->incompat & ~Q2_INCOMPAT_KNOWN;
	const char *name;
	unsigned int bit;

	if (unknown) {
		for (bit = 0; !(unknown & (1ULL << bit)); bit++)
			;
		name = q2_feature_name(img, Q2_FEAT_INCOMPAT, bit);
		if (name)
			return q2_fail(ctx, -EOPNOTSUPP,
				       "unknown incompatible feature bit %u (%.32s)",
				       bit, name);
		return q2_fail(ctx, -EOPNOTSUPP,
			       "unknown incompatible feature bit %u", bit);
	}
	if (img->crypt_method && !header_only)
		return q2_fail(ctx, -EOPNOTSUPP,
			       "image is encrypted (%s); decrypt it with qemu-img convert first",
			       q2_crypt_name(img->crypt_method));
	if ((img->incompat & Q2_INCOMPAT_DATA_FILE) && !header_only)
		return q2_fail(ctx, -EOPNOTSUPP,
			       "image has an external data file; qemu-img convert it first");

	switch (img->compression_type) {
	case Q2_COMP_DEFLATE:
		if (img->incompat & Q2_INCOMPAT_COMPRESSION)
			return q2_fail(ctx, -EINVAL,
				       "compression type bit set but compression_type is 0");
		break;
	case Q2_COMP_ZSTD:
		if (!(img->incompat & Q2_INCOMPAT_COMPRESSION))
			return q2_fail(ctx, -EINVAL,
				       "compression_type %u without the compression type bit",
				       img->compression_type);
		break;
	default:
		return q2_fail(ctx, -EOPNOTSUPP, "unknown compression_type %u",
			       img->compression_type);
	}

	img->extended_l2 = img->incompat & Q2_INCOMPAT_EXTL2;
	if (img->extended_l2 && img->cluster_bits < 14)
		return q2_fail(ctx, -EINVAL,
			       "extended L2 needs cluster_bits >= 14, not %u",
			       img->cluster_bits);
	return 0;
}

static void q2_set_geometry(struct q2_image *img)
{
	img->l2_entry_bytes = img->extended_l2 ? 16 : 8;
	img->l2_bits = img->cluster_bits - (img->extended_l2 ? 4 : 3);
	img->gran_bits = img->cluster_bits -
			 (img->extended_l2 ? Q2_SUBCLUSTER_BITS : 0);
	/* Compressed descriptor: x = 62 - (cluster_bits - 8). */
	img->csize_shift = 62 - (img->cluster_bits - 8);
	img->csize_mask = (1ULL << (img->cluster_bits - 8)) - 1;
	img->coffset_mask = (1ULL << img->csize_shift) - 1;
}

/*
 * QEMU's qcow2_validate_table() refuses an unaligned or (as a signed file
 * offset) negative table offset even when the table is empty; so do we.
 */
static bool q2_bad_empty_table(const struct q2_image *img, u64 off)
{
	return (off & (img->cluster_size - 1)) || off > (u64)S64_MAX;
}

/* A cluster-aligned table of @bytes at @off, inside the file, after the header. */
static int q2_check_table(struct q2_open_ctx *ctx, const char *what, u64 off,
			  u64 bytes)
{
	struct q2_image *img = ctx->img;

	if (off & (img->cluster_size - 1))
		return q2_fail(ctx, -EINVAL, "%s at 0x%llx is not cluster aligned",
			       what, off);
	if (!bytes && off > (u64)S64_MAX)
		return q2_fail(ctx, -EINVAL, "%s offset 0x%llx is invalid", what, off);
	if (off < img->cluster_size)
		return q2_fail(ctx, -EINVAL, "%s at 0x%llx overlaps the header",
			       what, off);
	if (q2_past_eof(img, off, bytes))
		return q2_fail(ctx, -EINVAL,
			       "%s at 0x%llx+0x%llx is past end of file",
			       what, off, bytes);
	return 0;
}

static int q2_check_tables(struct q2_open_ctx *ctx)
{
	struct q2_image *img = ctx->img;
	u64 needed = q2_size_to_l1(img, img->size);
	u64 l1_bytes = (u64)img->active_l1_size * 8;
	u64 rt_bytes;
	int ret;

	if (needed > Q2_MAX_L1_ENTRIES)
		return q2_fail(ctx, -EFBIG, "virtual size %llu too large (max %llu)",
			       img->size, q2_max_size(img));
	if (img->active_l1_size > Q2_MAX_L1_ENTRIES)
		return q2_fail(ctx, -EFBIG,
			       "l1_size %u exceeds the 32 MiB L1 limit",
			       img->active_l1_size);
	if (img->active_l1_size < needed)
		return q2_fail(ctx, -EINVAL,
			       "l1_size %u too small for virtual size %llu",
			       img->active_l1_size, img->size);
	/* QEMU checks even an empty table's offset (q2_bad_empty_table()). */
	if (img->active_l1_size || q2_bad_empty_table(img, img->active_l1_offset)) {
		ret = q2_check_table(ctx, "L1 table", img->active_l1_offset,
				     l1_bytes);
		if (ret)
			return ret;
	}

	/* The refcount table: unused for reads, the write path needs it. */
	if (!img->reftable_clusters)
		return q2_fail(ctx, -EINVAL, "refcount_table_clusters is 0");
	rt_bytes = (u64)img->reftable_clusters << img->cluster_bits;
	if (rt_bytes > Q2_MAX_REFTABLE_BYTES)
		return q2_fail(ctx, -EFBIG,
			       "refcount table of %u clusters exceeds 8 MiB",
			       img->reftable_clusters);
	ret = q2_check_table(ctx, "refcount table", img->reftable_offset,
			     rt_bytes);
	if (ret)
		return ret;
	if (q2_ranges_overlap(img->reftable_offset, rt_bytes,
			      img->active_l1_offset,
			      q2_l1_span(img, img->active_l1_size)))
		return q2_fail(ctx, -EINVAL,
			       "refcount table at 0x%llx overlaps the L1 table",
			       img->reftable_offset);
	return 0;
}

/*
 * Length of one snapshot table entry from its fixed part: @raw without and
 * @len with the padding to 8 bytes.
 */
static int q2_snap_entry_len(struct q2_open_ctx *ctx, const u8 *e, u32 i,
			     u64 *raw, u64 *len)
{
	u32 extra = q2_be32(e + 36);

	if (extra > Q2_MAX_SNAPSHOT_EXTRA)
		return q2_fail(ctx, -EINVAL,
			       "snapshot %u: extra data size %u exceeds 1024",
			       i, extra);
	*raw = Q2_SNAPSHOT_HDR_LEN + (u64)extra + q2_be16(e + 12) +
	       q2_be16(e + 14);
	*len = (*raw + 7) & ~7ULL;
	return 0;
}

/*
 * Fill @sn from the checked entry @e; its strings go to @s.  Returns the
 * next free byte of the string pool.
 */
static char *q2_parse_snapshot(const struct q2_image *img,
			       struct q2_snapshot *sn, const u8 *e, char *s)
{
	u32 extra = q2_be32(e + 36);
	u16 id_len = q2_be16(e + 12), name_len = q2_be16(e + 14);
	const u8 *x = e + Q2_SNAPSHOT_HDR_LEN;

	sn->l1_offset = q2_be64(e);
	sn->l1_size = q2_be32(e + 8);
	sn->date_sec = q2_be32(e + 16);
	sn->date_nsec = q2_be32(e + 20);
	sn->vm_clock_nsec = q2_be64(e + 24);
	/* Extra data (v3): 64-bit VM state size, disk size, icount. */
	sn->vm_state_size = extra >= 8 ? q2_be64(x) : q2_be32(e + 32);
	sn->disk_size = extra >= 16 ? q2_be64(x + 8) : img->size;
	sn->icount = extra >= 24 ? q2_be64(x + 16) : ~0ULL;
	sn->extra_size = extra;
	x += extra;
	memcpy(s, x, id_len);
	s[id_len] = 0;
	sn->id = s;
	s += id_len + 1;
	memcpy(s, x + id_len, name_len);
	s[name_len] = 0;
	sn->name = s;
	return s + name_len + 1;
}

static int q2_read_snapshots(struct q2_open_ctx *ctx)
{
	struct q2_image *img = ctx->img;
	const struct q2_file_ops *ops = img->ops;
	u64 off = img->snapshots_offset, total = 0, raw, elen;
	u8 hdr[Q2_SNAPSHOT_HDR_LEN];
	size_t pool_len = 0;
	u8 *buf, *e;
	char *s;
	u32 i;
	int ret;

	if (!img->nb_snapshots && !q2_bad_empty_table(img, off))
		return 0;
	if (img->nb_snapshots > Q2_MAX_SNAPSHOTS)
		return q2_fail(ctx, -EFBIG, "nb_snapshots %u exceeds 65536",
			       img->nb_snapshots);
	ret = q2_check_table(ctx, "snapshot table", off, 0);
	if (ret)
		return ret;

	/*
	 * First pass: entry sizes, bounded by QEMU's 64 MiB and by the file
	 * (only the padding of an entry may lie past its end).
	 */
	for (i = 0; i < img->nb_snapshots; i++) {
		if (q2_past_eof(img, off + total, Q2_SNAPSHOT_HDR_LEN))
			return q2_fail(ctx, -EINVAL,
				       "snapshot table truncated at entry %u", i);
		ret = ops->pread(img->file, hdr, sizeof(hdr), off + total);
		if (ret)
			return q2_fail(ctx, ret, "cannot read snapshot %u at 0x%llx",
				       i, off + total);
		ret = q2_snap_entry_len(ctx, hdr, i, &raw, &elen);
		if (ret)
			return ret;
		if (q2_past_eof(img, off + total, raw))
			return q2_fail(ctx, -EINVAL,
				       "snapshot table truncated at entry %u", i);
		total += elen;
		if (total > Q2_MAX_SNAPSHOTS_BYTES)
			return q2_fail(ctx, -EFBIG, "snapshot table exceeds 64 MiB");
		pool_len += q2_be16(hdr + 12) + 1 + q2_be16(hdr + 14) + 1;
	}
	img->snapshots_bytes = total;

	buf = q2_zalloc(total);
	img->snapshots = q2_zalloc(sizeof(*img->snapshots) * img->nb_snapshots);
	img->snap_strings = q2_alloc(pool_len);
	if (!buf || !img->snapshots || !img->snap_strings) {
		q2_free(buf);
		return -ENOMEM;
	}
	/* Second pass, in memory; the reads may short-cut the padding. */
	elen = q2_past_eof(img, off, total) ? img->file_size - off : total;
	ret = ops->pread(img->file, buf, elen, off);
	if (ret) {
		q2_free(buf);
		return q2_fail(ctx, ret, "cannot read the snapshot table");
	}
	e = buf;
	s = img->snap_strings;
	for (i = 0; i < img->nb_snapshots; i++) {
		u64 left = total - (u64)(e - buf);

		/* The file may have changed since the first pass. */
		if (left < Q2_SNAPSHOT_HDR_LEN) {
			ret = -EIO;
			break;
		}
		ret = q2_snap_entry_len(ctx, e, i, &raw, &elen);
		if (ret)
			break;
		if (elen > left ||
		    (size_t)q2_be16(e + 12) + q2_be16(e + 14) + 2 >
		    pool_len - (size_t)(s - img->snap_strings)) {
			ret = -EIO;
			break;
		}
		s = q2_parse_snapshot(img, &img->snapshots[i], e, s);
		e += elen;
	}
	q2_free(buf);
	if (ret == -EIO)
		return q2_fail(ctx, ret, "snapshot table changed while read");
	return ret;
}

static int q2_select_snapshot(struct q2_open_ctx *ctx, const char *sel)
{
	struct q2_image *img = ctx->img;
	const struct q2_snapshot *sn;
	int i, found = -1;

	for (i = 0; i < (int)img->nb_snapshots && found < 0; i++)
		if (!strcmp(img->snapshots[i].id, sel))
			found = i;
	for (i = 0; i < (int)img->nb_snapshots && found < 0; i++)
		if (!strcmp(img->snapshots[i].name, sel))
			found = i;
	if (found < 0)
		return q2_fail(ctx, -ENOENT, "snapshot '%.48s' not found", sel);
	sn = &img->snapshots[found];
	if (sn->l1_size > Q2_MAX_L1_ENTRIES)
		return q2_fail(ctx, -EFBIG,
			       "snapshot %d: l1_size %u exceeds the 32 MiB limit",
			       found, sn->l1_size);
	if (q2_size_to_l1(img, sn->disk_size) > Q2_MAX_L1_ENTRIES)
		return q2_fail(ctx, -EFBIG,
			       "snapshot %d: disk size %llu too large",
			       found, sn->disk_size);
	if (sn->l1_size) {
		int ret = q2_check_table(ctx, "snapshot L1 table", sn->l1_offset,
					 (u64)sn->l1_size * 8);
		if (ret)
			return ret;
	}
	/*
	 * Entries past a short snapshot L1 read as unallocated, as QEMU's
	 * translation does; only the active L1 must cover the disk.
	 */
	img->snap_index = found;
	img->l1_offset = sn->l1_offset;
	img->l1_size = sn->l1_size;
	img->disk_size = sn->disk_size;
	return 0;
}

static int q2_load_l1(struct q2_open_ctx *ctx)
{
	struct q2_image *img = ctx->img;
	u8 *raw;
	u32 i;
	int ret;

	img->l1 = q2_alloc((size_t)img->l1_size * 8);
	if (!img->l1)
		return -ENOMEM;
	if (!img->l1_size)
		return 0;
	raw = (u8 *)img->l1;
	ret = img->ops->pread(img->file, raw, (size_t)img->l1_size * 8,
			      img->l1_offset);
	if (ret)
		return q2_fail(ctx, ret, "cannot read the L1 table at 0x%llx",
			       img->l1_offset);
	/* In place: entry i is read before it is overwritten. */
	for (i = 0; i < img->l1_size; i++)
		img->l1[i] = q2_be64(raw + (size_t)i * 8);
	return 0;
}

static int q2_read_header(struct q2_open_ctx *ctx)
{
	struct q2_image *img = ctx->img;
	u8 fixed[Q2_V2_HEADER_LEN];
	u64 len;
	int ret;

	if (img->file_size < Q2_V2_HEADER_LEN)
		return q2_fail(ctx, -EINVAL,
			       "file of %llu bytes is too small for a qcow2 header",
			       img->file_size);
	ret = img->ops->pread(img->file, fixed, sizeof(fixed), 0);
	if (ret)
		return q2_fail(ctx, ret, "cannot read the qcow2 header");
	if (q2_be32(fixed) != Q2_MAGIC)
		return q2_fail(ctx, -EINVAL, "not a qcow2 image (bad magic)");
	img->version = q2_be32(fixed + 4);
	if (img->version != 2 && img->version != 3)
		return q2_fail(ctx, -EOPNOTSUPP, "unsupported qcow2 version %u",
			       img->version);
	img->cluster_bits = q2_be32(fixed + 20);
	if (img->cluster_bits < Q2_MIN_CLUSTER_BITS ||
	    img->cluster_bits > Q2_MAX_CLUSTER_BITS)
		return q2_fail(ctx, -EINVAL, "cluster_bits %u out of range 9..21",
			       img->cluster_bits);
	img->cluster_size = 1U << img->cluster_bits;
	if (img->version == 3 && img->file_size < Q2_V3_HEADER_LEN)
		return q2_fail(ctx, -EINVAL,
			       "file of %llu bytes is too small for a v3 header",
			       img->file_size);

	/*
	 * Parse the whole header cluster from memory.  Past the end of a
	 * short file it reads as zeros, as QEMU sees it.
	 */
	ctx->hbuf = q2_zalloc(img->cluster_size);
	if (!ctx->hbuf)
		return -ENOMEM;
	len = img->file_size < img->cluster_size ? img->file_size :
						   img->cluster_size;
	ret = img->ops->pread(img->file, ctx->hbuf, len, 0);
	if (ret)
		return q2_fail(ctx, ret, "cannot read the qcow2 header cluster");
	ret = q2_parse_fixed(ctx);
	if (ret)
		return ret;
	ret = q2_parse_extensions(ctx);
	if (ret)
		return ret;
	return q2_check_features(ctx);
}

/*
 * Refcounts read straight from the file at open (the write path's cache
 * does not exist yet), one block remembered.
 */
struct q2_rc_probe {
	u8 *blk;
	u64 blk_off;
};

static int q2_probe_refcount(struct q2_open_ctx *ctx, struct q2_rc_probe *p,
			     u64 host, u64 *rc)
{
	struct q2_image *img = ctx->img;
	u64 ci = host >> img->cluster_bits;
	u64 blk = q2_rt_block(img, ci >> img->rb_bits);
	int ret;

	*rc = 0;
	if (!blk)
		return 0;
	if (p->blk_off != blk) {
		p->blk_off = 0;
		ret = img->ops->pread(img->file, p->blk, img->cluster_size, blk);
		if (ret)
			return q2_fail(ctx, ret, "cannot read refcount block at 0x%llx",
				       blk);
		p->blk_off = blk;
	}
	*rc = q2_rc_get(p->blk, img->refcount_order,
			ci & ((1ULL << img->rb_bits) - 1));
	return 0;
}

/* A host offset whose cluster must be in use, and the table it is in. */
struct q2_in_use {
	u64 at;
	const char *what;
};

/* The first and last cluster of the table at @off (@bytes). */
static void q2_in_use_add(struct q2_in_use *v, u32 *n, const char *what,
			  u64 off, u64 bytes)
{
	v[*n].at = off;
	v[(*n)++].what = what;
	v[*n].at = off + (bytes ? bytes - 1 : 0);
	v[(*n)++].what = what;
}

static int q2_in_use_cmp(const void *a, const void *b)
{
	u64 x = ((const struct q2_in_use *)a)->at;
	u64 y = ((const struct q2_in_use *)b)->at;

	return x < y ? -1 : x > y;
}

/*
 * The tables vdisk knows of are counted, so that allocation can trust a
 * zero refcount: the header, refcount and L1 tables, the snapshot table
 * and every snapshot's L1 table.  Probed in host order, so that each
 * refcount block is read once: in table order, a hostile image whose
 * snapshots alternate between two far-apart blocks had the open read a
 * cluster per probe (up to 2 MiB, 131,072 times) with vdisk's global lock
 * held.  The refcount blocks need no probe: the allocator never gives out
 * metadata (q2_write_hits_metadata()).
 */
static int q2_check_in_use(struct q2_open_ctx *ctx)
{
	struct q2_image *img = ctx->img;
	struct q2_rc_probe probe = { 0 };
	struct q2_in_use *v;
	u32 i, n = 0;
	u64 rc;
	int ret = 0;

	v = q2_alloc(((size_t)img->nb_snapshots + 4) * 2 * sizeof(*v));
	probe.blk = q2_alloc(img->cluster_size);
	if (!v || !probe.blk) {
		ret = -ENOMEM;
		goto out;
	}
	q2_in_use_add(v, &n, "header", 0, 1);
	q2_in_use_add(v, &n, "refcount table", img->reftable_offset,
		      (u64)img->reftable_clusters << img->cluster_bits);
	if (img->active_l1_size)
		q2_in_use_add(v, &n, "L1 table", img->active_l1_offset,
			      (u64)img->active_l1_size * 8);
	if (img->nb_snapshots)
		q2_in_use_add(v, &n, "snapshot table", img->snapshots_offset,
			      img->snapshots_bytes);
	for (i = 0; i < img->nb_snapshots; i++)
		if (img->snapshots[i].l1_size)
			q2_in_use_add(v, &n, "snapshot L1 table",
				      img->snapshots[i].l1_offset,
				      (u64)img->snapshots[i].l1_size * 8);
	q2_sort(v, n, sizeof(*v), q2_in_use_cmp);
	for (i = 0; i < n; i++) {
		if (q2_killed()) {
			ret = q2_fail(ctx, -EINTR, "interrupted");
			break;
		}
		ret = q2_probe_refcount(ctx, &probe, v[i].at, &rc);
		if (ret)
			break;
		if (!rc) {
			ret = q2_fail(ctx, -EINVAL,
				      "%s at 0x%llx: refcount 0 (qemu-img check -r all)",
				      v[i].what,
				      v[i].at & ~(u64)(img->cluster_size - 1));
			break;
		}
	}
out:
	q2_free(probe.blk);
	q2_free(v);
	return ret;
}

/*
 * Read and check the refcount table; keep it in memory up to its last
 * block in use (rt_mem): the rest of a table is zeros until the image
 * grows into it.
 */
static int q2_load_reftable(struct q2_open_ctx *ctx, u64 bytes)
{
	struct q2_image *img = ctx->img;
	u32 i, used = 0;
	int ret = 0;
	u8 *raw;

	img->rt_entries = (u32)(bytes / 8);
	raw = q2_alloc(bytes);
	if (!raw)
		return -ENOMEM;
	ret = img->ops->pread(img->file, raw, bytes, img->reftable_offset);
	if (ret) {
		ret = q2_fail(ctx, ret, "cannot read the refcount table");
		goto out;
	}
	for (i = 0; i < img->rt_entries; i++) {
		u64 e = q2_be64(raw + (size_t)i * 8);

		if (!e)
			continue;
		used = i + 1;
		if (e & Q2_RT_RESERVED) {
			ret = q2_fail(ctx, -EINVAL,
				      "refcount table entry %u has reserved bits set", i);
			goto out;
		}
		if ((e & (img->cluster_size - 1)) || e < img->cluster_size ||
		    q2_past_eof(img, e, img->cluster_size)) {
			ret = q2_fail(ctx, -EINVAL,
				      "refcount block %u at 0x%llx is invalid", i, e);
			goto out;
		}
		if (q2_ranges_overlap(e, img->cluster_size, img->reftable_offset,
				      bytes) ||
		    q2_ranges_overlap(e, img->cluster_size, img->active_l1_offset,
				      q2_l1_span(img, img->active_l1_size))) {
			ret = q2_fail(ctx, -EINVAL,
				      "refcount block %u at 0x%llx overlaps a table",
				      i, e);
			goto out;
		}
	}
	img->rt_mem = (u32)q2_rt_held(used, img->rt_entries);
	img->rt = q2_alloc((size_t)q2_max64(img->rt_mem, 1) * 8);
	if (!img->rt) {
		img->rt_mem = 0;
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < img->rt_mem; i++)
		img->rt[i] = q2_be64(raw + (size_t)i * 8);
out:
	q2_free(raw);
	return ret;
}

static int q2_u64_cmp(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/* img->rb_set and img->rb_filter from the refcount table in memory. */
static int q2_rb_set_build(struct q2_image *img)
{
	u32 i, n = 0;

	img->rb_set_cap = q2_max64(img->rt_mem, 16);
	img->rb_set = q2_alloc((size_t)img->rb_set_cap * 8);
	if (!img->rb_set)
		return -ENOMEM;
	for (i = 0; i < img->rt_mem; i++) {
		if (!img->rt[i])
			continue;
		img->rb_set[n++] = img->rt[i] >> img->cluster_bits;
		q2_rb_filter_add(img, img->rt[i]);
	}
	q2_sort(img->rb_set, n, 8, q2_u64_cmp);
	img->rb_set_n = n;
	return 0;
}

/*
 * Write mode: refusals, then the refcount table in memory (validated entry
 * by entry) and a check that the metadata we know of is counted, so that
 * allocation can trust a zero refcount.
 */
static int q2_open_write(struct q2_open_ctx *ctx)
{
	const struct q2_open_args *a = ctx->args;
	struct q2_image *img = ctx->img;
	u64 bytes = (u64)img->reftable_clusters << img->cluster_bits;
	int ret;

	if (!img->ops->pwrite || !img->ops->flush)
		return q2_fail(ctx, -EROFS, "file ops cannot write");
	if (a->snapshot)
		return q2_fail(ctx, -EROFS, "snapshot '%.32s' can only be opened read-only",
			       a->snapshot);
	if (img->incompat & Q2_INCOMPAT_CORRUPT)
		return q2_fail(ctx, -EROFS,
			       "image is marked corrupt; run qemu-img check -r all");
	if (img->incompat & Q2_INCOMPAT_DIRTY)
		return q2_fail(ctx, -EROFS, "image is dirty; run qemu-img check -r all");

	img->rb_bits = img->cluster_bits + 3 - img->refcount_order;
	img->rc_max = img->refcount_order == 6 ? ~0ULL :
		      (1ULL << (1U << img->refcount_order)) - 1;
	ret = q2_load_reftable(ctx, bytes);
	if (ret)
		return ret;

	ret = q2_check_in_use(ctx);
	if (!ret)
		ret = q2_rb_set_build(img);
	if (ret)
		return ret;

	img->alloc_end = img->file_size;
	img->zero_from = q2_cluster_ceil(img, img->file_size);
	img->barrier = a->barrier;
	img->barrier_ctx = a->barrier_ctx;
	q2_mutex_init(&img->meta);
	q2_mutex_init(&img->flush_lock);
	q2_waitq_init(&img->waitq);
	img->writable = true;
	return 0;
}

static int q2_do_open(struct q2_open_ctx *ctx)
{
	const struct q2_open_args *a = ctx->args;
	struct q2_image *img = ctx->img;
	int ret;

	ret = q2_read_header(ctx);
	if (ret)
		return ret;
	q2_set_geometry(img);
	ret = q2_check_tables(ctx);
	if (ret)
		return ret;
	ret = q2_read_snapshots(ctx);
	if (ret)
		return ret;

	img->l1_offset = img->active_l1_offset;
	img->l1_size = img->active_l1_size;
	img->disk_size = img->size;
	if (a->flags & Q2_OPEN_WRITE) {
		ret = q2_open_write(ctx);
		if (ret)
			return ret;
	}
	if (a->snapshot) {
		ret = q2_select_snapshot(ctx, a->snapshot);
		if (ret)
			return ret;
	}
	if (img->header_only)
		return 0;
	ret = q2_load_l1(ctx);
	if (ret)
		return ret;
	return q2_l2_cache_init(img, a->l2_cache_bytes);
}

int q2_open(const struct q2_open_args *args, struct q2_image **out)
{
	struct q2_open_ctx ctx = { .args = args };
	struct q2_image *img;
	size_t i;
	int ret;

	*out = NULL;
	if (args->err && args->err_len)
		args->err[0] = 0;
	if (!args->ops || !args->ops->pread || !args->ops->size ||
	    (args->flags & ~Q2_OPEN_ALL) ||
	    ((args->flags & Q2_OPEN_HEADER_ONLY) && (args->flags & Q2_OPEN_WRITE)))
		return q2_fail(&ctx, -EINVAL, "invalid open arguments");

	img = q2_zalloc(sizeof(*img));
	if (!img)
		return q2_fail(&ctx, -ENOMEM, "out of memory");
	ctx.img = img;
	img->ops = args->ops;
	img->file = args->file;
	img->header_only = args->flags & Q2_OPEN_HEADER_ONLY;
	img->snap_index = -1;
	img->file_size = args->ops->size(args->file);
	for (i = 0; args->name && args->name[i] && i < sizeof(img->name) - 1; i++)
		img->name[i] = args->name[i];
	q2_mutex_init(&img->dlock);

	ret = q2_do_open(&ctx);
	q2_free(ctx.hbuf);
	if (ret) {
		if (ret == -ENOMEM)
			q2_fail(&ctx, ret, "out of memory");
		else if (args->err && args->err_len && !args->err[0])
			q2_fail(&ctx, ret, "cannot open qcow2 image (error %d)", ret);
		q2_close(img);
		return ret;
	}
	*out = img;
	return 0;
}

static void q2_do_close(struct q2_image *img)
{
	if (img->writable) {
		q2_waitq_destroy(&img->waitq);
		q2_mutex_destroy(&img->flush_lock);
		q2_mutex_destroy(&img->meta);
	}
	q2_free(img->rt);
	q2_free(img->rb_set);
	q2_l2_cache_destroy(img);
	q2_dctx_free(img->dctx);
	q2_free(img->cbuf);
	q2_free(img->dbuf);
	q2_mutex_destroy(&img->dlock);
	q2_free(img->l1);
	q2_free(img->snapshots);
	q2_free(img->snap_strings);
	q2_free(img->feature_names);
	q2_free(img->backing_name);
	q2_free(img->data_file_name);
	q2_free(img);
}

/*
 * The write path's state is flushed and freed through a hook that
 * write.c installs on first use, so that programs linking only the read
 * path's files (vdiskctl) need none of it.
 */
int q2_close_clean(struct q2_image *img)
{
	int ret = 0;

	if (!img)
		return 0;
	if (img->wclose)
		ret = img->wclose(img);
	q2_do_close(img);
	return ret;
}

void q2_close(struct q2_image *img)
{
	q2_close_clean(img);
}

u64 q2_virtual_size(const struct q2_image *img)
{
	return img->disk_size;
}

u32 q2_cluster_size(const struct q2_image *img)
{
	return img->cluster_size;
}

void q2_get_info(const struct q2_image *img, struct q2_info *info)
{
	memset(info, 0, sizeof(*info));
	info->version = img->version;
	info->virtual_size = img->size;
	info->open_size = img->disk_size;
	info->cluster_bits = img->cluster_bits;
	info->cluster_size = img->cluster_size;
	info->refcount_order = img->refcount_order;
	info->refcount_bits = 1U << img->refcount_order;
	info->header_length = img->header_length;
	info->incompatible = img->incompat;
	info->compatible = img->compat;
	info->autoclear = img->autoclear;
	info->compression_type = img->compression_type;
	info->crypt_method = img->crypt_method;
	info->dirty = img->incompat & Q2_INCOMPAT_DIRTY;
	info->corrupt = img->incompat & Q2_INCOMPAT_CORRUPT;
	info->extended_l2 = img->extended_l2;
	info->lazy_refcounts = img->compat & Q2_COMPAT_LAZY_REFCOUNTS;
	info->has_data_file = img->incompat & Q2_INCOMPAT_DATA_FILE;
	info->has_bitmaps = img->has_bitmaps;
	info->has_crypto_header = img->has_crypto_header;
	info->backing_file = img->backing_name;
	info->backing_format = img->has_backing_fmt ? img->backing_fmt : NULL;
	info->data_file = img->data_file_name;
	info->l1_size = img->active_l1_size;
	info->l1_table_offset = img->active_l1_offset;
	info->refcount_table_offset = img->reftable_offset;
	info->refcount_table_clusters = img->reftable_clusters;
	info->nb_snapshots = img->snapshots ? img->nb_snapshots : 0;
	info->snapshots_offset = img->snapshots_offset;
	info->snapshots = img->snapshots;
	info->open_snapshot = img->snap_index;
	info->file_size = q2_load(&img->file_size);
	info->writable = img->writable;
	info->failed = q2_load(&img->failed);
}

bool q2_writable(const struct q2_image *img)
{
	return img->writable && !q2_load(&img->failed);
}
