// SPDX-License-Identifier: GPL-2.0
/* DEV arguments to selectors, and device descriptions from replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <netlink/attr.h>

#include "nl.h"
#include "vdiskctl.h"

/* "vdiskN" exactly as the kernel names it: no sign, no leading zero. */
static bool disk_index(const char *s, uint32_t *index)
{
	size_t plen = strlen(VDISK_DISK_PREFIX);

	if (strncmp(s, VDISK_DISK_PREFIX, plen))
		return false;
	s += plen;
	if (s[0] == '0' && s[1])
		return false;
	return parse_u32(s, index) == 0;
}

/* "vdiskNpM": a partition, which no command can act on. */
static bool is_partition(const char *s)
{
	const char *p;
	uint32_t n;
	char *copy;
	bool ret;

	p = strrchr(s, 'p');
	if (!p || p[1] == '\0' || parse_u32(p + 1, &n))
		return false;
	copy = strndup(s, p - s);
	ret = copy && disk_index(copy, &n);
	free(copy);
	return ret;
}

/*
 * /dev/vdiskN and vdiskN select by index; user names cannot contain '/',
 * so any other path must lead to a vdisk node (a udev symlink does) or
 * it is an error rather than a name the kernel will not know.
 */
int dev_selector(const char *arg, struct vdisk_sel *sel, const char **why)
{
	static char reason[64];
	char *real;
	const char *base;
	struct stat st;

	memset(sel, 0, sizeof(*sel));
	if (!*arg) {
		*why = "empty device name";
		return -EINVAL;
	}
	if (!strchr(arg, '/')) {
		if (disk_index(arg, &sel->index))
			sel->by_index = true;
		else
			sel->name = arg;
		return 0;
	}
	if (!strncmp(arg, "/dev/", 5) && disk_index(arg + 5, &sel->index)) {
		sel->by_index = true;
		return 0;
	}

	real = realpath(arg, NULL);
	if (!real) {
		snprintf(reason, sizeof(reason), "%s", strerror(errno));
		*why = reason;
		return -errno;
	}
	base = strrchr(real, '/') + 1;
	if (!strncmp(real, "/dev/", 5) && base == real + 5 &&
	    disk_index(base, &sel->index)) {
		sel->by_index = true;
		free(real);
		return 0;
	}
	if (stat(real, &st) == 0 && S_ISBLK(st.st_mode) && is_partition(base))
		*why = "is a partition, not a vdisk device";
	else
		*why = "not a vdisk device";
	free(real);
	return -ENODEV;
}

int dev_put_selector(struct nl_msg *msg, const struct vdisk_sel *sel)
{
	if (sel->by_index)
		return nla_put_u32(msg, VDISK_ATTR_INDEX, sel->index);
	return nla_put_string(msg, VDISK_ATTR_NAME, sel->name);
}

static uint32_t get_u32(struct nlattr *a)
{
	return a ? nla_get_u32(a) : 0;
}

static uint64_t get_u64(struct nlattr *a)
{
	return a ? nla_get_u64(a) : 0;
}

static struct nla_policy layer_policy[VDISK_LAYER_ATTR_MAX + 1] = {
	[VDISK_LAYER_ATTR_FD]	  = { .type = NLA_U32 },
	[VDISK_LAYER_ATTR_PATH]	  = { .type = NLA_STRING, .maxlen = VDISK_PATH_MAX },
	[VDISK_LAYER_ATTR_FORMAT] = { .type = NLA_U32 },
};

/* The nested array of layer nests (types 1, 2, ...), nearest first. */
static int backing_from_attr(struct nlattr *chain, struct vdisk_info *d)
{
	struct nlattr *lt[VDISK_LAYER_ATTR_MAX + 1];
	struct nlattr *layer;
	unsigned int n = 0;
	int rem;

	nla_for_each_nested(layer, chain, rem)
		n++;
	if (!n)
		return 0;
	d->backing = calloc(n, sizeof(*d->backing));
	if (!d->backing)
		return -ENOMEM;
	nla_for_each_nested(layer, chain, rem) {
		struct vdisk_layer_info *l = &d->backing[d->nr_backing];

		if (nla_parse_nested(lt, VDISK_LAYER_ATTR_MAX, layer,
				     layer_policy) < 0)
			return -EBADMSG;
		d->nr_backing++;
		l->format = get_u32(lt[VDISK_LAYER_ATTR_FORMAT]);
		if (lt[VDISK_LAYER_ATTR_PATH]) {
			l->path = strdup(nla_get_string(lt[VDISK_LAYER_ATTR_PATH]));
			if (!l->path)
				return -ENOMEM;
		}
	}
	return 0;
}

void dev_info_free(struct vdisk_info *d)
{
	unsigned int i;

	for (i = 0; i < d->nr_backing; i++)
		free(d->backing[i].path);
	free(d->backing);
	free(d->snapshot);
	d->backing = NULL;
	d->nr_backing = 0;
	d->snapshot = NULL;
}

/*
 * Absent attributes read as zero, so newer or older kernels still list.
 * On success @d may own memory: dev_info_free() it.
 */
int dev_from_attrs(struct nlattr **tb, struct vdisk_info *d)
{
	int ret;

	memset(d, 0, sizeof(*d));
	if (!tb[VDISK_ATTR_INDEX] || !tb[VDISK_ATTR_DISK_NAME])
		return -EBADMSG;
	d->index = nla_get_u32(tb[VDISK_ATTR_INDEX]);
	snprintf(d->dev, sizeof(d->dev), "/dev/%s",
		 nla_get_string(tb[VDISK_ATTR_DISK_NAME]));
	if (tb[VDISK_ATTR_NAME])
		snprintf(d->label, sizeof(d->label), "%s",
			 nla_get_string(tb[VDISK_ATTR_NAME]));
	if (tb[VDISK_ATTR_PATH]) {
		snprintf(d->path, sizeof(d->path), "%s",
			 nla_get_string(tb[VDISK_ATTR_PATH]));
		d->has_path = true;
	}
	d->format = get_u32(tb[VDISK_ATTR_FORMAT]);
	d->flags = get_u32(tb[VDISK_ATTR_FLAGS]);
	d->cache = get_u32(tb[VDISK_ATTR_CACHE]);
	d->sector_size = get_u32(tb[VDISK_ATTR_SECTOR_SIZE]);
	d->major = get_u32(tb[VDISK_ATTR_MAJOR]);
	d->minor = get_u32(tb[VDISK_ATTR_MINOR]);
	d->openers = get_u32(tb[VDISK_ATTR_OPENERS]);
	d->has_openers = tb[VDISK_ATTR_OPENERS] != NULL;
	d->offset = get_u64(tb[VDISK_ATTR_OFFSET]);
	d->sizelimit = get_u64(tb[VDISK_ATTR_SIZELIMIT]);
	d->size = get_u64(tb[VDISK_ATTR_SIZE]);
	if (tb[VDISK_ATTR_CACHE_SIZE]) {
		d->cache_size = nla_get_u64(tb[VDISK_ATTR_CACHE_SIZE]);
		d->has_cache_size = true;
	}
	if (tb[VDISK_ATTR_SNAPSHOT]) {
		d->snapshot = strdup(nla_get_string(tb[VDISK_ATTR_SNAPSHOT]));
		if (!d->snapshot)
			return -ENOMEM;
	}
	if (tb[VDISK_ATTR_BACKING]) {
		ret = backing_from_attr(tb[VDISK_ATTR_BACKING], d);
		if (ret < 0) {
			dev_info_free(d);
			return ret;
		}
	}
	return 0;
}

static int got_one(struct nlattr **tb, uint8_t cmd, void *arg)
{
	(void)cmd;
	return dev_from_attrs(tb, arg);
}

int dev_get(struct vnl *nl, const struct vdisk_sel *sel, struct vdisk_info *d)
{
	struct nl_msg *msg = vnl_request(nl, VDISK_CMD_GET, 0);

	if (!msg || dev_put_selector(msg, sel) < 0) {
		nlmsg_free(msg);
		snprintf(nl->reason, sizeof(nl->reason), "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	return vnl_call(nl, msg, got_one, d);
}

/* A fresh slot at the end of @list, or NULL without memory. */
struct vdisk_info *dev_list_push(struct vdisk_list *list)
{
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 8;
		struct vdisk_info *v = realloc(list->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		list->v = v;
		list->cap = cap;
	}
	memset(&list->v[list->n], 0, sizeof(list->v[0]));
	return &list->v[list->n++];
}

static int add_one(struct nlattr **tb, uint8_t cmd, void *arg)
{
	struct vdisk_list *list = arg;
	struct vdisk_info *d = dev_list_push(list);
	int ret;

	(void)cmd;
	if (!d)
		return -ENOMEM;
	ret = dev_from_attrs(tb, d);
	if (ret < 0)
		list->n--;
	return ret;
}

int dev_dump(struct vnl *nl, struct vdisk_list *list)
{
	struct nl_msg *msg = vnl_request(nl, VDISK_CMD_GET, NLM_F_DUMP);

	if (!msg) {
		snprintf(nl->reason, sizeof(nl->reason), "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	return vnl_call(nl, msg, add_one, list);
}

void dev_list_free(struct vdisk_list *list)
{
	size_t i;

	for (i = 0; i < list->n; i++)
		dev_info_free(&list->v[i]);
	free(list->v);
	memset(list, 0, sizeof(*list));
}

/*
 * A device busy only because udev is probing it (after an unmount, its
 * watch rule re-reads the partition table) becomes free within moments.
 */
#define BUSY_RETRY_STEPS	30
#define BUSY_RETRY_NS		100000000L

/*
 * DEL the device @sel selects (@obj names it in errors), retrying for 3
 * seconds while it is busy if @retry_busy: 0 or -errno.
 */
int dev_del(struct vnl *nl, const char *obj, const struct vdisk_sel *sel,
	    bool lazy, bool retry_busy)
{
	const struct timespec step = { 0, BUSY_RETRY_NS };
	int i, err = 0;

	for (i = 0; i <= (retry_busy ? BUSY_RETRY_STEPS : 0); i++) {
		struct nl_msg *msg = vnl_request(nl, VDISK_CMD_DEL, 0);

		if (!msg || dev_put_selector(msg, sel) < 0 ||
		    (lazy && nla_put_u32(msg, VDISK_ATTR_DEL_FLAGS,
					 VDISK_DEL_LAZY) < 0)) {
			nlmsg_free(msg);
			errf(nl->cmd, obj, "%s", strerror(ENOMEM));
			return -ENOMEM;
		}
		err = vnl_call(nl, msg, NULL, NULL);
		if (err != -EBUSY || !retry_busy)
			break;
		nanosleep(&step, NULL);
	}
	if (err)
		vnl_perror(nl, obj);
	return err;
}
