#!/bin/bash
# Two writes into one host page of an image on a block device (found by
# reading the code, 2026-12-07).  vdisk writes some data buffered: the
# page cache reads the rest of the page from the disk and writes it all
# back later, undoing a direct write to another part of the page that
# landed in between.  On ext4 and XFS the inode lock happens to keep the
# two apart; on a block device (an image on an LV) nothing does.
#  1. qcow2, extended L2 with 64 KiB clusters (2 KiB subclusters): a
#     partial write into an unallocated subcluster, filled from the
#     backing file, against an in-place write to the next subcluster, same
#     page.  With subclusters under a page every write to the image must
#     go through the page cache.
#  2. qcow2, 64 KiB clusters: a 512-byte write-zeroes in place, written
#     as zero data, against an in-place write 2 KiB further on.  Zero data
#     must be written directly, like the guest's data.
#  3. raw, format detected: a write to sector 0, which vdisk checks for
#     another format's magic on a copy, against a write 2 KiB further on.
#     The copy must be written directly too.
# Each part races 3,071 pairs of writes, the second 0 to 2 ms after the
# first; every second write must survive, and qemu-img check must pass.
# With the module before the fix, part 1 lost 10 of 3,071 second writes
# on 6.12 and 2 on 6.1, part 2 44 on 6.12, part 3 62 on 6.12 and 3 on 6.1: the race is
# timing-bound, so one run on one kernel can miss it, but the two kernels
# of a make check together hardly ever do.
. ./lib.sh

cd "$VD_DIR"
command -v qemu-img >/dev/null || skip "qemu-img not installed"
modprobe loop 2>/dev/null
command -v losetup >/dev/null || skip "losetup not installed"

N=3072
SIZE=$((N * 65536))
RACE=$VD_TOP/selftests/vdisk/page_race.py

# race MODE IMAGE: put IMAGE on a loop device, attach it (format
# detected), race, check.
race() {
	local mode=$1 img=$2 loopdev
	# Room for the tables and refcounts past the data.
	[ "$mode" = first ] || run truncate -s $((SIZE + (16 << 20))) "$img"
	loopdev=$(losetup -f --show --direct-io=on "$img") || fail "losetup $img failed"
	at_exit losetup -d "$loopdev"
	attach --cache none "$loopdev"
	assert_eq "$(vd_json_field "$DEV" cache)" none "cache mode of $DEV"
	[ "$mode" = first ] || run python3 "$RACE" "$DEV" $N "prep-$mode"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	python3 "$RACE" "$DEV" $N "$mode" || fail "$mode: writes lost"
	detach "$DEV"
	run losetup -d "$loopdev"
	[ "$mode" = first ] || run qemu-img check -q "$img"
}

# 1. Copy-on-write fills next to in-place writes.
run qemu-img create -q -f raw base.raw $SIZE
run qemu-io -f raw -c "write -P 0xbb 0 $SIZE" base.raw >/dev/null
run qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k \
	-b "$VD_DIR/base.raw" -F raw fill.qcow2 $SIZE
race fill fill.qcow2

# 2. Zero data next to in-place writes.
run qemu-img create -q -f qcow2 -o cluster_size=64k zero.qcow2 $SIZE
race zero zero.qcow2

# 3. The checked first sector of a raw image next to a direct write.
run truncate -s 64M first.raw
race first first.raw
exit 0
