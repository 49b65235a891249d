// SPDX-License-Identifier: GPL-2.0
/*
 * vdisk: block devices backed by disk-image files.
 *
 * Module entry points only.  The netlink family is registered last and
 * unregistered first, so no command can arrive while the rest is being set
 * up or torn down.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/kdev_t.h>
#include <net/genetlink.h>

#include "vdisk.h"

unsigned int vdisk_max_devices = 4096;
module_param_named(max_devices, vdisk_max_devices, uint, 0444);
MODULE_PARM_DESC(max_devices,
		 "Most devices attached at once (default 4096; devices are created on demand)");

unsigned int vdisk_max_part = 15;
module_param_named(max_part, vdisk_max_part, uint, 0444);
MODULE_PARM_DESC(max_part,
		 "Partitions per device with classic minors (default 15; more get extended minors)");

static int __init vdisk_init(void)
{
	int ret;

	/* Each device owns max_part + 1 minors of the major's 2^20. */
	if (vdisk_max_part < 1 || vdisk_max_part > 255) {
		pr_err("max_part=%u must be between 1 and 255\n",
		       vdisk_max_part);
		return -EINVAL;
	}
	if (vdisk_max_devices < 1 ||
	    vdisk_max_devices > (1U << MINORBITS) / (vdisk_max_part + 1)) {
		pr_err("max_devices=%u must be between 1 and %u for max_part=%u\n",
		       vdisk_max_devices,
		       (1U << MINORBITS) / (vdisk_max_part + 1), vdisk_max_part);
		return -EINVAL;
	}

	ret = vdisk_rq_init();
	if (ret)
		return ret;
	ret = vdisk_dev_init();
	if (ret)
		goto out_rq;
	ret = vdisk_nl_init();
	if (ret)
		goto out_dev;
	return 0;

out_dev:
	vdisk_dev_exit();
out_rq:
	vdisk_rq_exit();
	return ret;
}

static void __exit vdisk_exit(void)
{
	vdisk_nl_exit();
	vdisk_dev_exit();
	vdisk_rq_exit();
}

module_init(vdisk_init);
module_exit(vdisk_exit);

MODULE_DESCRIPTION("Block devices backed by disk-image files (raw, qcow2)");
MODULE_LICENSE("GPL");
MODULE_ALIAS_GENL_FAMILY(VDISK_GENL_NAME);
