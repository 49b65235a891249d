// SPDX-License-Identifier: GPL-2.0
/*
 * /etc/vdisktab: one device per line, "NAME IMAGE [OPTIONS]", the options
 * comma-separated and named after attach's (see vdisktab(5)).  Every line
 * is checked here, before the kernel is asked anything, so that a bad line
 * is reported with its number and the other lines still count.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vdiskctl.h"

/* Option names, and what each one sets in an attach request. */
static const struct tab_opt {
	const char *name;
	bool value;		/* takes "=VALUE" */
	int opt;		/* enum attach_opt, or -1 for the ones below */
} tab_opts[] = {
	{ "ro",		  false, AO_READ_ONLY },
	{ "read-only",	  false, AO_READ_ONLY },
	{ "offset",	  true,	 AO_OFFSET },
	{ "sizelimit",	  true,	 AO_SIZELIMIT },
	{ "format",	  true,	 AO_FORMAT },
	{ "cache",	  true,	 AO_CACHE },
	{ "noparts",	  false, AO_NO_PARTSCAN },
	{ "no-partscan",  false, AO_NO_PARTSCAN },
	{ "sector-size",  true,	 AO_SECTOR_SIZE },
	{ "snapshot",	  true,	 AO_SNAPSHOT },
	{ "cache-size",	  true,	 AO_CACHE_SIZE },
	{ "noauto",	  false, -1 },
	{ "defaults",	  false, -2 },
};

const char *tab_default(void)
{
	const char *env = getenv("VDISKTAB");

	return env && *env ? env : VDISKTAB_DEFAULT;
}

/*
 * fstab's escapes: a backslash and three octal digits stand for one byte
 * ("\040" is a space).  Anything else is kept as written.  Returns a new
 * string, or NULL (errno ENOMEM, or EINVAL for an escaped NUL).
 */
static char *unescape(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o = (s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0');
			if (!*o) {
				free(out);
				errno = EINVAL;
				return NULL;
			}
			o++;
			s += 4;
			continue;
		}
		*o++ = *s++;
	}
	*o = '\0';
	return out;
}

static void entry_free(struct tab_entry *e)
{
	size_t i;

	attach_opts_release(&e->opts);
	for (i = 0; i < e->nvalues; i++)
		free(e->values[i]);
	free(e->values);
	free(e->where);
	free(e->obj);
	free(e->name);
	free(e->image);
	free(e->options);
	memset(e, 0, sizeof(*e));
}

/* Keep @v (decoded) for as long as the entry lives. */
static const char *keep_value(struct tab_entry *e, char *v)
{
	char **vv = realloc(e->values, (e->nvalues + 1) * sizeof(*vv));

	if (!vv) {
		free(v);
		return NULL;
	}
	e->values = vv;
	e->values[e->nvalues++] = v;
	return v;
}

/* The OPTIONS field into e->opts; 0, or -1 with the reason printed. */
static int parse_options(const char *cmd, struct tab_entry *e)
{
	char *copy, *item, *save = NULL;
	int ret = 0;

	if (!*e->options || !strcmp(e->options, "-"))
		return 0;
	copy = strdup(e->options);
	if (!copy) {
		errf(cmd, e->where, "%s", strerror(ENOMEM));
		return -1;
	}
	/* strtok_r would skip empty items, which are mistakes worth a word. */
	for (item = copy; item && !ret; item = save) {
		const struct tab_opt *t = NULL;
		char *eq, *val = NULL;
		const char *kept;
		size_t i;

		save = strchr(item, ',');
		if (save)
			*save++ = '\0';
		if (!*item) {
			errf(cmd, e->where, "empty option in '%s'", e->options);
			ret = -1;
			break;
		}
		eq = strchr(item, '=');
		if (eq)
			*eq = '\0';
		for (i = 0; i < sizeof(tab_opts) / sizeof(tab_opts[0]); i++)
			if (!strcmp(tab_opts[i].name, item))
				t = &tab_opts[i];
		if (!t) {
			errf(cmd, e->where, "unknown option '%s'", item);
			ret = -1;
			break;
		}
		if (t->value && !eq) {
			errf(cmd, e->where, "option '%s' needs a value (%s=...)",
			     item, item);
			ret = -1;
			break;
		}
		if (!t->value && eq) {
			errf(cmd, e->where, "option '%s' takes no value", item);
			ret = -1;
			break;
		}
		if (t->opt == -1) {
			e->noauto = true;
			continue;
		}
		if (t->opt == -2)
			continue;
		if (eq) {
			val = unescape(eq + 1);
			if (!val) {
				errf(cmd, e->where, "option '%s': %s", item,
				     errno == EINVAL ? "escaped NUL byte" :
				     strerror(errno));
				ret = -1;
				break;
			}
		}
		kept = val ? keep_value(e, val) : NULL;
		if (val && !kept) {
			errf(cmd, e->where, "%s", strerror(ENOMEM));
			ret = -1;
			break;
		}
		if (attach_set(&e->opts, t->opt, kept))
			ret = -1;
	}
	free(copy);
	return ret;
}

/* Split @line in place into at most @max whitespace-separated fields. */
static int split_fields(char *line, char **f, int max)
{
	int n = 0;
	char *p = line;

	for (;;) {
		p += strspn(p, " \t\r\n");
		if (!*p || *p == '#')	/* "#" starts a comment, also after fields */
			return n;
		if (n == max)
			return max + 1;
		f[n++] = p;
		p += strcspn(p, " \t\r\n");
		if (*p)
			*p++ = '\0';
	}
}

/*
 * The generator makes a unit "vdisk@NAME.service" and its drop-in
 * directory "vdisk@NAME.service.d", a file name of at most 255 bytes, with
 * NAME escaped as systemd does.  Of the bytes a name may hold (name_valid:
 * letters, digits and "._-:", not starting with '.'), it escapes only
 * '-', as "\x2d".
 */
#define UNIT_INSTANCE_MAX	(255 - sizeof("vdisk@.service.d") + 1)

static bool unit_name_fits(const char *name)
{
	size_t len = strlen(name);
	const char *p;

	for (p = name; *p; p++)
		if (*p == '-')
			len += 3;
	return len <= UNIT_INSTANCE_MAX;
}

/* One non-blank, non-comment line; 0 with @e filled, or -1 (reported). */
static int parse_line(const char *cmd, struct tab *t, char *line,
		      unsigned int lineno, struct tab_entry *e)
{
	const char *why;
	char *f[3];
	size_t i;
	int n;

	memset(e, 0, sizeof(*e));
	e->line = lineno;
	attach_opts_init(&e->opts, cmd);
	if (asprintf(&e->where, "%s:%u", t->file, lineno) < 0) {
		e->where = NULL;
		errf(cmd, t->file, "%s", strerror(ENOMEM));
		return -1;
	}
	e->opts.where = e->where;

	n = split_fields(line, f, 3);
	if (n > 3) {
		errf(cmd, e->where, "too many fields (NAME IMAGE [OPTIONS]; options are separated by commas, not spaces)");
		return -1;
	}
	if (n < 2) {
		errf(cmd, e->where, "missing IMAGE (NAME IMAGE [OPTIONS])");
		return -1;
	}
	if (!name_valid(f[0], &why)) {
		errf(cmd, e->where, "invalid name '%s': %s", f[0], why);
		return -1;
	}
	if (!unit_name_fits(f[0])) {
		errf(cmd, e->where, "name '%s' is too long for a systemd unit (%zu bytes, each '-' counting 4)",
		     f[0], UNIT_INSTANCE_MAX);
		return -1;
	}
	for (i = 0; i < t->n; i++) {
		if (!strcmp(t->v[i].name, f[0])) {
			errf(cmd, e->where, "duplicate name '%s' (first on line %u)",
			     f[0], t->v[i].line);
			return -1;
		}
	}
	e->name = strdup(f[0]);
	e->image = unescape(f[1]);
	e->options = strdup(n > 2 ? f[2] : "");
	if (!e->image && errno == EINVAL) {
		errf(cmd, e->where, "escaped NUL byte in IMAGE");
		return -1;
	}
	if (!e->name || !e->image || !e->options ||
	    asprintf(&e->obj, "%s: %s", e->where, e->image) < 0) {
		e->obj = NULL;
		errf(cmd, e->where, "%s", strerror(ENOMEM));
		return -1;
	}
	if (e->image[0] != '/') {
		errf(cmd, e->where, "IMAGE must be an absolute path, not '%s'",
		     e->image);
		return -1;
	}
	if (parse_options(cmd, e))
		return -1;
	e->opts.name = e->name;
	e->opts.file = e->image;
	e->opts.obj = e->obj;
	return 0;
}

/*
 * Note the NAME @line starts with in t->names, if it is a valid one: a new
 * name at the end; a name already noted moves to the end when @line is
 * valid, so that a valid line's name takes that line's place and a bad
 * line of the same name before it does not move its device earlier in
 * detach-all's order.  Every name noted so far is from this line or an
 * earlier one, so this line's place is the end.  @line's first field may
 * already be cut off by a NUL (parse_line()).
 */
static int note_name(struct tab *t, const char *line, bool valid)
{
	size_t len = strcspn(line, " \t\r\n"), i;
	const char *why;
	char *name, **v;

	for (i = 0; i < t->nnames; i++) {
		if (strlen(t->names[i]) != len || strncmp(t->names[i], line, len))
			continue;
		if (valid) {
			name = t->names[i];
			memmove(&t->names[i], &t->names[i + 1],
				(t->nnames - i - 1) * sizeof(*t->names));
			t->names[t->nnames - 1] = name;
		}
		return 0;
	}
	name = strndup(line, len);
	if (!name)
		return -ENOMEM;
	if (!name_valid(name, &why)) {
		free(name);
		return 0;
	}
	v = realloc(t->names, (t->nnames + 1) * sizeof(*v));
	if (!v) {
		free(name);
		return -ENOMEM;
	}
	t->names = v;
	t->names[t->nnames++] = name;
	return 0;
}

/* Whether a bad line is about one of @names (its first field). */
static bool line_named(const char *line, char *const *names, int nnames)
{
	size_t len;
	int i;

	line += strspn(line, " \t");
	len = strcspn(line, " \t\r\n");
	for (i = 0; i < nnames; i++)
		if (strlen(names[i]) == len && !strncmp(names[i], line, len))
			return true;
	return false;
}

int tab_read(const char *cmd, const char *file, struct tab *t,
	     char *const *names, int nnames)
{
	unsigned int lineno = 0;
	size_t cap = 0, len = 0;
	char *line = NULL;
	FILE *f;
	int ret = 0;

	memset(t, 0, sizeof(*t));
	t->file = file;
	f = fopen(file, "re");
	if (!f) {
		ret = -errno;
		errf(cmd, file, "%s", strerror(errno));
		return ret;
	}
	while (getline(&line, &len, f) != -1) {
		struct tab_entry e;
		char *p = line;
		bool quiet;
		int bad;

		lineno++;
		p += strspn(p, " \t\r\n");
		if (!*p || *p == '#')
			continue;
		quiet = nnames && !line_named(p, names, nnames);
		errf_silent = quiet;
		bad = parse_line(cmd, t, line, lineno, &e);
		errf_silent = false;
		if (note_name(t, p, !bad)) {
			entry_free(&e);
			errf(cmd, file, "%s", strerror(ENOMEM));
			ret = -ENOMEM;
			break;
		}
		if (bad) {
			entry_free(&e);
			if (!quiet)
				t->errors++;
			continue;
		}
		if (t->n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct tab_entry *v = realloc(t->v, ncap * sizeof(*v));

			if (!v) {
				entry_free(&e);
				errf(cmd, file, "%s", strerror(ENOMEM));
				ret = -ENOMEM;
				break;
			}
			t->v = v;
			cap = ncap;
		}
		t->v[t->n++] = e;
	}
	if (!ret && ferror(f)) {
		ret = -EIO;
		errf(cmd, file, "read error");
	}
	free(line);
	fclose(f);
	if (ret)
		tab_free(t);
	return ret;
}

struct tab_entry *tab_find(struct tab *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, name))
			return &t->v[i];
	return NULL;
}

void tab_free(struct tab *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		entry_free(&t->v[i]);
	free(t->v);
	t->v = NULL;
	t->n = 0;
	for (i = 0; i < t->nnames; i++)
		free(t->names[i]);
	free(t->names);
	t->names = NULL;
	t->nnames = 0;
}
