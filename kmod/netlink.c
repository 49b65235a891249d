// SPDX-License-Identifier: GPL-2.0
/*
 * The "vdisk" generic netlink family: strict per-command policies, handlers
 * that turn attributes into calls on dev.c, replies, and events on the
 * multicast group.  Every rejection sets an extack message.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/ctype.h>
#include <linux/file.h>
#include <linux/log2.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <net/genetlink.h>

#include "compat.h"
#include "vdisk.h"

static struct genl_family vdisk_family;

/*
 * Largest device description: the backing nest's length is a u16, so the
 * paths in it must stay well below 64 KiB.  ADD refuses chains beyond it.
 */
#define VDISK_NL_DESC_MAX	(48 * 1024)

void vdisk_nl_err(struct netlink_ext_ack *extack, const char *fmt, ...)
{
	va_list args;
	char *buf;

	if (!extack)
		return;
	buf = vdisk_extack_buf(extack);
	va_start(args, fmt);
	vsnprintf(buf, VDISK_EXTACK_MSG_LEN, fmt, args);
	va_end(args);
	buf[VDISK_EXTACK_MSG_LEN - 1] = '\0';
	extack->_msg = buf;
}

/* Report a message against attribute @type of the request. */
static __printf(3, 4)
void vdisk_nl_attr_err(struct genl_info *info, int type, const char *fmt, ...)
{
	va_list args;
	char *buf;

	if (!info->extack)
		return;
	buf = vdisk_extack_buf(info->extack);
	va_start(args, fmt);
	vsnprintf(buf, VDISK_EXTACK_MSG_LEN, fmt, args);
	va_end(args);
	buf[VDISK_EXTACK_MSG_LEN - 1] = '\0';
	info->extack->_msg = buf;
	info->extack->bad_attr = info->attrs[type];
}

/*
 * Flag words and enums are checked here rather than with NLA_POLICY_MASK
 * and NLA_POLICY_MAX, whose generic messages ("reserved bit set") do not
 * say which attribute is at fault.  The policies still check types.
 */
static int vdisk_nl_get_flags(struct genl_info *info, int type, u32 valid,
			      const char *what, u32 *out)
{
	u32 v;

	*out = 0;
	if (!info->attrs[type])
		return 0;
	v = nla_get_u32(info->attrs[type]);
	if (v & ~valid) {
		vdisk_nl_attr_err(info, type, "%s has unknown bits 0x%x", what,
				  v & ~valid);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int vdisk_nl_get_enum(struct genl_info *info, int type, u32 max,
			     const char *what, u32 *out)
{
	u32 v;

	if (!info->attrs[type])
		return 0;
	v = nla_get_u32(info->attrs[type]);
	if (v > max) {
		vdisk_nl_attr_err(info, type, "%s %u is unknown (at most %u)",
				  what, v, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Policies                                                               */

static const struct nla_policy vdisk_layer_policy[VDISK_LAYER_ATTR_MAX + 1] = {
	[VDISK_LAYER_ATTR_FD]		= { .type = NLA_U32 },
	[VDISK_LAYER_ATTR_PATH]		= { .type = NLA_NUL_STRING,
					    .len = VDISK_PATH_MAX - 1 },
	[VDISK_LAYER_ATTR_FORMAT]	= { .type = NLA_U32 },
};

static const struct nla_policy vdisk_add_policy[VDISK_ATTR_MAX + 1] = {
	[VDISK_ATTR_INDEX]		= { .type = NLA_U32 },
	[VDISK_ATTR_NAME]		= { .type = NLA_NUL_STRING,
					    .len = VDISK_NAME_MAX - 1 },
	[VDISK_ATTR_FD]			= { .type = NLA_U32 },
	[VDISK_ATTR_PATH]		= { .type = NLA_NUL_STRING,
					    .len = VDISK_PATH_MAX - 1 },
	[VDISK_ATTR_FORMAT]		= { .type = NLA_U32 },
	[VDISK_ATTR_OFFSET]		= { .type = NLA_U64 },
	[VDISK_ATTR_SIZELIMIT]		= { .type = NLA_U64 },
	[VDISK_ATTR_FLAGS]		= { .type = NLA_U32 },
	[VDISK_ATTR_CACHE]		= { .type = NLA_U32 },
	[VDISK_ATTR_SECTOR_SIZE]	= { .type = NLA_U32 },
	[VDISK_ATTR_BACKING]		= NLA_POLICY_NESTED_ARRAY(vdisk_layer_policy),
	[VDISK_ATTR_SNAPSHOT]		= { .type = NLA_NUL_STRING, .len = 1023 },
	[VDISK_ATTR_CACHE_SIZE]		= { .type = NLA_U64 },
};

static const struct nla_policy vdisk_del_policy[VDISK_ATTR_MAX + 1] = {
	[VDISK_ATTR_INDEX]		= { .type = NLA_U32 },
	[VDISK_ATTR_NAME]		= { .type = NLA_NUL_STRING,
					    .len = VDISK_NAME_MAX - 1 },
	[VDISK_ATTR_DEL_FLAGS]		= { .type = NLA_U32 },
};

static const struct nla_policy vdisk_get_policy[VDISK_ATTR_MAX + 1] = {
	[VDISK_ATTR_INDEX]		= { .type = NLA_U32 },
	[VDISK_ATTR_NAME]		= { .type = NLA_NUL_STRING,
					    .len = VDISK_NAME_MAX - 1 },
};

static const struct nla_policy vdisk_set_policy[VDISK_ATTR_MAX + 1] = {
	[VDISK_ATTR_INDEX]		= { .type = NLA_U32 },
	[VDISK_ATTR_NAME]		= { .type = NLA_NUL_STRING,
					    .len = VDISK_NAME_MAX - 1 },
	[VDISK_ATTR_SET_FLAGS]		= { .type = NLA_U32 },
	[VDISK_ATTR_CACHE]		= { .type = NLA_U32 },
	[VDISK_ATTR_SIZE]		= { .type = NLA_U64 },
};

/* ---------------------------------------------------------------------- */
/* Device descriptions                                                    */

static size_t vdisk_nl_str_size(const char *str)
{
	return str ? nla_total_size(strlen(str) + 1) : 0;
}

/*
 * Attribute bytes of a device description, apart from its strings: the
 * u32s, the u64s, the disk name and one backing nest with @layers layers.
 */
static size_t vdisk_nl_fixed_size(unsigned int layers)
{
	return 10 * nla_total_size(sizeof(u32)) +
	       5 * nla_total_size_64bit(sizeof(u64)) +
	       nla_total_size(VDISK_DISK_NAME_MAX) +
	       nla_total_size(0) +
	       layers * (nla_total_size(0) + nla_total_size(sizeof(u32)));
}

/* Payload bytes vdisk_nl_fill() needs for @vd (attributes only). */
static size_t vdisk_nl_desc_size(struct vdisk_device *vd)
{
	struct vdisk_image *img = &vd->image;
	unsigned int layers = 0;
	size_t size = 0;
	struct vdisk_image *b;

	for (b = img->backing; b; b = b->backing) {
		size += vdisk_nl_str_size(b->path);
		layers++;
	}
	return size + vdisk_nl_fixed_size(layers) +
	       vdisk_nl_str_size(vd->name[0] ? vd->name : NULL) +
	       vdisk_nl_str_size(img->path) +
	       vdisk_nl_str_size(img->snapshot);
}

/* The same, before the device exists: the strings all come from @cfg. */
static size_t vdisk_nl_cfg_size(const struct vdisk_config *cfg)
{
	size_t size = vdisk_nl_fixed_size(cfg->nr_backing) +
		      vdisk_nl_str_size(cfg->name[0] ? cfg->name : NULL) +
		      vdisk_nl_str_size(cfg->path) +
		      vdisk_nl_str_size(cfg->snapshot);
	unsigned int i;

	for (i = 0; i < cfg->nr_backing; i++)
		size += vdisk_nl_str_size(cfg->backing[i].path);
	return size;
}

/* The backing chain below @img as a nested array of layer nests. */
static int vdisk_nl_put_chain(struct sk_buff *skb, struct vdisk_image *img)
{
	struct nlattr *chain, *layer;
	struct vdisk_image *b;
	int i = 0;

	if (!img->backing)
		return 0;
	chain = nla_nest_start(skb, VDISK_ATTR_BACKING);
	if (!chain)
		return -EMSGSIZE;
	for (b = img->backing; b; b = b->backing) {
		layer = nla_nest_start(skb, ++i);
		if (!layer ||
		    (b->path && nla_put_string(skb, VDISK_LAYER_ATTR_PATH,
					       b->path)) ||
		    nla_put_u32(skb, VDISK_LAYER_ATTR_FORMAT, b->ops->format))
			return -EMSGSIZE;	/* the caller cancels the message */
		nla_nest_end(skb, layer);
	}
	nla_nest_end(skb, chain);
	return 0;
}

static int vdisk_nl_fill(struct sk_buff *skb, struct vdisk_device *vd,
			 u32 portid, u32 seq, int flags, u8 cmd)
{
	struct vdisk_image *img = &vd->image;
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &vdisk_family, flags, cmd);
	if (!hdr)
		return -EMSGSIZE;

	if (nla_put_u32(skb, VDISK_ATTR_INDEX, vd->index) ||
	    nla_put_string(skb, VDISK_ATTR_DISK_NAME, vd->disk->disk_name) ||
	    (vd->name[0] && nla_put_string(skb, VDISK_ATTR_NAME, vd->name)))
		goto cancel;
	if (cmd == VDISK_CMD_EVENT_DETACH)
		goto done;

	if ((img->path && nla_put_string(skb, VDISK_ATTR_PATH, img->path)) ||
	    nla_put_u32(skb, VDISK_ATTR_FORMAT, img->ops->format) ||
	    nla_put_u64_64bit(skb, VDISK_ATTR_OFFSET, img->offset,
			      VDISK_ATTR_PAD) ||
	    nla_put_u64_64bit(skb, VDISK_ATTR_SIZELIMIT, img->sizelimit,
			      VDISK_ATTR_PAD) ||
	    nla_put_u64_64bit(skb, VDISK_ATTR_SIZE, vdisk_dev_size(vd),
			      VDISK_ATTR_PAD) ||
	    nla_put_u32(skb, VDISK_ATTR_FLAGS, READ_ONCE(vd->flags)) ||
	    nla_put_u32(skb, VDISK_ATTR_CACHE, READ_ONCE(vd->cache)) ||
	    nla_put_u32(skb, VDISK_ATTR_SECTOR_SIZE, vd->sector_size) ||
	    nla_put_u32(skb, VDISK_ATTR_MAJOR, vd->disk->major) ||
	    nla_put_u32(skb, VDISK_ATTR_MINOR, vd->disk->first_minor) ||
	    /*
	     * Not in ADD replies or ATTACH events: on 6.12 the partition
	     * scan's close is deferred until ADD returns to user space, so
	     * the count would be one too high there.
	     */
	    (cmd != VDISK_CMD_ADD && cmd != VDISK_CMD_EVENT_ATTACH &&
	     nla_put_u32(skb, VDISK_ATTR_OPENERS, vdisk_dev_openers(vd))) ||
	    (img->snapshot &&
	     nla_put_string(skb, VDISK_ATTR_SNAPSHOT, img->snapshot)) ||
	    (img->cache_size &&
	     nla_put_u64_64bit(skb, VDISK_ATTR_CACHE_SIZE, img->cache_size,
			       VDISK_ATTR_PAD)) ||
	    vdisk_nl_put_chain(skb, img))
		goto cancel;
done:
	genlmsg_end(skb, hdr);
	return 0;
cancel:
	genlmsg_cancel(skb, hdr);
	return -EMSGSIZE;
}

/* Multicast @cmd about @vd; listeners are optional, so failures are not. */
/*
 * Cleared at module exit before the family is unregistered: the devices
 * detached after that (and an autoclear still queued) must not send
 * events to its group ids, which are then free for another family to
 * take.  Under vdisk_devices_lock, which every notifier holds.
 */
static bool vdisk_nl_events = true;

void vdisk_nl_notify(struct vdisk_device *vd, u8 cmd)
{
	struct sk_buff *skb;

	lockdep_assert_held(&vdisk_devices_lock);
	if (!vdisk_nl_events)
		return;
	skb = genlmsg_new(vdisk_nl_desc_size(vd), GFP_KERNEL);
	if (!skb)
		return;
	if (WARN_ON_ONCE(vdisk_nl_fill(skb, vd, 0, 0, 0, cmd))) {
		nlmsg_free(skb);
		return;
	}
	genlmsg_multicast(&vdisk_family, skb, 0, 0, GFP_KERNEL);
}

/* The same, from a SET, which holds a pin but not vdisk_devices_lock. */
static void vdisk_nl_notify_unlocked(struct vdisk_device *vd, u8 cmd)
{
	mutex_lock(&vdisk_devices_lock);
	vdisk_nl_notify(vd, cmd);
	mutex_unlock(&vdisk_devices_lock);
}

static int vdisk_nl_reply(struct vdisk_device *vd, struct genl_info *info)
{
	struct sk_buff *skb;
	int ret;

	skb = genlmsg_new(vdisk_nl_desc_size(vd), GFP_KERNEL);
	if (!skb)
		return -ENOMEM;
	ret = vdisk_nl_fill(skb, vd, info->snd_portid, info->snd_seq, 0,
			    info->genlhdr->cmd);
	if (ret) {
		nlmsg_free(skb);
		return ret;
	}
	return genlmsg_reply(skb, info);
}

/* ---------------------------------------------------------------------- */
/* Request helpers                                                        */

/*
 * The netlink core checks CAP_NET_ADMIN for GENL_ADMIN_PERM; attaching
 * files as block devices is a storage administration act, so vdisk asks
 * for CAP_SYS_ADMIN in the initial user namespace, as nbd does.
 */
static int vdisk_nl_check_admin(struct sk_buff *skb, struct genl_info *info)
{
	if (netlink_capable(skb, CAP_SYS_ADMIN))
		return 0;
	/* A constant: no slot of 6.1's message ring for a flood of these. */
	NL_SET_ERR_MSG(info->extack, "operation needs CAP_SYS_ADMIN");
	return -EPERM;
}

/* The device INDEX or NAME selects, or NULL.  Caller holds the lock. */
static struct vdisk_device *vdisk_nl_find(struct genl_info *info)
{
	if (info->attrs[VDISK_ATTR_INDEX]) {
		u32 index = nla_get_u32(info->attrs[VDISK_ATTR_INDEX]);

		return index <= INT_MAX ? vdisk_dev_find(index, NULL) : NULL;
	}
	if (info->attrs[VDISK_ATTR_NAME])
		return vdisk_dev_find(-1, nla_data(info->attrs[VDISK_ATTR_NAME]));
	return NULL;
}

/* vdisk_nl_find(), saying why there is none.  Caller holds the lock. */
static struct vdisk_device *vdisk_nl_lookup(struct genl_info *info)
{
	struct vdisk_device *vd = vdisk_nl_find(info);

	if (vd)
		return vd;
	if (info->attrs[VDISK_ATTR_INDEX]) {
		vdisk_nl_attr_err(info, VDISK_ATTR_INDEX,
				  VDISK_DISK_PREFIX "%u is not attached",
				  nla_get_u32(info->attrs[VDISK_ATTR_INDEX]));
	} else if (info->attrs[VDISK_ATTR_NAME]) {
		vdisk_nl_attr_err(info, VDISK_ATTR_NAME,
				  "no device is named \"%s\"",
				  (const char *)nla_data(info->attrs[VDISK_ATTR_NAME]));
	} else {
		NL_SET_ERR_MSG(info->extack,
			       "INDEX or NAME must select a device");
		return ERR_PTR(-EINVAL);
	}
	return ERR_PTR(-ENODEV);
}

/*
 * Names become udev symlinks: keep them to a safe, printable set.  A name
 * like "vdisk3" would be ambiguous with the device it does not name.
 */
static bool vdisk_name_valid(const char *name)
{
	size_t plen = strlen(VDISK_DISK_PREFIX);
	const char *p;

	if (!name[0] || name[0] == '.' || name[0] == '-')
		return false;
	if (!strncmp(name, VDISK_DISK_PREFIX, plen) && name[plen] &&
	    strspn(name + plen, "0123456789") == strlen(name + plen))
		return false;
	for (p = name; *p; p++)
		/* isalnum() takes Latin-1 letters too. */
		if (!(isascii(*p) && isalnum(*p)) && !strchr("._-:", *p))
			return false;
	return true;
}

/* ---------------------------------------------------------------------- */
/* Commands                                                               */

static int vdisk_nl_parse_add(struct genl_info *info, struct vdisk_config *cfg)
{
	struct nlattr **tb = info->attrs;

	cfg->index = -1;
	cfg->sector_size = SECTOR_SIZE;
	cfg->format = VDISK_FORMAT_AUTO;
	cfg->cache = VDISK_CACHE_DEFAULT;

	if (GENL_REQ_ATTR_CHECK(info, VDISK_ATTR_FD)) {
		NL_SET_ERR_MSG(info->extack, "FD (the image descriptor) is required");
		return -EINVAL;
	}
	if (tb[VDISK_ATTR_INDEX]) {
		u32 index = nla_get_u32(tb[VDISK_ATTR_INDEX]);

		if (index >= vdisk_max_devices) {
			vdisk_nl_attr_err(info, VDISK_ATTR_INDEX,
					  "index %u is not below max_devices (%u)",
					  index, vdisk_max_devices);
			return -EINVAL;
		}
		cfg->index = index;
	}
	if (tb[VDISK_ATTR_NAME]) {
		nla_strscpy(cfg->name, tb[VDISK_ATTR_NAME], sizeof(cfg->name));
		if (!vdisk_name_valid(cfg->name)) {
			vdisk_nl_attr_err(info, VDISK_ATTR_NAME,
					  "name: letters, digits and ._-: only, not leading . or -, not vdiskN");
			return -EINVAL;
		}
	}
	if (tb[VDISK_ATTR_PATH])
		cfg->path = nla_data(tb[VDISK_ATTR_PATH]);
	if (vdisk_nl_get_enum(info, VDISK_ATTR_FORMAT, VDISK_FORMAT_MAX,
			      "FORMAT", &cfg->format) ||
	    vdisk_nl_get_enum(info, VDISK_ATTR_CACHE, VDISK_CACHE_MAX,
			      "CACHE", &cfg->cache) ||
	    vdisk_nl_get_flags(info, VDISK_ATTR_FLAGS, VDISK_FLAGS_ALL,
			       "FLAGS", &cfg->flags))
		return -EINVAL;
	if (tb[VDISK_ATTR_OFFSET])
		cfg->offset = nla_get_u64(tb[VDISK_ATTR_OFFSET]);
	if (tb[VDISK_ATTR_SIZELIMIT])
		cfg->sizelimit = nla_get_u64(tb[VDISK_ATTR_SIZELIMIT]);
	if (tb[VDISK_ATTR_SECTOR_SIZE]) {
		u32 ss = nla_get_u32(tb[VDISK_ATTR_SECTOR_SIZE]);

		if (ss < 512 || ss > 4096 || !is_power_of_2(ss)) {
			vdisk_nl_attr_err(info, VDISK_ATTR_SECTOR_SIZE,
					  "sector size %u is not 512, 1024, 2048 or 4096",
					  ss);
			return -EINVAL;
		}
		cfg->sector_size = ss;
	}
	if (cfg->offset > LLONG_MAX || cfg->sizelimit > LLONG_MAX) {
		vdisk_nl_attr_err(info, cfg->offset > LLONG_MAX ?
				  VDISK_ATTR_OFFSET : VDISK_ATTR_SIZELIMIT,
				  "offset and sizelimit must be below 2^63");
		return -EINVAL;
	}
	if (tb[VDISK_ATTR_SNAPSHOT])
		cfg->snapshot = nla_data(tb[VDISK_ATTR_SNAPSHOT]);
	if (tb[VDISK_ATTR_CACHE_SIZE])
		cfg->cache_size = nla_get_u64(tb[VDISK_ATTR_CACHE_SIZE]);
	return 0;
}

static void vdisk_nl_put_backing(struct vdisk_config *cfg)
{
	while (cfg->nr_backing)
		fput(cfg->backing[--cfg->nr_backing].file);
}

/*
 * Take references on the backing layers' descriptors, in the caller's
 * context like the top image's.  The policy has already checked each
 * layer's attributes.
 */
static int vdisk_nl_get_backing(struct genl_info *info,
				struct vdisk_config *cfg)
{
	struct nlattr *lt[VDISK_LAYER_ATTR_MAX + 1];
	struct nlattr *layer;
	int rem, ret;

	if (!info->attrs[VDISK_ATTR_BACKING])
		return 0;
	nla_for_each_nested(layer, info->attrs[VDISK_ATTR_BACKING], rem) {
		struct vdisk_layer_config *lc;

		if (cfg->nr_backing == VDISK_BACKING_MAX) {
			vdisk_nl_attr_err(info, VDISK_ATTR_BACKING,
					  "backing chain is deeper than %d layers",
					  VDISK_BACKING_MAX);
			ret = -ELOOP;
			goto out_put;
		}
		ret = nla_parse_nested(lt, VDISK_LAYER_ATTR_MAX, layer,
				       vdisk_layer_policy, info->extack);
		if (ret)
			goto out_put;
		if (!lt[VDISK_LAYER_ATTR_FD]) {
			vdisk_nl_attr_err(info, VDISK_ATTR_BACKING,
					  "backing layer %u has no FD",
					  cfg->nr_backing + 1);
			ret = -EINVAL;
			goto out_put;
		}
		lc = &cfg->backing[cfg->nr_backing];
		lc->file = fget(nla_get_u32(lt[VDISK_LAYER_ATTR_FD]));
		if (!lc->file) {
			vdisk_nl_attr_err(info, VDISK_ATTR_BACKING,
					  "backing layer %u FD is not an open descriptor",
					  cfg->nr_backing + 1);
			ret = -EBADF;
			goto out_put;
		}
		lc->path = lt[VDISK_LAYER_ATTR_PATH] ?
			   nla_data(lt[VDISK_LAYER_ATTR_PATH]) : NULL;
		lc->format = lt[VDISK_LAYER_ATTR_FORMAT] ?
			     nla_get_u32(lt[VDISK_LAYER_ATTR_FORMAT]) :
			     VDISK_FORMAT_AUTO;
		if (lc->format > VDISK_FORMAT_MAX) {
			vdisk_nl_attr_err(info, VDISK_ATTR_BACKING,
					  "backing layer %u FORMAT %u is unknown",
					  cfg->nr_backing + 1, lc->format);
			ret = -EINVAL;
			fput(lc->file);
			goto out_put;
		}
		cfg->nr_backing++;
	}
	if (vdisk_nl_cfg_size(cfg) > VDISK_NL_DESC_MAX) {
		vdisk_nl_attr_err(info, VDISK_ATTR_BACKING,
				  "backing paths total over %u bytes; use shorter paths",
				  VDISK_NL_DESC_MAX - 1024);
		ret = -ENAMETOOLONG;
		goto out_put;
	}
	return 0;

out_put:
	vdisk_nl_put_backing(cfg);
	return ret;
}

static int vdisk_nl_add(struct sk_buff *skb, struct genl_info *info)
{
	struct vdisk_config cfg = { };
	struct vdisk_device *vd;
	struct sk_buff *reply;
	int ret;

	ret = vdisk_nl_check_admin(skb, info);
	if (ret)
		return ret;
	ret = vdisk_nl_parse_add(info, &cfg);
	if (ret)
		return ret;

	/* The caller's descriptor, resolved in the caller's context. */
	cfg.file = fget(nla_get_u32(info->attrs[VDISK_ATTR_FD]));
	if (!cfg.file) {
		vdisk_nl_attr_err(info, VDISK_ATTR_FD,
				  "FD is not an open file descriptor");
		return -EBADF;
	}

	ret = vdisk_nl_get_backing(info, &cfg);
	if (ret)
		goto out_fput;

	/* Sized and allocated before the device exists: no reply can fail. */
	reply = genlmsg_new(vdisk_nl_cfg_size(&cfg), GFP_KERNEL);
	if (!reply) {
		ret = -ENOMEM;
		goto out_put_backing;
	}

	/* Opening the image and scanning it wait on its disk: unlocked. */
	ret = vdisk_dev_add(&cfg, &vd, info->extack);
	if (!ret) {
		mutex_lock(&vdisk_devices_lock);
		vdisk_dev_bind(vd);
		WARN_ON_ONCE(vdisk_nl_fill(reply, vd, info->snd_portid,
					   info->snd_seq, 0, VDISK_CMD_ADD));
		vdisk_nl_notify(vd, VDISK_CMD_EVENT_ATTACH);
		mutex_unlock(&vdisk_devices_lock);
	}

	if (ret)
		nlmsg_free(reply);
	else
		ret = genlmsg_reply(reply, info);
out_put_backing:
	vdisk_nl_put_backing(&cfg);
out_fput:
	fput(cfg.file);
	return ret;
}

/*
 * The device @info names, pinned and with its own lock held, for a SET or
 * a DEL; vdisk_devices_lock is not held on return.  The wait for another
 * command on the device (one that may wait on its disk) is killable.
 */
static struct vdisk_device *vdisk_nl_lock_device(struct genl_info *info)
{
	struct vdisk_device *vd;

	mutex_lock(&vdisk_devices_lock);
	vd = vdisk_nl_lookup(info);
	if (!IS_ERR(vd))
		vdisk_dev_pin(vd);
	mutex_unlock(&vdisk_devices_lock);
	if (IS_ERR(vd))
		return vd;
	if (mutex_lock_killable(&vd->lock)) {
		vdisk_dev_unpin(vd);
		return ERR_PTR(-EINTR);
	}
	return vd;
}

static void vdisk_nl_unlock_device(struct vdisk_device *vd)
{
	mutex_unlock(&vd->lock);
	vdisk_dev_unpin(vd);
}

static int vdisk_nl_del(struct sk_buff *skb, struct genl_info *info)
{
	struct vdisk_device *vd;
	bool remove = false;
	u32 flags = 0;
	int ret;

	ret = vdisk_nl_check_admin(skb, info);
	if (ret)
		return ret;
	ret = vdisk_nl_get_flags(info, VDISK_ATTR_DEL_FLAGS, VDISK_DEL_FLAGS_ALL,
				 "DEL_FLAGS", &flags);
	if (ret)
		return ret;

	/*
	 * A SET in progress on the device goes first, as if queued before:
	 * the device's lock queues its waiters (its handoff bounds how far
	 * a newcomer can get ahead), so SETs cannot starve a DEL.
	 */
	vd = vdisk_nl_lock_device(info);
	if (IS_ERR(vd))
		return PTR_ERR(vd);
	ret = vdisk_dev_del(vd, flags & VDISK_DEL_LAZY, &remove, info->extack);
	vdisk_nl_unlock_device(vd);
	/* Writing back and closing the image wait on its disk: unlocked. */
	if (remove)
		vdisk_dev_remove(vd);
	return ret;
}

static int vdisk_nl_get(struct sk_buff *skb, struct genl_info *info)
{
	struct vdisk_device *vd;
	int ret;

	mutex_lock(&vdisk_devices_lock);
	vd = vdisk_nl_lookup(info);
	ret = IS_ERR(vd) ? PTR_ERR(vd) : vdisk_nl_reply(vd, info);
	mutex_unlock(&vdisk_devices_lock);
	return ret;
}

struct vdisk_dump_ctx {
	struct sk_buff *skb;
	struct netlink_callback *cb;
};

static int vdisk_nl_dump_one(struct vdisk_device *vd, void *arg)
{
	struct vdisk_dump_ctx *ctx = arg;

	return vdisk_nl_fill(ctx->skb, vd,
			     NETLINK_CB(ctx->cb->skb).portid,
			     ctx->cb->nlh->nlmsg_seq, NLM_F_MULTI,
			     VDISK_CMD_GET);
}

static int vdisk_nl_dump_size(struct vdisk_device *vd, void *arg)
{
	size_t *max = arg;

	*max = max(*max, vdisk_nl_desc_size(vd));
	return 0;
}

/*
 * A dump skb must hold the largest description, which long chain paths
 * can make bigger than the default allocation.
 */
static int vdisk_nl_dump_start(struct netlink_callback *cb)
{
	size_t max = 0;
	int pos = 0;

	mutex_lock(&vdisk_devices_lock);
	vdisk_dev_for_each(vdisk_nl_dump_size, &max, &pos);
	mutex_unlock(&vdisk_devices_lock);
	cb->min_dump_alloc = nlmsg_total_size(genlmsg_total_size(max));
	return 0;
}

static int vdisk_nl_dump(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct vdisk_dump_ctx ctx = { .skb = skb, .cb = cb };
	int pos = cb->args[0];
	int ret;

	mutex_lock(&vdisk_devices_lock);
	ret = vdisk_dev_for_each(vdisk_nl_dump_one, &ctx, &pos);
	mutex_unlock(&vdisk_devices_lock);
	cb->args[0] = pos;
	/* A full skb ends this part; the dump resumes at @pos. */
	if (ret == -EMSGSIZE && skb->len)
		return skb->len;
	return ret ? ret : skb->len;
}

static int vdisk_nl_set(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **tb = info->attrs;
	u32 cache = VDISK_CACHE_DEFAULT;
	struct vdisk_device *vd;
	bool changed = false;
	u32 flags = 0;
	sector_t size;
	int ret;

	ret = vdisk_nl_check_admin(skb, info);
	if (ret)
		return ret;
	ret = vdisk_nl_get_flags(info, VDISK_ATTR_SET_FLAGS, VDISK_SET_FLAGS_ALL,
				 "SET_FLAGS", &flags);
	if (!ret)
		ret = vdisk_nl_get_enum(info, VDISK_ATTR_CACHE, VDISK_CACHE_MAX,
					"CACHE", &cache);
	if (ret)
		return ret;
	if ((flags & VDISK_SET_READ_ONLY) && (flags & VDISK_SET_READ_WRITE)) {
		vdisk_nl_attr_err(info, VDISK_ATTR_SET_FLAGS,
				  "READ_ONLY and READ_WRITE exclude each other");
		return -EINVAL;
	}
	if ((flags & VDISK_SET_AUTOCLEAR) && (flags & VDISK_SET_NO_AUTOCLEAR)) {
		vdisk_nl_attr_err(info, VDISK_ATTR_SET_FLAGS,
				  "AUTOCLEAR and NO_AUTOCLEAR exclude each other");
		return -EINVAL;
	}
	if (!flags && !tb[VDISK_ATTR_CACHE] && !tb[VDISK_ATTR_SIZE]) {
		NL_SET_ERR_MSG(info->extack, "nothing to change");
		return -EINVAL;
	}
	/*
	 * The changes wait on the disk (fsync, the format's metadata): they
	 * run without vdisk_devices_lock, the device pinned and its own lock
	 * held.
	 */
	vd = vdisk_nl_lock_device(info);
	if (IS_ERR(vd))
		return PTR_ERR(vd);
	/* Its last close (autoclear) came while this SET waited. */
	if (READ_ONCE(vd->state) != VDISK_STATE_BOUND) {
		vdisk_nl_err(info->extack, "%s is not attached (being detached)",
			     vd->disk->disk_name);
		ret = -ENODEV;
		goto out_unlock;
	}
	/* RESIZE events say the capacity changed, as the uevent does. */
	size = get_capacity(vd->disk);
	if (tb[VDISK_ATTR_SIZE]) {
		ret = vdisk_dev_resize(vd, nla_get_u64(tb[VDISK_ATTR_SIZE]),
				       info->extack);
		if (ret) {
			info->extack->bad_attr = tb[VDISK_ATTR_SIZE];
			goto out_unlock;
		}
	}
	if (flags & VDISK_SET_REFRESH_SIZE)
		ret = vdisk_dev_refresh_size(vd, info->extack);
	if (get_capacity(vd->disk) != size)
		vdisk_nl_notify_unlocked(vd, VDISK_CMD_EVENT_RESIZE);
	if (ret)
		goto out_unlock;
	if (flags & (VDISK_SET_READ_ONLY | VDISK_SET_READ_WRITE)) {
		ret = vdisk_dev_set_read_only(vd, flags & VDISK_SET_READ_ONLY,
					      info->extack);
		if (ret)
			goto out_notify;
		changed = true;
	}
	if (flags & (VDISK_SET_AUTOCLEAR | VDISK_SET_NO_AUTOCLEAR)) {
		vdisk_dev_set_autoclear(vd, flags & VDISK_SET_AUTOCLEAR);
		changed = true;
	}
	if (tb[VDISK_ATTR_CACHE]) {
		ret = vdisk_dev_set_cache(vd, cache, info->extack);
		if (ret)
			goto out_notify;
		changed = true;
	}
	ret = vdisk_nl_reply(vd, info);
out_notify:
	if (changed)
		vdisk_nl_notify_unlocked(vd, VDISK_CMD_EVENT_CHANGE);
out_unlock:
	vdisk_nl_unlock_device(vd);
	return ret;
}

/* ---------------------------------------------------------------------- */

static const struct genl_ops vdisk_genl_ops[] = {
	{
		.cmd		= VDISK_CMD_ADD,
		.doit		= vdisk_nl_add,
		.policy		= vdisk_add_policy,
		.maxattr	= VDISK_ATTR_MAX,
	},
	{
		.cmd		= VDISK_CMD_DEL,
		.doit		= vdisk_nl_del,
		.policy		= vdisk_del_policy,
		.maxattr	= VDISK_ATTR_MAX,
	},
	{
		.cmd		= VDISK_CMD_GET,
		.doit		= vdisk_nl_get,
		.start		= vdisk_nl_dump_start,
		.dumpit		= vdisk_nl_dump,
		.policy		= vdisk_get_policy,
		.maxattr	= VDISK_ATTR_MAX,
	},
	{
		.cmd		= VDISK_CMD_SET,
		.doit		= vdisk_nl_set,
		.policy		= vdisk_set_policy,
		.maxattr	= VDISK_ATTR_MAX,
	},
};

static const struct genl_multicast_group vdisk_mcgrps[] = {
	{ .name = VDISK_GENL_MCGRP_EVENTS },
};

static struct genl_family vdisk_family __ro_after_init = {
	.name		= VDISK_GENL_NAME,
	.version	= VDISK_GENL_VERSION,
	.maxattr	= VDISK_ATTR_MAX,
	.module		= THIS_MODULE,
	.ops		= vdisk_genl_ops,
	.n_ops		= ARRAY_SIZE(vdisk_genl_ops),
	.mcgrps		= vdisk_mcgrps,
	.n_mcgrps	= ARRAY_SIZE(vdisk_mcgrps),
	/*
	 * Without it every handler runs under the genetlink mutex, which
	 * every family without parallel_ops shares (nlctrl, taskstats, ...):
	 * a SET or DEL whose fsync waits on a slow disk would hold up all of
	 * them.  The handlers serialize on vdisk_devices_lock and on each
	 * device's own lock instead, and never wait on an image's disk under
	 * the first (see vdisk_dev_add() and vdisk_nl_lock_device()).  Every
	 * handler still holds genetlink's cb_lock for
	 * reading, so a family (un)registering meanwhile, and the requests
	 * queued behind it, wait for such a SET: rare, and not ours to fix.
	 */
	.parallel_ops	= true,
	/* resv_start_op 0: strict validation for every command. */
};

int vdisk_nl_init(void)
{
	return genl_register_family(&vdisk_family);
}

void vdisk_nl_exit(void)
{
	mutex_lock(&vdisk_devices_lock);
	vdisk_nl_events = false;
	mutex_unlock(&vdisk_devices_lock);
	genl_unregister_family(&vdisk_family);
}
