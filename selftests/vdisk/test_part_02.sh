#!/bin/bash
# sfdisk (and fdisk) on the attached device: the new partitions appear
# without re-attaching, via BLKRRPART, and the table lands in the file.
. ./lib.sh

img=$VD_DIR/disk.img
truncate -s 256M "$img"
attach "$img"
[ -b "${DEV}p1" ] && fail "blank image has partitions"
sfdisk -q "$DEV" <<'SF' || fail "sfdisk on $DEV failed"
label: dos
start=2048, size=100M, type=83
start=206848, type=83
SF
for i in $(seq 50); do [ -b "${DEV}p2" ] && break; sleep 0.1; done
assert_blk_size "${DEV}p1" $((100 << 20))
assert_blk_size "${DEV}p2" $(((256 << 20) - 206848 * 512))
sfdisk -q -l "$img" | grep -q "img2 *206848" || fail "partition table not in the file"

# Repartition while attached: delete p2, blockdev --rereadpt.
sfdisk -q --delete "$DEV" 2 || fail "sfdisk --delete"
run blockdev --rereadpt "$DEV"
[ -b "${DEV}p2" ] && fail "${DEV}p2 still there after delete"
[ -b "${DEV}p1" ] || fail "${DEV}p1 vanished"

# fdisk, interactively: add partition 2 again.
printf 'n\np\n2\n\n+20M\nw\n' | fdisk "$DEV" >/dev/null 2>&1
for i in $(seq 50); do [ -b "${DEV}p2" ] && break; sleep 0.1; done
assert_blk_size "${DEV}p2" $((20 << 20))
detach "$DEV"

# BLKRRPART is refused with partition scanning disabled.
attach --no-partscan "$img"
blockdev --rereadpt "$DEV" 2>/dev/null && fail "rereadpt worked with --no-partscan"
detach "$DEV"
exit 0
