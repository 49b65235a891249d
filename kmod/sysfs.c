// SPDX-License-Identifier: GPL-2.0
/*
 * Read-only attributes in /sys/block/vdiskN/vdisk/, for udev rules and
 * scripts.  They are removed by del_gendisk() before the device's backing
 * file is released, so a reader never sees a half-detached device.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/sysfs.h>

#include "vdisk.h"

static struct vdisk_device *vdisk_from_dev(struct device *dev)
{
	return dev_to_disk(dev)->private_data;
}

static const char *const vdisk_cache_names[] = {
	[VDISK_CACHE_DEFAULT]		= "default",
	[VDISK_CACHE_NONE]		= "none",
	[VDISK_CACHE_WRITEBACK]		= "writeback",
	[VDISK_CACHE_WRITETHROUGH]	= "writethrough",
};

const char *vdisk_cache_name(enum vdisk_cache cache)
{
	return cache < ARRAY_SIZE(vdisk_cache_names) ?
	       vdisk_cache_names[cache] : "unknown";
}

static ssize_t backing_file_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	struct vdisk_device *vd = vdisk_from_dev(dev);
	char *p;

	if (vd->image.path)
		return sysfs_emit(buf, "%s\n", vd->image.path);
	/* No display path given: the kernel's view of the file. */
	p = file_path(vd->image.file, buf, PAGE_SIZE - 1);
	if (IS_ERR(p))
		return PTR_ERR(p);
	return sysfs_emit(buf, "%s\n", p);
}

static ssize_t offset_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "%llu\n", vdisk_from_dev(dev)->image.offset);
}

static ssize_t sizelimit_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", vdisk_from_dev(dev)->image.sizelimit);
}

static ssize_t format_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "%s\n", vdisk_from_dev(dev)->image.ops->name);
}

static ssize_t read_only_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", vdisk_dev_read_only(vdisk_from_dev(dev)));
}

static ssize_t partscan_show(struct device *dev, struct device_attribute *attr,
			     char *buf)
{
	u32 flags = READ_ONCE(vdisk_from_dev(dev)->flags);

	return sysfs_emit(buf, "%d\n", !(flags & VDISK_FLAG_NO_PARTSCAN));
}

static ssize_t autoclear_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	u32 flags = READ_ONCE(vdisk_from_dev(dev)->flags);

	return sysfs_emit(buf, "%d\n", !!(flags & VDISK_FLAG_AUTOCLEAR));
}

static ssize_t cache_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%s\n",
			  vdisk_cache_name(READ_ONCE(vdisk_from_dev(dev)->cache)));
}

static ssize_t name_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	return sysfs_emit(buf, "%s\n", vdisk_from_dev(dev)->name);
}

static DEVICE_ATTR_RO(backing_file);
static DEVICE_ATTR_RO(offset);
static DEVICE_ATTR_RO(sizelimit);
static DEVICE_ATTR_RO(format);
static DEVICE_ATTR_RO(read_only);
static DEVICE_ATTR_RO(partscan);
static DEVICE_ATTR_RO(autoclear);
static DEVICE_ATTR_RO(cache);
static DEVICE_ATTR_RO(name);

static struct attribute *vdisk_attrs[] = {
	&dev_attr_backing_file.attr,
	&dev_attr_offset.attr,
	&dev_attr_sizelimit.attr,
	&dev_attr_format.attr,
	&dev_attr_read_only.attr,
	&dev_attr_partscan.attr,
	&dev_attr_autoclear.attr,
	&dev_attr_cache.attr,
	&dev_attr_name.attr,
	NULL,
};

static const struct attribute_group vdisk_attr_group = {
	.name	= "vdisk",
	.attrs	= vdisk_attrs,
};

const struct attribute_group *vdisk_disk_groups[] = {
	&vdisk_attr_group,
	NULL,
};
