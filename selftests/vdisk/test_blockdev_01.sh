#!/bin/bash
# A block device as the backing store: a loop device, and vdisk stacked on
# vdisk.  Data lands at the right place, discard reaches the device, and
# the physical block size hint follows the backing store.
. ./lib.sh

modprobe loop 2>/dev/null || skip "no loop module"
truncate -s 64M "$VD_DIR/back.img"
loopdev=$(losetup -f --show --direct-io=on "$VD_DIR/back.img") || skip "losetup failed"
at_exit losetup -d "$loopdev"

attach "$loopdev"
assert_blk_size "$DEV" $((64 << 20))
assert_eq "$(vd_json_field "$DEV" cache)" none "block devices support direct I/O"
make_pattern "$VD_DIR/p" $((2 << 20)) 11
run dd if="$VD_DIR/p" of="$DEV" bs=1M seek=3 oflag=direct status=none
sync
cmp "$VD_DIR/p" <(dd if="$VD_DIR/back.img" bs=1M skip=3 count=2 status=none) ||
	fail "data written through vdisk on $loopdev is not in the file"
run blkdiscard -o $((3 << 20)) -l $((2 << 20)) "$DEV"
nz=$(dd if="$VD_DIR/back.img" bs=1M skip=3 count=2 status=none | tr -d '\0' | wc -c)
assert_eq "$nz" 0 "discard through vdisk and loop"

# vdisk on vdisk: the lower device is itself a vdisk.
attach -o 1M "$VD_DIR/back.img"
lower=$DEV
attach "$lower"
upper=$DEV
run dd if="$VD_DIR/p" of="$upper" bs=1M seek=1 oflag=direct status=none
cmp "$VD_DIR/p" <(dd if="$VD_DIR/back.img" bs=1M skip=2 count=2 iflag=direct status=none) ||
	fail "stacked vdisk misplaced data"
expect_fail "in use" "$VDISKCTL" detach "$lower"
detach "$upper"
detach "$lower"


# The physical block size hint: ext4 on /scratch has 4 KiB blocks.
attach "$VD_DIR/back.img"
pbs=$(cat /sys/block/${DEV#/dev/}/queue/physical_block_size)
fsbs=$(stat -f -c %S "$VD_DIR")
assert_eq "$pbs" "$fsbs" "physical block size follows the backing filesystem"
assert_eq "$(cat /sys/block/${DEV#/dev/}/queue/logical_block_size)" 512
detach "$DEV"
# An offset inside a block makes the hint worthless: it falls back.
attach -o 512 "$VD_DIR/back.img"
assert_eq "$(cat /sys/block/${DEV#/dev/}/queue/physical_block_size)" 512 "hint with unaligned offset"
detach "$DEV"
exit 0
