// SPDX-License-Identifier: GPL-2.0
/* Table and JSON output of device descriptions. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "vdiskctl.h"

const char *format_name(uint32_t format)
{
	switch (format) {
	case VDISK_FORMAT_RAW:		return "raw";
	case VDISK_FORMAT_QCOW2:	return "qcow2";
	}
	return "unknown";
}

const char *cache_name(uint32_t cache)
{
	switch (cache) {
	case VDISK_CACHE_NONE:		return "none";
	case VDISK_CACHE_WRITEBACK:	return "writeback";
	case VDISK_CACHE_WRITETHROUGH:	return "writethrough";
	}
	return "unknown";
}

/* As lsblk prints sizes: powers of 1024, one rounded decimal if needed. */
void human_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "BKMGTPE";
	uint64_t whole, frac = 0;
	int exp = 0;

	while (exp < 6 && bytes >= 1ULL << (10 * (exp + 1)))
		exp++;
	whole = bytes >> (10 * exp);
	if (exp) {
		uint64_t rest = bytes & ((1ULL << (10 * exp)) - 1);

		/* Tenths, rounded half up; 128 bits since rest < 2^60. */
		frac = (uint64_t)(((unsigned __int128)rest * 10 +
				   (1ULL << (10 * exp - 1))) >> (10 * exp));
		if (frac == 10) {
			whole++;
			frac = 0;
		}
	}
	if (frac)
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "%c", whole, frac, units[exp]);
	else
		snprintf(buf, len, "%" PRIu64 "%c", whole, units[exp]);
}

/* Control characters would break the one-line-per-device layout. */
static char *text_escape(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(4 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = *s;

		if (c < 0x20 || c == 0x7f)
			o += sprintf(o, "\\x%02x", c);
		else
			*o++ = c;
	}
	*o = '\0';
	return out;
}

void text_string(FILE *f, const char *s)
{
	char *e = text_escape(s);

	fputs(e ? e : s, f);
	free(e);
}

/* Length of the valid UTF-8 sequence at @s, 0 if there is none. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	/* Reject overlong forms, surrogates and code points past U+10FFFF. */
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/*
 * JSON strings must be valid UTF-8: a byte that is not part of a valid
 * sequence (paths are bytes) becomes U+FFFD rather than breaking parsers.
 */
void json_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;

	if (!str) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	while (*s) {
		switch (*s) {
		case '"':  fputs("\\\"", f); s++; continue;
		case '\\': fputs("\\\\", f); s++; continue;
		case '\b': fputs("\\b", f); s++; continue;
		case '\f': fputs("\\f", f); s++; continue;
		case '\n': fputs("\\n", f); s++; continue;
		case '\r': fputs("\\r", f); s++; continue;
		case '\t': fputs("\\t", f); s++; continue;
		}
		if (*s < 0x20 || *s == 0x7f) {
			fprintf(f, "\\u%04x", *s++);
			continue;
		}
		n = utf8_seq(s);
		if (!n) {
			fputs("\\ufffd", f);
			s++;
			continue;
		}
		fwrite(s, 1, n, f);
		s += n;
	}
	fputc('"', f);
}

static const char *json_bool(bool b)
{
	return b ? "true" : "false";
}

/* Always present, [] without a chain: one shape for every device. */
static void json_backing(FILE *f, const struct vdisk_info *d)
{
	unsigned int i;

	fputs(", \"backing-chain\": [", f);
	for (i = 0; i < d->nr_backing; i++) {
		fputs(i ? ", {\"path\": " : "{\"path\": ", f);
		json_string(f, d->backing[i].path);
		fputs(", \"format\": ", f);
		json_string(f, format_name(d->backing[i].format));
		fputc('}', f);
	}
	fputc(']', f);
}

void json_device(FILE *f, const struct vdisk_info *d, const char *event)
{
	fputc('{', f);
	if (event) {
		fputs("\"event\": ", f);
		json_string(f, event);
		fputs(", ", f);
	}
	fputs("\"name\": ", f);
	json_string(f, d->dev);
	fprintf(f, ", \"index\": %" PRIu32 ", \"label\": ", d->index);
	json_string(f, d->label[0] ? d->label : NULL);
	if (d->detached) {
		fputc('}', f);
		return;
	}
	fprintf(f, ", \"size\": %" PRIu64 ", \"format\": ", d->size);
	json_string(f, format_name(d->format));
	fprintf(f, ", \"offset\": %" PRIu64 ", \"sizelimit\": %" PRIu64
		", \"ro\": %s, \"partscan\": %s, \"autoclear\": %s, \"cache\": ",
		d->offset, d->sizelimit,
		json_bool(d->flags & VDISK_FLAG_READ_ONLY),
		json_bool(!(d->flags & VDISK_FLAG_NO_PARTSCAN)),
		json_bool(d->flags & VDISK_FLAG_AUTOCLEAR));
	json_string(f, cache_name(d->cache));
	fprintf(f, ", \"sector\": %" PRIu32 ", \"backing-file\": ", d->sector_size);
	json_string(f, d->has_path ? d->path : NULL);
	fprintf(f, ", \"major\": %" PRIu32 ", \"minor\": %" PRIu32
		", \"openers\": ", d->major, d->minor);
	if (d->has_openers)
		fprintf(f, "%" PRIu32, d->openers);
	else
		fputs("null", f);
	json_backing(f, d);
	fputs(", \"snapshot\": ", f);
	json_string(f, d->snapshot);
	fputs(", \"cache-size\": ", f);
	if (d->has_cache_size)
		fprintf(f, "%" PRIu64 "}", d->cache_size);
	else
		fputs("null}", f);
}

void print_json(const struct vdisk_info *v, size_t n)
{
	size_t i;

	if (!n) {
		puts("{\"vdisks\": []}");
		return;
	}
	puts("{\"vdisks\": [");
	for (i = 0; i < n; i++) {
		fputs("  ", stdout);
		json_device(stdout, &v[i], NULL);
		puts(i + 1 < n ? "," : "");
	}
	puts("]}");
}

enum {
	COL_NAME, COL_SIZE, COL_FORMAT, COL_OFFSET, COL_SIZELIMIT, COL_RO,
	COL_PARTSCAN, COL_AUTOCLEAR, COL_CACHE, COL_SECTOR, COL_LABEL,
	COL_BACKING, NCOLS
};

static const struct {
	const char *title;
	bool right;	/* numbers line up on the right, as in losetup */
} columns[NCOLS] = {
	[COL_NAME]	= { "NAME", false },
	[COL_SIZE]	= { "SIZE", true },
	[COL_FORMAT]	= { "FORMAT", false },
	[COL_OFFSET]	= { "OFFSET", true },
	[COL_SIZELIMIT]	= { "SIZELIMIT", true },
	[COL_RO]	= { "RO", true },
	[COL_PARTSCAN]	= { "PARTSCAN", true },
	[COL_AUTOCLEAR]	= { "AUTOCLEAR", true },
	[COL_CACHE]	= { "CACHE", false },
	[COL_SECTOR]	= { "SECTOR", true },
	[COL_LABEL]	= { "LABEL", false },
	[COL_BACKING]	= { "BACKING-FILE", false },
};

static char *fmt_cell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *fmt_cell(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/*
 * The BACKING-FILE cell: the image, " @SNAPSHOT" if attached at one, then
 * the chain below it as " -> LAYER", nearest first.  Caller frees.
 */
char *backing_text(const struct vdisk_info *d)
{
	char *top = d->has_path ? text_escape(d->path) : strdup("-");
	char *snap = d->snapshot ? text_escape(d->snapshot) : NULL;
	char *out = NULL, *next;
	unsigned int i;

	if (!top || (d->snapshot && !snap))
		goto out;
	out = snap ? fmt_cell("%s @%s", top, snap) : strdup(top);
	for (i = 0; out && i < d->nr_backing; i++) {
		char *layer = text_escape(d->backing[i].path ? d->backing[i].path : "?");

		next = layer ? fmt_cell("%s -> %s", out, layer) : NULL;
		free(layer);
		free(out);
		out = next;
	}
out:
	free(top);
	free(snap);
	return out;
}

static void fill_row(char **row, const struct vdisk_info *d, bool bytes)
{
	char size[32];

	if (bytes)
		snprintf(size, sizeof(size), "%" PRIu64, d->size);
	else
		human_size(d->size, size, sizeof(size));
	row[COL_NAME] = text_escape(d->dev);
	row[COL_SIZE] = strdup(size);
	row[COL_FORMAT] = strdup(format_name(d->format));
	row[COL_OFFSET] = fmt_cell("%" PRIu64, d->offset);
	row[COL_SIZELIMIT] = fmt_cell("%" PRIu64, d->sizelimit);
	row[COL_RO] = fmt_cell("%d", !!(d->flags & VDISK_FLAG_READ_ONLY));
	row[COL_PARTSCAN] = fmt_cell("%d", !(d->flags & VDISK_FLAG_NO_PARTSCAN));
	row[COL_AUTOCLEAR] = fmt_cell("%d", !!(d->flags & VDISK_FLAG_AUTOCLEAR));
	row[COL_CACHE] = strdup(cache_name(d->cache));
	row[COL_SECTOR] = fmt_cell("%" PRIu32, d->sector_size);
	row[COL_LABEL] = d->label[0] ? text_escape(d->label) : strdup("-");
	row[COL_BACKING] = backing_text(d);
}

static void print_row(char *const *row, const size_t *width)
{
	int c;

	for (c = 0; c < NCOLS; c++) {
		const char *s = row[c] ? row[c] : "?";

		if (c == NCOLS - 1)
			printf("%s\n", s);
		else
			printf(columns[c].right ? "%*s " : "%-*s ", (int)width[c], s);
	}
}

void print_table(const struct vdisk_info *v, size_t n, bool bytes)
{
	size_t width[NCOLS], i;
	char *(*rows)[NCOLS];
	const char *head[NCOLS];
	int c;

	if (!n)
		return;
	rows = calloc(n, sizeof(*rows));
	if (!rows)
		return;
	for (c = 0; c < NCOLS; c++) {
		head[c] = columns[c].title;
		width[c] = strlen(head[c]);
	}
	for (i = 0; i < n; i++) {
		fill_row(rows[i], &v[i], bytes);
		for (c = 0; c < NCOLS; c++)
			if (rows[i][c] && strlen(rows[i][c]) > width[c])
				width[c] = strlen(rows[i][c]);
	}
	print_row((char *const *)head, width);
	for (i = 0; i < n; i++) {
		print_row(rows[i], width);
		for (c = 0; c < NCOLS; c++)
			free(rows[i][c]);
	}
	free(rows);
}
