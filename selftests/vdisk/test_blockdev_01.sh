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

# Discard and write-zeroes on a disk of 4 KiB sectors.  A block device
# takes fallocate() only in whole blocks of its own: under a device of
# 512-byte sectors (or at an offset inside a block), vdisk offers neither,
# the block layer writes the zeros itself and refuses discards; before,
# both were offered and failed with an I/O error at 512 bytes.
truncate -s 16M "$VD_DIR/4kn.img"
lo4k=$(losetup -b 4096 -f --show "$VD_DIR/4kn.img") || fail "losetup -b 4096"
at_exit losetup -d "$lo4k"
zeros_at() { # DEV OFFSET LEN: the range reads as zeros
	local ss
	ss=$(blockdev --getss "$1")
	cmp -s -n "$3" <(dd if="$1" bs="$ss" skip=$(($2 / ss)) count=$(($3 / ss)) iflag=direct status=none) /dev/zero
}
for args in "512" "4096 --sector-size 4096 -o 512"; do
	z=${args%% *} args=${args#$z}
	run dd if=/dev/urandom of="$lo4k" bs=1M count=1 oflag=direct status=none
	attach $args "$lo4k"
	q=/sys/block/${DEV#/dev/}/queue
	assert_eq "$(cat $q/discard_max_bytes) $(cat $q/write_zeroes_max_bytes)" "0 0" "discard and write-zeroes offered ($args)"
	expect_fail "not supported" blkdiscard -o 4096 -l 4096 "$DEV"
	run blkdiscard -z -o "$z" -l "$z" "$DEV"
	zeros_at "$DEV" "$z" "$z" || fail "$z bytes zeroed on a 4 KiB-sector disk ($args) do not read as zeros"
	detach "$DEV"
done
attach --sector-size 4096 "$lo4k"
run blkdiscard -o 4096 -l 8192 "$DEV"
run blkdiscard -z -o 65536 -l 4096 "$DEV"
zeros_at "$DEV" 4096 8192 && zeros_at "$DEV" 65536 4096 || fail "4 KiB discard or zeroing on a 4 KiB-sector disk"
detach "$DEV"
# A disk without write-zeroes (null_blk) cannot punch: no discard, and
# write-zeroes falls back to writing zeros.
if modprobe null_blk nr_devices=1 gb=1 memory_backed=1 2>/dev/null && [ -b /dev/nullb0 ]; then
	at_exit rmmod null_blk
	attach /dev/nullb0
	[ "$(cat /sys/block/nullb0/queue/write_zeroes_max_bytes)" != 0 ] ||
		assert_eq "$(cat /sys/block/${DEV#/dev/}/queue/discard_max_bytes)" 0 "discard offered over null_blk"
	run dd if=/dev/urandom of="$DEV" bs=64k count=4 oflag=direct status=none
	run blkdiscard -z -o 4096 -l 65536 "$DEV"
	zeros_at "$DEV" 4096 65536 || fail "zeroing over null_blk"
	detach "$DEV"
else
	log "no null_blk: its case is not run"
fi

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
