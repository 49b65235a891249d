// SPDX-License-Identifier: GPL-2.0
/* The table of image formats the module knows. */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include "../vdisk.h"

static const struct vdisk_format_ops *const vdisk_formats[] = {
	[VDISK_FORMAT_RAW]	= &vdisk_raw_ops,
};

static const char *const vdisk_format_names[] = {
	[VDISK_FORMAT_AUTO]	= "auto",
	[VDISK_FORMAT_RAW]	= "raw",
	[VDISK_FORMAT_QCOW2]	= "qcow2",
};

const struct vdisk_format_ops *vdisk_format_get(enum vdisk_format format)
{
	if (format >= ARRAY_SIZE(vdisk_formats))
		return NULL;
	return vdisk_formats[format];
}

/* The qcow2 magic, "QFI\xfb", recognised even where qcow2 is not built. */
static const u8 vdisk_qcow2_magic[] = { 'Q', 'F', 'I', 0xfb };

/*
 * Pick the format of the image at @offset of @file: the first format whose
 * magic matches, else raw.  An image that looks like a format this module
 * cannot handle is refused rather than exposed raw, where its contents
 * would look like garbage.
 */
const struct vdisk_format_ops *vdisk_format_probe(struct file *file,
						  u64 offset,
						  struct netlink_ext_ack *extack)
{
	loff_t pos = offset;
	u8 head[16] = { };
	ssize_t n;
	int i;

	n = kernel_read(file, head, sizeof(head), &pos);
	if (n < 0) {
		vdisk_nl_err(extack, "cannot read the image to probe its format (%zd)",
			     n);
		return ERR_PTR(n);
	}
	for (i = 0; i < ARRAY_SIZE(vdisk_formats); i++) {
		const struct vdisk_format_ops *ops = vdisk_formats[i];

		if (ops && ops->magic_len && n >= ops->magic_len &&
		    !memcmp(head, ops->magic, ops->magic_len))
			return ops;
	}
	if (n >= sizeof(vdisk_qcow2_magic) &&
	    !memcmp(head, vdisk_qcow2_magic, sizeof(vdisk_qcow2_magic))) {
		vdisk_nl_err(extack, "image is qcow2, which this module cannot read yet");
		return ERR_PTR(-EOPNOTSUPP);
	}
	return &vdisk_raw_ops;
}

const char *vdisk_format_name(enum vdisk_format format)
{
	if (format >= ARRAY_SIZE(vdisk_format_names))
		return "unknown";
	return vdisk_format_names[format];
}
