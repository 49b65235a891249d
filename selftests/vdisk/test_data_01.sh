#!/bin/bash
# Data written through the device lands at the matching file offsets, and
# data written into the file reads back through the device, in every cache
# mode.
. ./lib.sh

for cache in none writeback writethrough; do
	img=$VD_DIR/$cache.img
	truncate -s 32M "$img"
	attach --cache "$cache" "$img"
	assert_eq "$(cat /sys/block/${DEV#/dev/}/vdisk/cache)" "$cache" "cache mode"

	make_pattern "$VD_DIR/p1" $((3 << 20)) 1
	# Through the device at sector 1000, read back from the file.
	run dd if="$VD_DIR/p1" of="$DEV" bs=512 seek=1000 conv=fsync status=none
	cmp -n $((3 << 20)) "$VD_DIR/p1" <(dd if="$img" bs=512 skip=1000 count=6144 status=none) ||
		fail "$cache: file content differs from what was written to the device"
	# Through the file, read back from the device (direct, no stale cache).
	make_pattern "$VD_DIR/p2" $((1 << 20)) 2
	run dd if="$VD_DIR/p2" of="$img" bs=1M seek=20 conv=notrunc,fsync status=none
	cmp "$VD_DIR/p2" <(dd if="$DEV" bs=1M skip=20 count=1 iflag=direct status=none) ||
		fail "$cache: device content differs from the file"
	# Unaligned odd sizes via the page cache of the device.
	printf 'hello vdisk' | dd of="$DEV" bs=1 seek=12345 conv=notrunc,fsync status=none
	got=$(dd if="$img" bs=1 skip=12345 count=11 status=none)
	assert_eq "$got" "hello vdisk" "$cache: unaligned write"
	detach "$DEV"
done

# A write through the device updates the image file's modification time,
# also a depth-1 direct write, which is issued inline from queue_rq and
# updates the times there (a journal transaction in ext4).
img=$VD_DIR/none.img
attach --cache none "$img"
for i in 1 2 3; do
	touch -m -d '2001-02-03 04:05:06' "$img"
	run dd if=/dev/urandom of="$DEV" bs=4096 count=1 seek=$((i * 7)) oflag=direct status=none
	year=$(date -d "@$(stat -c %Y "$img")" +%Y)
	[ "$year" -ge 2024 ] || fail "write $i left the image's mtime in $year"
done
detach "$DEV"
exit 0
