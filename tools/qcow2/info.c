// SPDX-License-Identifier: GPL-2.0
/*
 * q2_print_info(): what `qemu-img info` shows about a qcow2 image, in its
 * human layout or as JSON with its key names, plus the header details the
 * core knows.  Shared by q2info and vdiskctl info.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "q2u.h"

/* QEMU's size_to_str(): three significant digits and a binary suffix. */
static void size_str(char *buf, size_t len, u64 val)
{
	static const char *const suffixes[] = { "", "Ki", "Mi", "Gi", "Ti",
						"Pi", "Ei" };
	int i;

	frexp(val / (1000.0 / 1024.0), &i);
	i = (i - 1) / 10;
	if (i < 0)
		i = 0;
	if (i > 6)
		i = 6;
	snprintf(buf, len, "%0.3g %sB", (double)val / (double)(1ULL << (i * 10)),
		 suffixes[i]);
}

/*
 * QEMU's path_combine(): a relative backing name is relative to the
 * image's directory.  Caller frees.
 */
static char *full_backing(const char *image, const char *name)
{
	const char *slash = strrchr(image, '/');
	char *out;

	if (name[0] == '/' || !slash)
		return strdup(name);
	if (asprintf(&out, "%.*s%s", (int)(slash - image + 1), image, name) < 0)
		return NULL;
	return out;
}

/* Image-controlled strings, printable whatever they contain. */
static void put_text(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ?
		      *s : '?', out);
}

static void put_json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static void put_features(FILE *out, const struct q2_image *img,
			 enum q2_feature_type type, u64 bits, bool json)
{
	const char *name;
	bool first = true;
	unsigned int bit;

	if (json)
		fputc('[', out);
	for (bit = 0; bit < 64; bit++) {
		if (!(bits & (1ULL << bit)))
			continue;
		name = q2_feature_name(img, type, bit);
		if (json) {
			fprintf(out, "%s{\"bit\": %u, \"name\": ", first ? "" : ", ",
				bit);
			if (name)
				put_json_str(out, name);
			else
				fputs("null", out);
			fputc('}', out);
		} else {
			fprintf(out, "%s%u", first ? " (" : ", ", bit);
			if (name) {
				fputs(" ", out);
				put_text(out, name);
			}
		}
		first = false;
	}
	if (json)
		fputc(']', out);
	else if (!first)
		fputc(')', out);
}

static const char *crypt_name(u32 m)
{
	return m == Q2_CRYPT_AES ? "aes" : m == Q2_CRYPT_LUKS ? "luks" : "none";
}

/* A printable copy of an image-controlled string, truncated to @len - 1. */
static void clean(char *dst, size_t len, const char *s)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len; i++)
		dst[i] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ?
			 s[i] : '?';
	dst[i] = 0;
}

static void print_snapshots_human(FILE *out, const struct q2_info *in)
{
	u32 i;

	fprintf(out, "Snapshot list:\n%-10s%-17s%8s%20s%13s%11s\n", "ID",
		"TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
	for (i = 0; i < in->nb_snapshots; i++) {
		const struct q2_snapshot *sn = &in->snapshots[i];
		u64 secs = sn->vm_clock_nsec / 1000000000ULL;
		char date[32], clk[48], vm[32], ic[24] = "", id[64], name[64];
		time_t t = sn->date_sec;
		struct tm tm;

		localtime_r(&t, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
		snprintf(clk, sizeof(clk), "%02llu:%02llu:%02llu.%03llu",
			 secs / 3600, secs / 60 % 60, secs % 60,
			 sn->vm_clock_nsec / 1000000 % 1000);
		size_str(vm, sizeof(vm), sn->vm_state_size);
		if (sn->icount != ~0ULL)
			snprintf(ic, sizeof(ic), "%lld", (long long)sn->icount);
		clean(id, sizeof(id), sn->id);
		clean(name, sizeof(name), sn->name);
		fprintf(out, "%-9s %-16s %8s%20s%13s%11s\n", id, name, vm, date,
			clk, ic);
	}
}

static void print_human(FILE *out, const char *path, const struct q2_image *img,
			const struct q2_info *in, const struct stat *st)
{
	char buf[32];

	fprintf(out, "image: ");
	put_text(out, path);
	size_str(buf, sizeof(buf), in->virtual_size);
	fprintf(out, "\nfile format: qcow2\nvirtual size: %s (%llu bytes)\n",
		buf, in->virtual_size);
	size_str(buf, sizeof(buf), (u64)st->st_blocks * 512);
	fprintf(out, "disk size: %s\ncluster_size: %u\n", buf, in->cluster_size);
	if (in->crypt_method)
		fprintf(out, "encrypted: yes\n");
	if (in->backing_file) {
		char *full = full_backing(path, in->backing_file);

		fprintf(out, "backing file: ");
		put_text(out, in->backing_file);
		if (full && strcmp(full, in->backing_file)) {
			fprintf(out, " (actual path: ");
			put_text(out, full);
			fputc(')', out);
		}
		fputc('\n', out);
		free(full);
	}
	if (in->backing_format) {
		fprintf(out, "backing file format: ");
		put_text(out, in->backing_format);
		fputc('\n', out);
	}
	if (in->nb_snapshots)
		print_snapshots_human(out, in);
	fprintf(out, "Format specific information:\n");
	fprintf(out, "    compat: %s\n", in->version == 2 ? "0.10" : "1.1");
	fprintf(out, "    compression type: %s\n",
		q2_compression_name(in->compression_type));
	fprintf(out, "    lazy refcounts: %s\n", in->lazy_refcounts ? "true" : "false");
	fprintf(out, "    refcount bits: %u\n", in->refcount_bits);
	fprintf(out, "    corrupt: %s\n", in->corrupt ? "true" : "false");
	fprintf(out, "    extended l2: %s\n", in->extended_l2 ? "true" : "false");
	if (in->data_file || in->has_data_file) {
		fprintf(out, "    data file: ");
		put_text(out, in->data_file ? in->data_file : "(unnamed)");
		fputc('\n', out);
	}
	if (in->crypt_method)
		fprintf(out, "    encrypt:\n        format: %s\n",
			crypt_name(in->crypt_method));
	fprintf(out, "qcow2 header:\n");
	fprintf(out, "    version: %u\n    header length: %u\n", in->version,
		in->header_length);
	fprintf(out, "    dirty: %s\n", in->dirty ? "true" : "false");
	fprintf(out, "    incompatible features: 0x%llx", in->incompatible);
	put_features(out, img, Q2_FEAT_INCOMPAT, in->incompatible, false);
	fprintf(out, "\n    compatible features: 0x%llx", in->compatible);
	put_features(out, img, Q2_FEAT_COMPAT, in->compatible, false);
	fprintf(out, "\n    autoclear features: 0x%llx", in->autoclear);
	put_features(out, img, Q2_FEAT_AUTOCLEAR, in->autoclear, false);
	fprintf(out, "\n    l1 size: %u\n    l1 table offset: 0x%llx\n",
		in->l1_size, in->l1_table_offset);
	fprintf(out, "    refcount table offset: 0x%llx\n    refcount table clusters: %u\n",
		in->refcount_table_offset, in->refcount_table_clusters);
	fprintf(out, "    snapshots: %u\n    encryption: %s\n", in->nb_snapshots,
		crypt_name(in->crypt_method));
	fprintf(out, "    bitmaps extension: %s\n", in->has_bitmaps ? "yes" : "no");
}

static void print_json(FILE *out, const char *path, const struct q2_image *img,
		       const struct q2_info *in, const struct stat *st)
{
	u32 i;

	fprintf(out, "{\n");
	if (in->nb_snapshots) {
		fprintf(out, "    \"snapshots\": [\n");
		for (i = 0; i < in->nb_snapshots; i++) {
			const struct q2_snapshot *sn = &in->snapshots[i];

			fprintf(out, "        {\n");
			if (sn->icount != ~0ULL)
				fprintf(out, "            \"icount\": %llu,\n", sn->icount);
			fprintf(out, "            \"vm-clock-nsec\": %llu,\n",
				sn->vm_clock_nsec % 1000000000ULL);
			fprintf(out, "            \"name\": ");
			put_json_str(out, sn->name);
			fprintf(out, ",\n            \"date-sec\": %u,\n", sn->date_sec);
			fprintf(out, "            \"date-nsec\": %u,\n", sn->date_nsec);
			fprintf(out, "            \"vm-clock-sec\": %llu,\n",
				sn->vm_clock_nsec / 1000000000ULL);
			fprintf(out, "            \"id\": ");
			put_json_str(out, sn->id);
			fprintf(out, ",\n            \"vm-state-size\": %llu,\n",
				sn->vm_state_size);
			fprintf(out, "            \"disk-size\": %llu\n", sn->disk_size);
			fprintf(out, "        }%s\n", i + 1 < in->nb_snapshots ? "," : "");
		}
		fprintf(out, "    ],\n");
	}
	fprintf(out, "    \"virtual-size\": %llu,\n    \"filename\": ",
		in->virtual_size);
	put_json_str(out, path);
	fprintf(out, ",\n    \"cluster-size\": %u,\n    \"format\": \"qcow2\",\n",
		in->cluster_size);
	fprintf(out, "    \"actual-size\": %llu,\n", (u64)st->st_blocks * 512);
	if (in->crypt_method)
		fprintf(out, "    \"encrypted\": true,\n");
	if (in->backing_file) {
		char *full = full_backing(path, in->backing_file);

		if (full) {
			fprintf(out, "    \"full-backing-filename\": ");
			put_json_str(out, full);
			fprintf(out, ",\n");
			free(full);
		}
		fprintf(out, "    \"backing-filename\": ");
		put_json_str(out, in->backing_file);
		fprintf(out, ",\n");
	}
	if (in->backing_format) {
		fprintf(out, "    \"backing-filename-format\": ");
		put_json_str(out, in->backing_format);
		fprintf(out, ",\n");
	}
	fprintf(out, "    \"format-specific\": {\n        \"type\": \"qcow2\",\n");
	fprintf(out, "        \"data\": {\n            \"compat\": \"%s\",\n",
		in->version == 2 ? "0.10" : "1.1");
	fprintf(out, "            \"compression-type\": \"%s\",\n",
		q2_compression_name(in->compression_type));
	fprintf(out, "            \"lazy-refcounts\": %s,\n",
		in->lazy_refcounts ? "true" : "false");
	fprintf(out, "            \"refcount-bits\": %u,\n", in->refcount_bits);
	fprintf(out, "            \"corrupt\": %s,\n", in->corrupt ? "true" : "false");
	if (in->data_file) {
		fprintf(out, "            \"data-file\": ");
		put_json_str(out, in->data_file);
		fprintf(out, ",\n");
	}
	if (in->crypt_method)
		fprintf(out, "            \"encrypt\": {\"format\": \"%s\"},\n",
			crypt_name(in->crypt_method));
	fprintf(out, "            \"extended-l2\": %s\n        }\n    },\n",
		in->extended_l2 ? "true" : "false");
	fprintf(out, "    \"qcow2\": {\n");
	fprintf(out, "        \"version\": %u,\n        \"header-length\": %u,\n",
		in->version, in->header_length);
	fprintf(out, "        \"incompatible-features\": ");
	put_features(out, img, Q2_FEAT_INCOMPAT, in->incompatible, true);
	fprintf(out, ",\n        \"compatible-features\": ");
	put_features(out, img, Q2_FEAT_COMPAT, in->compatible, true);
	fprintf(out, ",\n        \"autoclear-features\": ");
	put_features(out, img, Q2_FEAT_AUTOCLEAR, in->autoclear, true);
	fprintf(out, ",\n        \"l1-size\": %u,\n        \"l1-table-offset\": %llu,\n",
		in->l1_size, in->l1_table_offset);
	fprintf(out, "        \"refcount-table-offset\": %llu,\n", in->refcount_table_offset);
	fprintf(out, "        \"refcount-table-clusters\": %u,\n",
		in->refcount_table_clusters);
	fprintf(out, "        \"encryption\": \"%s\",\n", crypt_name(in->crypt_method));
	fprintf(out, "        \"external-data-file\": %s,\n",
		in->has_data_file ? "true" : "false");
	fprintf(out, "        \"bitmaps-extension\": %s\n    },\n",
		in->has_bitmaps ? "true" : "false");
	fprintf(out, "    \"dirty-flag\": %s\n}\n", in->dirty ? "true" : "false");
}

int q2_print_info(FILE *out, const char *path, bool json)
{
	struct q2_open_args a = { 0 };
	struct q2_image *img;
	struct q2u_file f;
	char err[Q2_ERR_MAX];
	struct q2_info in;
	struct stat st;
	int ret;

	f.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f.fd < 0 || fstat(f.fd, &st)) {
		ret = -errno;
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (f.fd >= 0)
			close(f.fd);
		return ret;
	}
	a.ops = &q2u_posix_ops;
	a.file = &f;
	a.flags = Q2_OPEN_HEADER_ONLY;
	a.name = path;
	a.err = err;
	a.err_len = sizeof(err);
	ret = q2_open(&a, &img);
	if (ret) {
		fprintf(stderr, "%s: %s\n", path, err);
		close(f.fd);
		return ret;
	}
	q2_get_info(img, &in);
	if (json)
		print_json(out, path, img, &in, &st);
	else
		print_human(out, path, img, &in, &st);
	q2_close(img);
	close(f.fd);
	return 0;
}
