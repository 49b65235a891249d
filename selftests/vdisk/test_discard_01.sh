#!/bin/bash
# Discard punches holes: blkdiscard and fstrim make the image sparse again;
# write-zeroes reads back as zeros.
. ./lib.sh

img=$VD_DIR/a.img
truncate -s 64M "$img"
attach "$img"
run dd if=/dev/urandom of="$DEV" bs=1M count=64 oflag=direct status=none
sync
full=$(allocated_bytes "$img")
[ "$full" -ge $((60 << 20)) ] || fail "image not allocated after writes: $full"
[ "$(cat /sys/block/${DEV#/dev/}/queue/discard_max_bytes)" -gt 0 ] || fail "discard not advertised"
run blkdiscard -o $((16 << 20)) -l $((32 << 20)) "$DEV"
sync
now=$(allocated_bytes "$img")
[ "$now" -le $((full - (30 << 20))) ] || fail "blkdiscard did not punch: $full -> $now"
cmp -s -n $((32 << 20)) <(dd if="$DEV" bs=1M skip=16 count=32 iflag=direct status=none) /dev/zero ||
	fail "discarded range does not read as zeros"

# write-zeroes (blkdiscard -z) zeros a range.
run blkdiscard -z -o 0 -l $((4 << 20)) "$DEV"
cmp -s -n $((4 << 20)) <(dd if="$DEV" bs=1M count=4 iflag=direct status=none) /dev/zero ||
	fail "write-zeroes range does not read as zeros"

# fstrim on a mounted ext4 gives space back to the host.
run mkfs.ext4 -q -F -E nodiscard "$DEV"
vd_mount "$DEV" "$VD_DIR/m"
run dd if=/dev/urandom of="$VD_DIR/m/big" bs=1M count=40 conv=fsync status=none
sync
used=$(allocated_bytes "$img")
rm "$VD_DIR/m/big"
sync
run fstrim "$VD_DIR/m"
sync
trimmed=$(allocated_bytes "$img")
[ "$trimmed" -le $((used - (30 << 20))) ] || fail "fstrim did not shrink the image: $used -> $trimmed"
log "allocated: after write $used, after fstrim $trimmed"
vd_umount "$VD_DIR/m"
detach "$DEV"

# Write-through has no cache for the guest to flush: zeroing and discard
# must be durable when they complete, like its writes, so each is
# followed by an fsync of the image (ext4's sync_file event, for the
# image's inode, and nothing else running that would fsync it).
tr=/sys/kernel/tracing
[ -d $tr/events ] || mount -t tracefs nodev $tr 2>/dev/null
if [ -d $tr/events/ext4/ext4_sync_file_enter ] && [ "$(stat -f -c %T "$VD_DIR")" = ext2/ext3 ]; then
	attach --cache writethrough "$img"
	ino=$(stat -c %i "$img")
	for op in "-z -o 0 -l 1048576" "-o 1048576 -l 1048576"; do
		echo 0 >$tr/tracing_on
		echo >$tr/trace
		echo 1 >$tr/events/ext4/ext4_sync_file_enter/enable
		echo 1 >$tr/tracing_on
		run blkdiscard $op "$DEV"
		echo 0 >$tr/tracing_on
		echo 0 >$tr/events/ext4/ext4_sync_file_enter/enable
		grep -q "ext4_sync_file_enter: .* ino $ino " $tr/trace ||
			fail "blkdiscard $op on a write-through device did not fsync the image: $(grep -c sync_file $tr/trace) fsyncs traced"
	done
	echo >$tr/trace
	detach "$DEV"
else
	log "no ext4 sync_file trace event (or the scratch is not ext4): the write-through fsync is not checked"
fi
exit 0
