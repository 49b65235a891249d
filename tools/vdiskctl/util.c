// SPDX-License-Identifier: GPL-2.0
/* Error reporting and argument parsing. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vdiskctl.h"

/* Set while checking lines nobody asked about (attach-all NAME). */
bool errf_silent;

/*
 * Every error is one line: scripts grep it, people read it.  Control
 * characters are escaped as on standard output: messages carry names
 * read from images' headers (a backing file name with a newline or a
 * terminal's escape sequence in it).
 */
void errf(const char *cmd, const char *obj, const char *fmt, ...)
{
	char *msg;
	va_list ap;
	int n;

	if (errf_silent)
		return;
	fflush(stdout);
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	fputs("vdiskctl: ", stderr);
	if (cmd) {
		text_string(stderr, cmd);
		if (obj) {
			fputc(' ', stderr);
			text_string(stderr, obj);
		}
		fputs(": ", stderr);
	}
	if (n < 0) {
		fputs(strerror(ENOMEM), stderr);
	} else {
		text_string(stderr, msg);
		free(msg);
	}
	fputc('\n', stderr);
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vdiskctl: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see vdiskctl %s --help)\n", cmd);
	return EXIT_USAGE;
}

/* optind before the last next_opt(): see opt_error(). */
static int opt_optind;

/* getopt_long, remembering where it started for opt_error(). */
int next_opt(int argc, char **argv, const char *shortopts,
	     const struct option *longopts)
{
	opt_optind = optind;
	return getopt_long(argc, argv, shortopts, longopts, NULL);
}

/*
 * next_opt() with a leading ':' in shortopts and opterr = 0 leaves the
 * diagnostics to us.  A long option is reported as typed, without any
 * "=value".
 */
int opt_error(const char *cmd, int c, char **argv)
{
	const char *arg = argv[optind - 1];
	int len = strcspn(arg, "=");

	/*
	 * An error inside a cluster ("-Xr") leaves optind where it was, on
	 * the cluster, and argv[optind - 1] is the argument before it; an
	 * error on the cluster's last character moves optind past it.
	 * Either way a short option has a character (optopt).
	 */
	if (optind == opt_optind || strncmp(arg, "--", 2) != 0) {
		if (c == ':')
			return usage_error(cmd, "option '-%c' needs an argument", optopt);
		return usage_error(cmd, "unknown option '-%c'", optopt);
	}
	if (c == ':')
		return usage_error(cmd, "option '%.*s' needs an argument", len, arg);
	if (optopt && arg[len] == '=')
		return usage_error(cmd, "option '%.*s' takes no argument", len, arg);
	return usage_error(cmd, "unknown option '%.*s'", len, arg);
}

/*
 * Sizes as util-linux takes them: a decimal number, optionally with a
 * fraction, and a suffix K, M, G, T, P or E (or KiB...: powers of 1024;
 * KB...: powers of 1000).  Hex and octal are not accepted: "010" is ten.
 * Returns 0, -EINVAL for garbage or -ERANGE for overflow.
 */
int parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGTPE";
	uint64_t num = 0, frac = 0, fracdiv = 1, mult = 1, base = 1024;
	const char *p = s, *u;
	int exp, i;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (num > (UINT64_MAX - (*p - '0')) / 10)
			return -ERANGE;
		num = num * 10 + (*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++) {
			/* Digits past 10^18 cannot change a byte count. */
			if (fracdiv < 1000000000000000000ULL) {
				frac = frac * 10 + (*p - '0');
				fracdiv *= 10;
			}
		}
	}
	if (!*p) {
		if (fracdiv > 1)
			return -EINVAL;	/* a fraction of a byte */
		*out = num;
		return 0;
	}
	if ((*p == 'B' || *p == 'b') && !p[1] && fracdiv == 1) {
		*out = num;
		return 0;
	}
	u = strchr(units, toupper((unsigned char)*p));
	if (!u)
		return -EINVAL;
	exp = u - units + 1;
	p++;
	if (!*p || !strcasecmp(p, "iB"))
		base = 1024;
	else if (!strcasecmp(p, "B"))
		base = 1000;
	else
		return -EINVAL;

	for (i = 0; i < exp; i++)
		mult *= base;
	if (num > UINT64_MAX / mult)
		return -ERANGE;
	num *= mult;
	if (frac) {
		/* frac < 10^18 and mult <= 2^60: the product fits 128 bits. */
		uint64_t add = (uint64_t)(((unsigned __int128)frac * mult) / fracdiv);

		if (num > UINT64_MAX - add)
			return -ERANGE;
		num += add;
	}
	*out = num;
	return 0;
}

int parse_u32(const char *s, uint32_t *out)
{
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		v = v * 10 + (*s - '0');
		if (v > UINT32_MAX)
			return -ERANGE;
	}
	if (*s)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_cache(const char *s, uint32_t *out)
{
	if (!strcmp(s, "none"))
		*out = VDISK_CACHE_NONE;
	else if (!strcmp(s, "writeback"))
		*out = VDISK_CACHE_WRITEBACK;
	else if (!strcmp(s, "writethrough"))
		*out = VDISK_CACHE_WRITETHROUGH;
	else
		return -EINVAL;
	return 0;
}

/* A BYTES option value, with the errors spelled out; 0 or EXIT_USAGE. */
/* @obj, if not NULL, says where the value came from ("FILE:LINE"). */
int get_size_arg(const char *cmd, const char *obj, const char *what,
		 const char *arg, uint64_t *out)
{
	int ret;

	if (arg[0] == '-') {
		errf(cmd, obj, "%s must not be negative: '%s'", what, arg);
		return EXIT_USAGE;
	}
	ret = parse_size(arg, out);
	if (ret == -ERANGE) {
		errf(cmd, obj, "%s is too large: '%s'", what, arg);
		return EXIT_USAGE;
	}
	if (ret) {
		errf(cmd, obj, "invalid %s '%s' (bytes, with an optional K, M, G, T, P or E suffix)",
		     what, arg);
		return EXIT_USAGE;
	}
	return 0;
}

int get_cache_arg(const char *cmd, const char *obj, const char *arg,
		  uint32_t *out)
{
	if (parse_cache(arg, out)) {
		errf(cmd, obj, "invalid cache mode '%s' (none, writeback or writethrough)",
		     arg);
		return EXIT_USAGE;
	}
	return 0;
}

/*
 * A user-chosen device name as the kernel accepts it (VDISK_ATTR_NAME):
 * letters, digits and "._-:", not starting with '.' or '-', not
 * "vdisk<digits>", shorter than VDISK_NAME_MAX.  Checked here so that a
 * bad name is reported before the kernel is asked (and without it).
 */
bool name_valid(const char *name, const char **why)
{
	size_t plen = strlen(VDISK_DISK_PREFIX);
	const char *p;

	if (!*name) {
		*why = "empty name";
		return false;
	}
	if (strlen(name) >= VDISK_NAME_MAX) {
		*why = "longer than 63 bytes";
		return false;
	}
	if (name[0] == '.' || name[0] == '-') {
		*why = "must not start with '.' or '-'";
		return false;
	}
	if (!strncmp(name, VDISK_DISK_PREFIX, plen) && name[plen] &&
	    strspn(name + plen, "0123456789") == strlen(name + plen)) {
		*why = "vdiskN names a device by index";
		return false;
	}
	for (p = name; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr("._-:", *p)) {
			*why = "letters, digits, '.', '_', '-' and ':' only";
			return false;
		}
	}
	return true;
}
