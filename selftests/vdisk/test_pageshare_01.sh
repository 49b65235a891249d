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
# With the module before the fix, parts 1, 2 and 3 lost 8, 15 and 19 of
# 3,071 second writes on 6.12, and 4, 9 and 16 on 6.1.  The parts are
# split among the kernels of a make check (mine(), in lib.sh): part 2
# runs first, so with two kernels 6.1 takes parts 2 and 3 and 6.12 part
# 1, each where it lost the most.  The bugs are vdisk's, not a kernel's.
. ./lib.sh

cd "$VD_DIR"
for tool in qemu-img qemu-io losetup; do
	command -v $tool >/dev/null || skip "$tool not installed"
done
modprobe loop 2>/dev/null

N=3072
SIZE=$((N * 65536))
RACE=$VD_TOP/selftests/vdisk/page_race.py

LOOPDEV=
detach_loop() {
	[ -n "$LOOPDEV" ] && losetup -d "$LOOPDEV"
	LOOPDEV=
}
at_exit detach_loop

# race MODE IMAGE FORMAT: put IMAGE on a loop device, attach it (format
# detected: FORMAT), race, check.
race() {
	local mode=$1 img=$2 format=$3
	# Room for the tables and refcounts past the data.
	[ "$format" = raw ] || run truncate -s $((SIZE + (16 << 20))) "$img"
	LOOPDEV=$(losetup -f --show --direct-io=on "$img") || fail "losetup $img failed"
	attach --cache none "$LOOPDEV"
	assert_eq "$(vd_json_field "$DEV" cache)" none "cache mode of $DEV"
	assert_eq "$(vd_json_field "$DEV" format)" "$format" "format of $DEV"
	# Else BLKZEROOUT writes zero pages itself, and part 2 tests nothing.
	[ "$(cat /sys/block/"${DEV#/dev/}"/queue/write_zeroes_max_bytes)" -gt 0 ] ||
		fail "$DEV does not take write-zeroes"
	[ "$format" = raw ] || run python3 "$RACE" "$DEV" $N "prep-$mode"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	python3 "$RACE" "$DEV" $N "$mode" || fail "$mode: writes lost"
	detach "$DEV"
	run detach_loop
	[ "$format" = raw ] || run qemu-img check -q "$img"
}

# 2. Zero data next to in-place writes.
if mine "part 2, zero data"; then
	run qemu-img create -q -f qcow2 -o cluster_size=64k zero.qcow2 $SIZE
	race zero zero.qcow2 qcow2
fi

# 1. Copy-on-write fills next to in-place writes.
if mine "part 1, fills"; then
	run qemu-img create -q -f raw base.raw $SIZE
	run qemu-io -f raw -c "write -P 0xbb 0 $SIZE" base.raw >/dev/null
	run qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k \
		-b "$VD_DIR/base.raw" -F raw fill.qcow2 $SIZE
	race fill fill.qcow2 qcow2
fi

# 3. The checked first sector of a raw image next to a direct write.
if mine "part 3, first sector"; then
	run truncate -s 64M first.raw
	race first first.raw raw
fi
exit 0
