#!/bin/bash
# --offset and --sizelimit: the seeds' 32256-byte (sector 63) offset, size
# suffixes, and reads that never go past sizelimit.
. ./lib.sh

img=$VD_DIR/disk.img
truncate -s 100M "$img"
make_pattern "$VD_DIR/p" $((1 << 20)) 3
dd if="$VD_DIR/p" of="$img" bs=512 seek=63 conv=notrunc status=none
attach --offset 32256 "$img"
assert_blk_size "$DEV" $(((100 << 20) - 32256))
cmp -n $((1 << 20)) "$VD_DIR/p" "$DEV" || fail "offset 32256: wrong data at sector 0"
assert_eq "$(vd_json_field "$DEV" offset)" 32256
detach "$DEV"

# Suffixes: 1M offset, 10MiB limit.
attach -o 1M --sizelimit 10MiB "$img"
assert_blk_size "$DEV" $((10 << 20))
assert_eq "$(cat /sys/block/${DEV#/dev/}/vdisk/sizelimit)" $((10 << 20))
assert_eq "$(cat /sys/block/${DEV#/dev/}/vdisk/offset)" $((1 << 20))
# Writing the whole device must not touch the file past the limit.
make_pattern "$VD_DIR/q" $((1 << 20)) 4
dd if="$VD_DIR/q" of="$img" bs=1M seek=11 conv=notrunc status=none
dd if=/dev/zero of="$DEV" bs=1M count=20 oflag=direct status=none 2>/dev/null
cmp "$VD_DIR/q" <(dd if="$img" bs=1M skip=11 count=1 status=none) ||
	fail "a write through the device went past sizelimit"
detach "$DEV"

# A sizelimit that is not a multiple of the sector size is rounded down.
attach --sizelimit 5000 "$img"
assert_blk_size "$DEV" 4608
detach "$DEV"
exit 0
