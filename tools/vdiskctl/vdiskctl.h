/* SPDX-License-Identifier: GPL-2.0 */
/* Declarations shared by the vdiskctl sources. */
#ifndef VDISKCTL_H
#define VDISKCTL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <linux/vdisk.h>

#ifndef VDISK_VERSION
#define VDISK_VERSION "0.1.0"
#endif

#define EXIT_OPERATION	1
#define EXIT_USAGE	2

/* One layer of a device's backing chain, as replies describe it. */
struct vdisk_layer_info {
	char *path;			/* NULL if the reply had none */
	uint32_t format;
};

/* One device as a GET reply or an event describes it. */
struct vdisk_info {
	uint32_t index;
	char dev[32];			/* "/dev/vdiskN" */
	char label[VDISK_NAME_MAX];	/* user name, "" if none */
	char path[VDISK_PATH_MAX];	/* backing file, "" if none */
	bool has_path;
	bool detached;			/* detach events carry only the names */
	uint32_t format;
	uint32_t flags;
	uint32_t cache;
	uint32_t sector_size;
	uint32_t major, minor, openers;
	bool has_openers;		/* not in ATTACH events */
	uint64_t offset, sizelimit, size;
	/* qcow2; heap-allocated, released by dev_info_free() */
	char *snapshot;			/* attached at this snapshot, or NULL */
	bool has_cache_size;
	uint64_t cache_size;
	struct vdisk_layer_info *backing;	/* nearest layer first */
	unsigned int nr_backing;
};

struct vdisk_list {
	struct vdisk_info *v;
	size_t n, cap;
};

/* How a DEV argument selects a device in DEL, GET and SET. */
struct vdisk_sel {
	bool by_index;
	uint32_t index;
	const char *name;
};

/* What one SET request changes. */
struct vdisk_change {
	uint32_t set_flags;		/* VDISK_SET_* */
	bool has_cache, has_size;
	uint32_t cache;
	uint64_t size;
};

/* One image below another, opened by chain_resolve() (backing.c). */
struct vdisk_layer {
	int fd;			/* read-only, opened with the caller's rights */
	char *file;		/* as resolved from the name above: messages */
	char *path;		/* canonical: the kernel's PATH, display */
	uint32_t format;	/* VDISK_FORMAT_RAW or VDISK_FORMAT_QCOW2 */
};

/* The backing chain below one image, nearest layer first. */
struct vdisk_chain {
	unsigned int nr;
	struct vdisk_layer layer[VDISK_BACKING_MAX];
};

/* One attach request, from `attach`'s options or a vdisktab line. */
struct attach_opts {
	const char *cmd;	/* for messages: "attach", "attach-all" */
	const char *where;	/* "FILE:LINE" for option errors, or NULL */
	const char *obj;	/* for image errors instead of @file, or NULL */
	const char *file;	/* as given */
	char *path;		/* canonical, for display by the kernel */
	int fd;
	uint32_t flags;		/* VDISK_FLAG_* */
	uint32_t format;
	bool has_offset, has_sizelimit, has_cache, has_sector_size, has_index;
	uint64_t offset, sizelimit;
	uint32_t cache, sector_size, index;
	const char *name;
	const char *snapshot;	/* qcow2: attach this internal snapshot */
	bool has_cache_size;
	uint64_t cache_size;	/* qcow2: metadata cache bytes */
	struct vdisk_chain chain;	/* qcow2: the layers below FILE */
};

/* The settings attach_set() takes, one per attach option. */
enum attach_opt {
	AO_READ_ONLY, AO_OFFSET, AO_SIZELIMIT, AO_FORMAT, AO_NO_PARTSCAN,
	AO_SECTOR_SIZE, AO_CACHE, AO_AUTOCLEAR, AO_NAME, AO_INDEX, AO_SNAPSHOT,
	AO_CACHE_SIZE,
};

/* One valid line of a vdisktab (tab.c). */
struct tab_entry {
	unsigned int line;
	char *where;		/* "FILE:LINE" */
	char *obj;		/* "FILE:LINE: IMAGE" */
	char *name;
	char *image;		/* absolute, escapes decoded */
	char *options;		/* as written, "" if none */
	char **values;		/* decoded option values, owned */
	size_t nvalues;
	bool noauto;
	struct attach_opts opts;	/* ready for attach_image() */
};

struct tab {
	const char *file;
	struct tab_entry *v;
	size_t n;
	unsigned int errors;	/* bad lines, each reported and skipped */
	/*
	 * The NAME of every line that starts with a valid one, bad lines
	 * included, once each in file order: detach-all detaches the
	 * device of a line that has become invalid since its attach.
	 */
	char **names;
	size_t nnames;
};

#define VDISKTAB_DEFAULT "/etc/vdisktab"

struct nlattr;
struct nl_msg;
struct vnl;

/* main.c */
int print_usage(const char *cmd);

/* commands */
int cmd_attach(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_resize(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_attach_all(int argc, char **argv);
int cmd_detach_all(int argc, char **argv);

/* generator.c: run as the systemd generator "vdisk-generator". */
int generator_main(int argc, char **argv);

/* cmd_attach.c */
void attach_opts_init(struct attach_opts *o, const char *cmd);
int attach_set(struct attach_opts *o, enum attach_opt opt, const char *val);
int attach_image(struct vnl *nl, struct attach_opts *o, struct vdisk_info *d);
void attach_opts_release(struct attach_opts *o);

/* tab.c */
const char *tab_default(void);
/*
 * Read @file: every bad line is reported as "vdiskctl: CMD FILE:LINE: why"
 * and skipped (counted in t->errors).  With @names (@nnames of them), only
 * lines whose first field is one of them are reported and counted; the
 * others are still checked, silently.  Returns 0, or -errno with a message
 * printed if the file cannot be read at all.
 */
int tab_read(const char *cmd, const char *file, struct tab *t,
	     char *const *names, int nnames);
struct tab_entry *tab_find(struct tab *t, const char *name);
void tab_free(struct tab *t);

/* cmd_set.c: send @ch for the device that @dev (as given) selects. */
int set_device(const char *cmd, const char *dev, const struct vdisk_change *ch);

/* util.c */
extern bool errf_silent;
void errf(const char *cmd, const char *obj, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int next_opt(int argc, char **argv, const char *shortopts,
	     const struct option *longopts);
int opt_error(const char *cmd, int c, char **argv);
int parse_size(const char *s, uint64_t *out);
int parse_u32(const char *s, uint32_t *out);
int parse_cache(const char *s, uint32_t *out);
int get_size_arg(const char *cmd, const char *obj, const char *what,
		 const char *arg, uint64_t *out);
int get_cache_arg(const char *cmd, const char *obj, const char *arg,
		  uint32_t *out);
bool name_valid(const char *name, const char **why);

/* backing.c */
/* 1 if the file on @fd starts with the qcow2 magic, 0 if not, or -errno. */
int image_probe_qcow2(int fd);
void clear_nonblock(int fd);
/*
 * Open the chain below the qcow2 image @file, open on @fd: layer names
 * resolved as qemu-img does, at most VDISK_BACKING_MAX layers, no loops.
 * Returns 0, or -errno with a one-line reason in @err (nothing left open).
 */
int chain_resolve(const char *file, int fd, struct vdisk_chain *c, char *err,
		  size_t len);
void chain_close(struct vdisk_chain *c);

/* device.c */
int dev_selector(const char *arg, struct vdisk_sel *sel, const char **why);
int dev_put_selector(struct nl_msg *msg, const struct vdisk_sel *sel);
int dev_from_attrs(struct nlattr **tb, struct vdisk_info *d);
void dev_info_free(struct vdisk_info *d);
int dev_get(struct vnl *nl, const struct vdisk_sel *sel, struct vdisk_info *d);
int dev_dump(struct vnl *nl, struct vdisk_list *list);
int dev_del(struct vnl *nl, const char *obj, const struct vdisk_sel *sel,
	    bool lazy, bool retry_busy);
struct vdisk_info *dev_list_push(struct vdisk_list *list);
void dev_list_free(struct vdisk_list *list);

/* output.c */
const char *format_name(uint32_t format);
const char *cache_name(uint32_t cache);
void human_size(uint64_t bytes, char *buf, size_t len);
void text_string(FILE *f, const char *s);
void json_string(FILE *f, const char *s);
void json_device(FILE *f, const struct vdisk_info *d, const char *event);
void print_table(const struct vdisk_info *v, size_t n, bool bytes);
void print_json(const struct vdisk_info *v, size_t n);
char *backing_text(const struct vdisk_info *d);

#endif
