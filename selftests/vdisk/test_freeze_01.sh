#!/bin/bash
# A frozen backing file system (fsfreeze, as a snapshot or backup tool
# does it): a write through the device waits until the thaw and then
# lands, for raw and qcow2 images in cache=none (the inline path must not
# write to a frozen file system, nor stall reads of the device while
# waiting) and writeback mode.
. ./lib.sh

cd "$VD_DIR"
command -v fsfreeze >/dev/null || skip "fsfreeze not installed"

# The images live on a small ext4 of their own, so freezing it stops
# nothing else.
modprobe loop 2>/dev/null
truncate -s 96M fs.img
mkfs.ext4 -q -F fs.img || fail "mkfs.ext4"
mkdir -p mnt
lo=$(losetup -f --show --direct-io=on "$VD_DIR/fs.img") || skip "losetup failed"
at_exit losetup -d "$lo"
vd_mount "$lo" "$VD_DIR/mnt"
at_exit "fsfreeze -u $VD_DIR/mnt 2>/dev/null"

head -c 1M /dev/urandom >pattern
dd if=/dev/zero of=mnt/a.raw bs=1M count=16 status=none || fail "raw image"
qemu-img create -q -f qcow2 -o preallocation=metadata mnt/a.qcow2 16M ||
	fail "qcow2 image"

frozen_write() {	# NAME IMAGE ATTACH-ARGS...
	local name=$1 img=$2 pid i
	shift 2
	attach "$@" "$img"
	# Warm up: the clusters are ours and the L2 table cached, so the
	# write below is a candidate for the inline path.
	run dd if=/dev/zero of="$DEV" bs=1M seek=3 count=1 oflag=direct \
		conv=notrunc status=none
	fsfreeze -f mnt || fail "$name: fsfreeze"
	dd if=pattern of="$DEV" bs=1M seek=3 oflag=direct conv=notrunc \
		status=none &
	pid=$!
	sleep 2
	if ! kill -0 $pid 2>/dev/null; then
		fsfreeze -u mnt
		fail "$name: a write completed on a frozen file system"
	fi
	# Reads do not wait for the thaw.
	timeout 20 dd if="$DEV" of=/dev/null bs=4k count=16 skip=2 \
		iflag=direct status=none ||
		{ fsfreeze -u mnt; fail "$name: a read stalled behind the frozen write"; }
	fsfreeze -u mnt || fail "$name: thaw"
	for i in $(seq 60); do
		kill -0 $pid 2>/dev/null || break
		sleep 0.5
	done
	kill -0 $pid 2>/dev/null && fail "$name: the write did not finish after the thaw"
	wait $pid || fail "$name: the write failed after the thaw"
	cmp -s pattern <(dd if="$DEV" bs=1M skip=3 count=1 iflag=direct status=none) ||
		fail "$name: data written across the freeze reads back wrong"
	detach "$DEV"
}

frozen_write "raw none" mnt/a.raw --cache none
frozen_write "raw writeback" mnt/a.raw --cache writeback
frozen_write "qcow2 none" mnt/a.qcow2 --cache none
qemu-img convert -O raw mnt/a.qcow2 a.raw || fail "qemu-img convert"
cmp -s pattern <(dd if=a.raw bs=1M skip=3 count=1 status=none) ||
	fail "qcow2: the image does not hold the data after detach"
out=$(qemu-img check mnt/a.qcow2 2>&1) || fail "qcow2: qemu-img check: $out"
log "writes waited for the thaw and landed: raw none, raw writeback, qcow2 none"
