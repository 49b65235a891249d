#!/bin/bash
# A full host file system under the image.  qcow2 on a small ext4 (loop):
# allocating writes fail with ENOSPC (or EIO after a failed metadata
# write), the data flushed before is intact, `qemu-img check` finds no
# corruption, and once space is freed the (repaired) image is writable.
# Raw sparse image on a small tmpfs: writes fail with ENOSPC and succeed
# again after space is freed.
. ./lib.sh
. ./fault_lib.sh	# expect_ioerr, sha_range
modprobe loop 2>/dev/null
fails=0

# --- qcow2 on a full ext4 ---
truncate -s 64M "$VD_DIR/small.ext4"
run mkfs.ext4 -q -F -b 4096 "$VD_DIR/small.ext4"
lo=$(losetup -f --show --direct-io=on "$VD_DIR/small.ext4") || skip "losetup failed"
at_exit losetup -d "$lo"
fs=$VD_DIR/fs
vd_mount "$lo" "$fs"
img=$fs/q.qcow2
run qemu-img create -q -f qcow2 "$img" 256M
head -c $((8 << 20)) /dev/urandom >"$VD_DIR/a"
sha_a=$(sha256sum <"$VD_DIR/a" | cut -d' ' -f1)
# Leave ~24 MiB free, held by a filler we can delete later.
avail=$(($(stat -f -c '%a * %S' "$fs")))
run fallocate -l $((avail - (24 << 20))) "$fs/filler"

attach --cache none "$img"
run dd if="$VD_DIR/a" of="$DEV" bs=1M oflag=direct conv=fsync status=none
# Fill the image well past the free space.
for seek in 16 112; do
	expect_ioerr -s dd if=/dev/zero of="$DEV" bs=1M seek=$seek count=96 oflag=direct conv=fsync status=none
	fails=$((fails + 1))
done
assert_eq "$(sha_range "$DEV" 0 8)" "$sha_a" "flushed data with the file system full"
detach "$DEV"
out=$(qemu-img check "$img" 2>&1)
rc=$?
[ $rc -eq 0 ] || [ $rc -eq 3 ] || { echo "$out" | sed 's/^/#   /'; fail "qemu-img check on the full file system: exit $rc"; }
run rm -f "$fs/filler"
run qemu-img check -q -r all "$img"
qemu-img convert -O raw "$img" "$VD_DIR/conv.raw" || fail "qemu-img convert"
assert_eq "$(head -c $((8 << 20)) "$VD_DIR/conv.raw" | sha256sum | cut -d' ' -f1)" "$sha_a" "flushed data in the image"
rm -f "$VD_DIR/conv.raw"
attach --cache none "$img"
run dd if="$VD_DIR/a" of="$DEV" bs=1M seek=40 oflag=direct conv=fsync status=none
assert_eq "$(sha_range "$DEV" 40 8)" "$sha_a" "write after space was freed"
assert_eq "$(sha_range "$DEV" 0 8)" "$sha_a" "old data after space was freed"
detach "$DEV"
run qemu-img check -q "$img"

# --- raw sparse image on a full tmpfs ---
t=$VD_DIR/tmp
mkdir -p "$t"
run mount -t tmpfs -o size=16M vdnospc "$t"
VD_MOUNTS+=("$t")
truncate -s 64M "$t/raw.img"
attach "$t/raw.img"
run dd if="$VD_DIR/a" of="$DEV" bs=1M oflag=direct conv=fsync status=none
expect_ioerr -s dd if=/dev/zero of="$DEV" bs=1M seek=16 count=32 oflag=direct status=none
fails=$((fails + 1))
assert_eq "$(sha_range "$DEV" 0 8)" "$sha_a" "data on the full tmpfs"
# Free space by discarding part of what was written: writes work again.
run blkdiscard -o $((16 << 20)) -l $((16 << 20)) "$DEV"
run dd if="$VD_DIR/a" of="$DEV" bs=1M seek=40 oflag=direct conv=fsync status=none
assert_eq "$(sha_range "$DEV" 40 8)" "$sha_a" "write after space was freed (tmpfs)"
detach "$DEV"
log "ENOSPC faults seen by callers: $fails"
exit 0
