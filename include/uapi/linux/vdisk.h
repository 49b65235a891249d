/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vdisk: block devices backed by disk-image files, controlled over generic
 * netlink.  This header is the whole user/kernel contract.
 *
 * Rules for this file:
 *  - Everything here is append-only: never renumber, remove or change the
 *    type of a command, attribute, flag or enum value.  New ones go at the
 *    end, before the __*_MAX sentinel.
 *  - Every attribute the kernel accepts is validated strictly against a
 *    per-command policy.  Unknown attributes, unknown flag bits, wrong types
 *    and out-of-range values are rejected with an extended ACK message that
 *    names the attribute.
 *  - Commands that change state (ADD, DEL, SET) need CAP_SYS_ADMIN.  GET and
 *    the event group are open to everyone (like `losetup --list`).
 *
 * The family is autoloaded: asking the generic netlink controller for
 * "vdisk" runs `modprobe net-pf-16-proto-16-family-vdisk`, which the module
 * aliases (MODULE_ALIAS_GENL_FAMILY).
 */
#ifndef _UAPI_LINUX_VDISK_H
#define _UAPI_LINUX_VDISK_H

#include <linux/types.h>

#define VDISK_GENL_NAME		"vdisk"
#define VDISK_GENL_VERSION	1
/* Multicast group carrying the VDISK_CMD_EVENT_* notifications. */
#define VDISK_GENL_MCGRP_EVENTS	"events"

/* Block devices are named VDISK_DISK_PREFIX followed by the index. */
#define VDISK_DISK_PREFIX	"vdisk"
/* Longest kernel device name ("vdisk12345"), including the NUL. */
#define VDISK_DISK_NAME_MAX	32
/* Longest user-chosen device name, including the terminating NUL. */
#define VDISK_NAME_MAX		64
/* Longest display path stored for a backing file, including the NUL. */
#define VDISK_PATH_MAX		4096
/* Deepest backing chain accepted below the top image. */
#define VDISK_BACKING_MAX	16

/**
 * enum vdisk_cmd - generic netlink commands of the "vdisk" family
 *
 * @VDISK_CMD_ADD: attach an image and create a block device.
 *	Required: %VDISK_ATTR_FD.  Optional: %VDISK_ATTR_PATH (display only),
 *	%VDISK_ATTR_INDEX (ask for a specific index), %VDISK_ATTR_NAME,
 *	%VDISK_ATTR_FORMAT, %VDISK_ATTR_OFFSET, %VDISK_ATTR_SIZELIMIT,
 *	%VDISK_ATTR_FLAGS, %VDISK_ATTR_CACHE, %VDISK_ATTR_SECTOR_SIZE,
 *	%VDISK_ATTR_BACKING, %VDISK_ATTR_SNAPSHOT, %VDISK_ATTR_CACHE_SIZE.
 *	The reply is a device description (as for %VDISK_CMD_GET).  The
 *	partition table has been scanned and the device announced to udev
 *	before the reply is sent.
 * @VDISK_CMD_DEL: detach a device.  Selector: %VDISK_ATTR_INDEX or
 *	%VDISK_ATTR_NAME.  Optional: %VDISK_ATTR_DEL_FLAGS.  Fails with EBUSY
 *	while the device or one of its partitions is open, unless
 *	%VDISK_DEL_LAZY is given, which detaches at last close instead.
 * @VDISK_CMD_GET: describe one device (selector: %VDISK_ATTR_INDEX or
 *	%VDISK_ATTR_NAME), or all of them with NLM_F_DUMP.
 * @VDISK_CMD_SET: change an attached device.  Selector as for DEL.
 *	Optional: %VDISK_ATTR_SET_FLAGS, %VDISK_ATTR_CACHE, %VDISK_ATTR_SIZE.
 *	Replies with the new device description.
 * @VDISK_CMD_EVENT_ATTACH: notification: a device was attached.
 * @VDISK_CMD_EVENT_DETACH: notification: a device was detached (carries
 *	only %VDISK_ATTR_INDEX, %VDISK_ATTR_DISK_NAME and %VDISK_ATTR_NAME).
 * @VDISK_CMD_EVENT_RESIZE: notification: a device's capacity changed.
 * @VDISK_CMD_EVENT_CHANGE: notification: read-only state, cache mode or
 *	autoclear of a device changed.
 *
 * Notifications carry a device description, like a GET reply.
 */
enum vdisk_cmd {
	VDISK_CMD_UNSPEC,
	VDISK_CMD_ADD,
	VDISK_CMD_DEL,
	VDISK_CMD_GET,
	VDISK_CMD_SET,
	VDISK_CMD_EVENT_ATTACH,
	VDISK_CMD_EVENT_DETACH,
	VDISK_CMD_EVENT_RESIZE,
	VDISK_CMD_EVENT_CHANGE,

	__VDISK_CMD_MAX,
};

#define VDISK_CMD_MAX (__VDISK_CMD_MAX - 1)

/**
 * enum vdisk_attr - top-level attributes
 *
 * @VDISK_ATTR_INDEX: u32, device index N of /dev/vdiskN.
 * @VDISK_ATTR_NAME: string, optional user-chosen name, unique among
 *	attached devices; at most %VDISK_NAME_MAX - 1 bytes of letters,
 *	digits, '.', '_', '-' and ':', not starting with '.' or '-', and not
 *	of the form "vdisk<digits>" (which names devices by index).
 * @VDISK_ATTR_DISK_NAME: string, reply only: the block device's kernel
 *	name ("vdisk0"), at most %VDISK_DISK_NAME_MAX - 1 bytes.
 * @VDISK_ATTR_FD: u32, file descriptor of the image, opened by the caller.
 *	The kernel takes its own reference in the caller's context; it never
 *	opens a path.  A descriptor opened read-only makes the device
 *	read-only.  Regular files and block devices are accepted.
 * @VDISK_ATTR_PATH: string, the image's path, kept for display only.
 * @VDISK_ATTR_FORMAT: u32, &enum vdisk_format.  In ADD, %VDISK_FORMAT_AUTO
 *	(the default) lets the kernel probe the image.
 * @VDISK_ATTR_OFFSET: u64, byte offset of the device's first sector in the
 *	image file (raw only).  Any offset below the file size; direct I/O
 *	(%VDISK_CACHE_NONE) needs one aligned to the file's direct I/O
 *	alignment.
 * @VDISK_ATTR_SIZELIMIT: u64, largest device size in bytes; 0 means up to
 *	the end of the file (raw only).
 * @VDISK_ATTR_SIZE: u64.  In replies, the device capacity in bytes.  In SET,
 *	the new virtual size of a qcow2 image (grow only).
 * @VDISK_ATTR_FLAGS: u32, %VDISK_FLAG_* bits.  Set in ADD, reported in
 *	replies.
 * @VDISK_ATTR_CACHE: u32, &enum vdisk_cache.  The requested mode in ADD and
 *	SET; the mode in effect in replies.
 * @VDISK_ATTR_SECTOR_SIZE: u32, logical sector size: 512, 1024, 2048 or
 *	4096 (default 512).
 * @VDISK_ATTR_DEL_FLAGS: u32, %VDISK_DEL_* bits.
 * @VDISK_ATTR_SET_FLAGS: u32, %VDISK_SET_* bits.
 * @VDISK_ATTR_MAJOR: u32, reply only, block device major number.
 * @VDISK_ATTR_MINOR: u32, reply only, block device minor number.
 * @VDISK_ATTR_OPENERS: u32, in every device description but ADD replies
 *	and ATTACH events (on 6.12 the partition scan's close is still
 *	pending then), how many times the device or
 *	its partitions are open.  A device with %VDISK_FLAG_AUTOCLEAR and
 *	openers is detached at its last close (what a lazy DEL leaves).
 * @VDISK_ATTR_BACKING: nested array of &enum vdisk_layer_attr nests, the
 *	backing chain below the top image, nearest layer first.  In ADD each
 *	layer carries an fd; in replies each carries its path and format.
 * @VDISK_ATTR_SNAPSHOT: string, internal qcow2 snapshot to attach (its id
 *	or its name, id first as qemu-img does).  Implies read-only.
 * @VDISK_ATTR_CACHE_SIZE: u64, bytes of format metadata cache (qcow2 L2
 *	tables) for this device; 0 or absent picks the default.
 * @VDISK_ATTR_PAD: padding for 64-bit attributes.
 */
enum vdisk_attr {
	VDISK_ATTR_UNSPEC,
	VDISK_ATTR_INDEX,
	VDISK_ATTR_NAME,
	VDISK_ATTR_DISK_NAME,
	VDISK_ATTR_FD,
	VDISK_ATTR_PATH,
	VDISK_ATTR_FORMAT,
	VDISK_ATTR_OFFSET,
	VDISK_ATTR_SIZELIMIT,
	VDISK_ATTR_SIZE,
	VDISK_ATTR_FLAGS,
	VDISK_ATTR_CACHE,
	VDISK_ATTR_SECTOR_SIZE,
	VDISK_ATTR_DEL_FLAGS,
	VDISK_ATTR_SET_FLAGS,
	VDISK_ATTR_MAJOR,
	VDISK_ATTR_MINOR,
	VDISK_ATTR_OPENERS,
	VDISK_ATTR_BACKING,
	VDISK_ATTR_SNAPSHOT,
	VDISK_ATTR_CACHE_SIZE,
	VDISK_ATTR_PAD,

	__VDISK_ATTR_MAX,
};

#define VDISK_ATTR_MAX (__VDISK_ATTR_MAX - 1)

/**
 * enum vdisk_layer_attr - attributes of one backing-chain layer
 *
 * @VDISK_LAYER_ATTR_FD: u32, ADD only: descriptor of this layer, opened
 *	read-only by the caller.
 * @VDISK_LAYER_ATTR_PATH: string, the layer's path (display, and matched
 *	against the name the layer above records).
 * @VDISK_LAYER_ATTR_FORMAT: u32, &enum vdisk_format of this layer.
 */
enum vdisk_layer_attr {
	VDISK_LAYER_ATTR_UNSPEC,
	VDISK_LAYER_ATTR_FD,
	VDISK_LAYER_ATTR_PATH,
	VDISK_LAYER_ATTR_FORMAT,

	__VDISK_LAYER_ATTR_MAX,
};

#define VDISK_LAYER_ATTR_MAX (__VDISK_LAYER_ATTR_MAX - 1)

/**
 * enum vdisk_format - image formats
 * @VDISK_FORMAT_AUTO: probe (ADD only): qcow2 if the image starts with the
 *	qcow2 magic, otherwise raw.
 * @VDISK_FORMAT_RAW: the file is the disk, from %VDISK_ATTR_OFFSET on.
 * @VDISK_FORMAT_QCOW2: QEMU copy-on-write version 2 or 3.
 */
enum vdisk_format {
	VDISK_FORMAT_AUTO,
	VDISK_FORMAT_RAW,
	VDISK_FORMAT_QCOW2,

	__VDISK_FORMAT_MAX,
};

#define VDISK_FORMAT_MAX (__VDISK_FORMAT_MAX - 1)

/**
 * enum vdisk_cache - how writes reach the backing file
 * @VDISK_CACHE_DEFAULT: request only: %VDISK_CACHE_NONE where the backing
 *	file supports direct I/O at the device's sector size and offset,
 *	otherwise %VDISK_CACHE_WRITEBACK.
 * @VDISK_CACHE_NONE: direct I/O to the backing file, no host page cache;
 *	flushes still fsync the file (its metadata).  Requesting it where
 *	direct I/O is impossible is an error, not a silent fallback.
 * @VDISK_CACHE_WRITEBACK: buffered I/O through the host page cache;
 *	flush and FUA fsync the file.
 * @VDISK_CACHE_WRITETHROUGH: buffered I/O, every write is synced to stable
 *	storage before it completes (the device has no volatile cache).
 */
enum vdisk_cache {
	VDISK_CACHE_DEFAULT,
	VDISK_CACHE_NONE,
	VDISK_CACHE_WRITEBACK,
	VDISK_CACHE_WRITETHROUGH,

	__VDISK_CACHE_MAX,
};

#define VDISK_CACHE_MAX (__VDISK_CACHE_MAX - 1)

/*
 * Device flags (%VDISK_ATTR_FLAGS).
 *
 * VDISK_FLAG_READ_ONLY: the device refuses writes.  Set automatically when
 *	the image descriptor is not writable, when a snapshot is attached, or
 *	when a qcow2 image is marked corrupt.
 * VDISK_FLAG_NO_PARTSCAN: do not scan for partitions (and refuse BLKRRPART).
 * VDISK_FLAG_AUTOCLEAR: detach automatically when the last opener closes.
 */
#define VDISK_FLAG_READ_ONLY	(1U << 0)
#define VDISK_FLAG_NO_PARTSCAN	(1U << 1)
#define VDISK_FLAG_AUTOCLEAR	(1U << 2)
#define VDISK_FLAGS_ALL		(VDISK_FLAG_READ_ONLY | VDISK_FLAG_NO_PARTSCAN | \
				 VDISK_FLAG_AUTOCLEAR)

/*
 * Detach flags (%VDISK_ATTR_DEL_FLAGS).
 *
 * VDISK_DEL_LAZY: if the device is open, mark it autoclear and let the last
 *	close detach it, instead of failing with EBUSY.
 */
#define VDISK_DEL_LAZY		(1U << 0)
#define VDISK_DEL_FLAGS_ALL	VDISK_DEL_LAZY

/*
 * Change flags (%VDISK_ATTR_SET_FLAGS).
 *
 * VDISK_SET_REFRESH_SIZE: re-read the backing file's size and update the
 *	capacity (after the file was grown or truncated); emits a change
 *	uevent with RESIZE=1.
 * VDISK_SET_READ_ONLY / VDISK_SET_READ_WRITE: make the device read-only or
 *	writable.  READ_WRITE fails if the image cannot be written.  The two
 *	are mutually exclusive.
 * VDISK_SET_AUTOCLEAR / VDISK_SET_NO_AUTOCLEAR: set or clear autoclear.
 */
#define VDISK_SET_REFRESH_SIZE	(1U << 0)
#define VDISK_SET_READ_ONLY	(1U << 1)
#define VDISK_SET_READ_WRITE	(1U << 2)
#define VDISK_SET_AUTOCLEAR	(1U << 3)
#define VDISK_SET_NO_AUTOCLEAR	(1U << 4)
#define VDISK_SET_FLAGS_ALL	(VDISK_SET_REFRESH_SIZE | VDISK_SET_READ_ONLY | \
				 VDISK_SET_READ_WRITE | VDISK_SET_AUTOCLEAR | \
				 VDISK_SET_NO_AUTOCLEAR)

#endif /* _UAPI_LINUX_VDISK_H */
