// SPDX-License-Identifier: GPL-2.0
/*
 * info: what `qemu-img info` says about a qcow2 or raw image, in its
 * layout and with its JSON key names where they overlap, plus what vdisk
 * adds: the backing chain as attach would resolve it, and the header's
 * feature bits.  Needs no kernel: the header is parsed here by the same
 * format core the module uses (header only, so hostile images are cheap).
 *
 * tools/qcow2/info.c prints much of this, but it opens the file itself,
 * prints its own errors, knows no raw images and no resolved chain, and
 * closes the JSON object it writes, so it cannot be extended from here.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <math.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "vdiskctl.h"

#define CMD "info"

static const struct option long_opts[] = {
	{ "json", no_argument, NULL, 'J' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

/* Everything printed about one image. */
struct image_info {
	const char *file;	/* as given */
	struct stat st;
	uint64_t size;		/* raw: bytes of the file or device */
	bool qcow2;
	struct q2_header h;
	struct q2_info q;
	struct vdisk_chain chain;
	char chain_err[512];	/* why the chain stops short, or "" */
};

/*
 * QEMU's size_to_str(): three significant digits and a binary suffix, so
 * "disk size" and "VM SIZE" read exactly as qemu-img prints them.
 */
static void qemu_size(char *buf, size_t len, uint64_t val)
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
 * qemu-img's "actual path" of a backing file: path_combine() of the image
 * name as given and the recorded name, not made absolute.  Caller frees.
 */
static char *qemu_full_backing(const char *image, const char *name)
{
	const char *slash = strrchr(image, '/');
	char *out;

	if (name[0] == '/' || !slash)
		return strdup(name);
	if (asprintf(&out, "%.*s%s", (int)(slash - image + 1), image, name) < 0)
		return NULL;
	return out;
}

static const char *yes_no(bool b, bool json)
{
	return json ? (b ? "true" : "false") : (b ? "yes" : "no");
}

static const char *crypt_name(uint32_t m)
{
	return m == Q2_CRYPT_AES ? "aes" : m == Q2_CRYPT_LUKS ? "luks" : "none";
}

static const char *const feature_kinds[] = {
	[Q2_FEAT_INCOMPAT] = "incompatible",
	[Q2_FEAT_COMPAT] = "compatible",
	[Q2_FEAT_AUTOCLEAR] = "autoclear",
};

static uint64_t feature_bits(const struct q2_info *q, enum q2_feature_type t)
{
	return t == Q2_FEAT_INCOMPAT ? q->incompatible :
	       t == Q2_FEAT_COMPAT ? q->compatible : q->autoclear;
}

/* ---------------------------------------------------------------------- */
/* Text                                                                   */

static void text_features(const struct image_info *ii, enum q2_feature_type t)
{
	uint64_t bits = feature_bits(&ii->q, t);
	const char *name;
	bool first = true;
	unsigned int bit;

	printf("    %s features: 0x%" PRIx64, feature_kinds[t], bits);
	for (bit = 0; bit < 64; bit++) {
		if (!(bits & (1ULL << bit)))
			continue;
		printf("%s%u", first ? " (" : ", ", bit);
		name = q2_feature_name(ii->h.img, t, bit);
		if (name) {
			putchar(' ');
			text_string(stdout, name);
		}
		first = false;
	}
	puts(first ? "" : ")");
}

/*
 * Image-controlled names in a table: control characters would break the
 * layout (or a terminal), so they print as '?'.  Truncated to @len - 1.
 */
static void printable(char *dst, size_t len, const char *s)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len; i++)
		dst[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	dst[i] = '\0';
}

/* qemu-img's table: the same column widths and formats. */
static void text_snapshots(const struct q2_info *q)
{
	uint32_t i;

	printf("Snapshot list:\n%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG",
	       "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
	for (i = 0; i < q->nb_snapshots; i++) {
		const struct q2_snapshot *sn = &q->snapshots[i];
		uint64_t secs = sn->vm_clock_nsec / 1000000000ULL;
		char date[32] = "", clk[48], vm[32], ic[24] = "", id[128], name[256];
		time_t t = sn->date_sec;
		struct tm tm;

		if (localtime_r(&t, &tm))
			strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
		snprintf(clk, sizeof(clk), "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64
			 ".%03" PRIu64, secs / 3600, secs / 60 % 60, secs % 60,
			 (uint64_t)(sn->vm_clock_nsec / 1000000 % 1000));
		qemu_size(vm, sizeof(vm), sn->vm_state_size);
		if (sn->icount != ~0ULL)
			snprintf(ic, sizeof(ic), "%" PRId64, (int64_t)sn->icount);
		printable(id, sizeof(id), sn->id);
		printable(name, sizeof(name), sn->name);
		printf("%-9s %-16s %8s%20s%13s%11s\n", id, name, vm, date, clk, ic);
	}
}

static void text_chain(const struct image_info *ii)
{
	unsigned int i;

	if (!ii->chain.nr && !ii->chain_err[0])
		return;
	printf("Backing chain:\n");
	for (i = 0; i < ii->chain.nr; i++) {
		printf("    %u: ", i + 1);
		text_string(stdout, ii->chain.layer[i].path);
		printf(" (%s)\n", format_name(ii->chain.layer[i].format));
	}
	if (ii->chain_err[0]) {
		printf("    error: ");
		text_string(stdout, ii->chain_err);
		putchar('\n');
	}
}

static void text_qcow2(const struct image_info *ii)
{
	const struct q2_info *q = &ii->q;
	char buf[32];

	printf("cluster_size: %" PRIu32 "\n", q->cluster_size);
	if (q->crypt_method)
		printf("encrypted: yes\n");
	if (q->backing_file) {
		char *full = qemu_full_backing(ii->file, q->backing_file);

		printf("backing file: ");
		text_string(stdout, q->backing_file);
		if (full && strcmp(full, q->backing_file)) {
			printf(" (actual path: ");
			text_string(stdout, full);
			putchar(')');
		}
		putchar('\n');
		free(full);
	}
	if (q->backing_format) {
		printf("backing file format: ");
		text_string(stdout, q->backing_format);
		putchar('\n');
	}
	if (q->nb_snapshots)
		text_snapshots(q);
	/* As qemu-img: version 2 headers have no feature fields to show. */
	printf("Format specific information:\n");
	printf("    compat: %s\n", q->version == 2 ? "0.10" : "1.1");
	printf("    compression type: %s\n", q2_compression_name(q->compression_type));
	if (q->version >= 3)
		printf("    lazy refcounts: %s\n", q->lazy_refcounts ? "true" : "false");
	printf("    refcount bits: %" PRIu32 "\n", q->refcount_bits);
	if (q->version >= 3) {
		printf("    corrupt: %s\n", q->corrupt ? "true" : "false");
		printf("    extended l2: %s\n", q->extended_l2 ? "true" : "false");
	}
	if (q->has_data_file) {
		printf("    data file: ");
		text_string(stdout, q->data_file ? q->data_file : "(unnamed)");
		printf("\n    data file raw: %s\n",
		       yes_no(q->autoclear & Q2_AUTOCLEAR_DATA_FILE_RAW, true));
	}
	if (q->crypt_method)
		printf("    encrypt:\n        format: %s\n", crypt_name(q->crypt_method));
	text_chain(ii);
	printf("qcow2 header:\n");
	printf("    version: %" PRIu32 "\n", q->version);
	printf("    header length: %" PRIu32 "\n", q->header_length);
	printf("    dirty: %s\n", q->dirty ? "true" : "false");
	printf("    corrupt: %s\n", q->corrupt ? "true" : "false");
	text_features(ii, Q2_FEAT_INCOMPAT);
	text_features(ii, Q2_FEAT_COMPAT);
	text_features(ii, Q2_FEAT_AUTOCLEAR);
	printf("    extended l2: %s\n", yes_no(q->extended_l2, false));
	printf("    lazy refcounts: %s\n", yes_no(q->lazy_refcounts, false));
	printf("    encryption: %s\n", crypt_name(q->crypt_method));
	printf("    external data file: %s\n", yes_no(q->has_data_file, false));
	printf("    snapshots: %" PRIu32 "\n", q->nb_snapshots);
	qemu_size(buf, sizeof(buf), q->file_size);
	printf("    file size: %s (%" PRIu64 " bytes)\n", buf, (uint64_t)q->file_size);
}

static void print_text(const struct image_info *ii)
{
	uint64_t vsize = ii->qcow2 ? ii->q.virtual_size : ii->size;
	char buf[32];

	printf("image: ");
	text_string(stdout, ii->file);
	printf("\nfile format: %s\n", ii->qcow2 ? "qcow2" : "raw");
	qemu_size(buf, sizeof(buf), vsize);
	printf("virtual size: %s (%" PRIu64 " bytes)\n", buf, vsize);
	qemu_size(buf, sizeof(buf), (uint64_t)ii->st.st_blocks * 512);
	printf("disk size: %s\n", buf);
	if (ii->qcow2)
		text_qcow2(ii);
}

/* ---------------------------------------------------------------------- */
/* JSON                                                                   */

static void json_key(const char *key)
{
	printf(",\n    \"%s\": ", key);
}

static void json_features(const struct image_info *ii, enum q2_feature_type t)
{
	uint64_t bits = feature_bits(&ii->q, t);
	bool first = true;
	unsigned int bit;

	printf("{\"value\": %" PRIu64 ", \"bits\": [", bits);
	for (bit = 0; bit < 64; bit++) {
		if (!(bits & (1ULL << bit)))
			continue;
		printf("%s{\"bit\": %u, \"name\": ", first ? "" : ", ", bit);
		json_string(stdout, q2_feature_name(ii->h.img, t, bit));
		putchar('}');
		first = false;
	}
	printf("]}");
}

/* qemu-img's keys for each snapshot. */
static void json_snapshots(const struct q2_info *q)
{
	uint32_t i;

	printf("[");
	for (i = 0; i < q->nb_snapshots; i++) {
		const struct q2_snapshot *sn = &q->snapshots[i];

		printf("%s\n        {\"id\": ", i ? "," : "");
		json_string(stdout, sn->id);
		printf(", \"name\": ");
		json_string(stdout, sn->name);
		printf(", \"vm-state-size\": %" PRIu64 ", \"date-sec\": %" PRIu32
		       ", \"date-nsec\": %" PRIu32 ", \"vm-clock-sec\": %" PRIu64
		       ", \"vm-clock-nsec\": %" PRIu64, (uint64_t)sn->vm_state_size,
		       sn->date_sec, sn->date_nsec,
		       (uint64_t)(sn->vm_clock_nsec / 1000000000ULL),
		       (uint64_t)(sn->vm_clock_nsec % 1000000000ULL));
		if (sn->icount != ~0ULL)
			printf(", \"icount\": %" PRIu64, (uint64_t)sn->icount);
		printf(", \"disk-size\": %" PRIu64 "}", (uint64_t)sn->disk_size);
	}
	printf(i ? "\n    ]" : "]");
}

static void json_chain(const struct image_info *ii)
{
	unsigned int i;

	json_key("backing-chain");
	printf("[");
	for (i = 0; i < ii->chain.nr; i++) {
		const struct vdisk_layer *l = &ii->chain.layer[i];

		printf("%s\n        {\"layer\": %u, \"path\": ", i ? "," : "", i + 1);
		json_string(stdout, l->path);
		printf(", \"filename\": ");
		json_string(stdout, l->file);
		printf(", \"format\": \"%s\"}", format_name(l->format));
	}
	printf(i ? "\n    ]" : "]");
	json_key("backing-chain-error");
	json_string(stdout, ii->chain_err[0] ? ii->chain_err : NULL);
}

static void json_qcow2(const struct image_info *ii)
{
	const struct q2_info *q = &ii->q;

	json_key("cluster-size");
	printf("%" PRIu32, q->cluster_size);
	json_key("encrypted");
	printf("%s", yes_no(q->crypt_method, true));
	if (q->backing_file) {
		char *full = qemu_full_backing(ii->file, q->backing_file);

		json_key("backing-filename");
		json_string(stdout, q->backing_file);
		if (full) {
			json_key("full-backing-filename");
			json_string(stdout, full);
		}
		free(full);
	}
	if (q->backing_format) {
		json_key("backing-filename-format");
		json_string(stdout, q->backing_format);
	}
	json_chain(ii);
	json_key("snapshots");
	json_snapshots(q);
	json_key("format-specific");
	/* qemu-img's keys; version 2 headers have no feature fields. */
	printf("{\n        \"type\": \"qcow2\",\n        \"data\": {\n"
	       "            \"compat\": \"%s\",\n"
	       "            \"compression-type\": \"%s\",\n",
	       q->version == 2 ? "0.10" : "1.1",
	       q2_compression_name(q->compression_type));
	if (q->version >= 3)
		printf("            \"lazy-refcounts\": %s,\n"
		       "            \"corrupt\": %s,\n"
		       "            \"extended-l2\": %s,\n",
		       yes_no(q->lazy_refcounts, true), yes_no(q->corrupt, true),
		       yes_no(q->extended_l2, true));
	if (q->has_data_file) {
		printf("            \"data-file\": ");
		json_string(stdout, q->data_file);
		printf(",\n            \"data-file-raw\": %s,\n",
		       yes_no(q->autoclear & Q2_AUTOCLEAR_DATA_FILE_RAW, true));
	}
	if (q->crypt_method)
		printf("            \"encrypt\": {\"format\": \"%s\"},\n",
		       crypt_name(q->crypt_method));
	printf("            \"refcount-bits\": %" PRIu32 "\n        }\n    }",
	       q->refcount_bits);
	json_key("qcow2");
	printf("{\n        \"version\": %" PRIu32 ",\n        \"header-length\": %" PRIu32,
	       q->version, q->header_length);
	printf(",\n        \"incompatible-features\": ");
	json_features(ii, Q2_FEAT_INCOMPAT);
	printf(",\n        \"compatible-features\": ");
	json_features(ii, Q2_FEAT_COMPAT);
	printf(",\n        \"autoclear-features\": ");
	json_features(ii, Q2_FEAT_AUTOCLEAR);
	printf(",\n        \"extended-l2\": %s,\n        \"lazy-refcounts\": %s,\n"
	       "        \"encryption\": \"%s\",\n        \"external-data-file\": %s,\n"
	       "        \"file-size\": %" PRIu64 "\n    }",
	       yes_no(q->extended_l2, true), yes_no(q->lazy_refcounts, true),
	       crypt_name(q->crypt_method), yes_no(q->has_data_file, true),
	       (uint64_t)q->file_size);
}

static void print_json_info(const struct image_info *ii)
{
	bool dirty = ii->qcow2 && ii->q.dirty, corrupt = ii->qcow2 && ii->q.corrupt;

	printf("{\n    \"filename\": ");
	json_string(stdout, ii->file);
	printf(",\n    \"format\": \"%s\"", ii->qcow2 ? "qcow2" : "raw");
	json_key("virtual-size");
	printf("%" PRIu64, ii->qcow2 ? (uint64_t)ii->q.virtual_size : ii->size);
	json_key("actual-size");
	printf("%" PRIu64, (uint64_t)ii->st.st_blocks * 512);
	if (ii->qcow2) {
		json_qcow2(ii);
	} else {
		/* The same keys for every image, so scripts need no cases. */
		json_key("backing-chain");
		printf("[]");
		json_key("backing-chain-error");
		printf("null");
		json_key("snapshots");
		printf("[]");
	}
	json_key("dirty-flag");		/* qemu-img's name */
	printf("%s", yes_no(dirty, true));
	json_key("dirty");
	printf("%s", yes_no(dirty, true));
	json_key("corrupt");
	printf("%s\n}\n", yes_no(corrupt, true));
}

/* ---------------------------------------------------------------------- */

static int open_info(struct image_info *ii, int fd)
{
	char err[Q2_ERR_MAX + 64];
	uint64_t bytes;
	int ret;

	ret = image_probe_qcow2(fd);
	if (ret < 0) {
		errf(CMD, ii->file, "%s", strerror(-ret));
		return -1;
	}
	ii->qcow2 = ret;
	if (!ii->qcow2) {
		ii->size = ii->st.st_size;
		if (S_ISBLK(ii->st.st_mode) && !ioctl(fd, BLKGETSIZE64, &bytes))
			ii->size = bytes;
		return 0;
	}
	if (q2_header_open(&ii->h, fd, err, sizeof(err))) {
		errf(CMD, ii->file, "%s", err);
		return -1;
	}
	q2_get_info(ii->h.img, &ii->q);
	if (ii->q.backing_file &&
	    chain_resolve(ii->file, fd, &ii->chain, ii->chain_err,
			  sizeof(ii->chain_err)))
		ii->chain.nr = 0;
	return 0;
}

int cmd_info(int argc, char **argv)
{
	struct image_info ii;
	bool json = false;
	int c, fd, ret = 0;

	opterr = 0;
	while ((c = next_opt(argc, argv, ":Jh", long_opts)) != -1) {
		switch (c) {
		case 'J':
			json = true;
			break;
		case 'h':
			return print_usage(CMD);
		default:
			return opt_error(CMD, c, argv);
		}
	}
	if (optind == argc)
		return usage_error(CMD, "missing FILE");
	if (optind + 1 < argc)
		return usage_error(CMD, "too many arguments");

	memset(&ii, 0, sizeof(ii));
	ii.file = argv[optind];
	/* O_NONBLOCK: a FIFO must not hang us; nothing here reads it. */
	fd = open(ii.file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &ii.st)) {
		errf(CMD, ii.file, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return EXIT_OPERATION;
	}
	if (S_ISDIR(ii.st.st_mode) ||
	    (!S_ISREG(ii.st.st_mode) && !S_ISBLK(ii.st.st_mode))) {
		errf(CMD, ii.file, S_ISDIR(ii.st.st_mode) ? "is a directory" :
		     "not a regular file or block device");
		close(fd);
		return EXIT_OPERATION;
	}
	clear_nonblock(fd);
	if (open_info(&ii, fd)) {
		close(fd);
		return EXIT_OPERATION;
	}
	if (json)
		print_json_info(&ii);
	else
		print_text(&ii);
	/* The description is out; a chain that stops short still fails. */
	if (ii.chain_err[0]) {
		errf(CMD, ii.file, "%s", ii.chain_err);
		ret = EXIT_OPERATION;
	}
	chain_close(&ii.chain);
	q2_header_close(&ii.h);
	close(fd);
	return ret;
}
