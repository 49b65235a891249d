#!/bin/bash
# qcow2 writes through file systems and qcow2 features:
#  - ext4 on a partition of a fresh qcow2: copy a tree, detach, qemu-img
#    check clean, reattach, e2fsck -fn clean and the checksums equal;
#  - a cluster shared with an internal snapshot is copied on write: the
#    snapshot (qemu-img convert -l) keeps its contents;
#  - fstrim on the mounted ext4 lowers qemu-img info's allocated size;
#  - vdiskctl resize grows the device online (resize2fs follows), and the
#    header says the new size;
#  - qemu-img check stays clean after each step.
. ./lib.sh

cd "$VD_DIR"
q() { "$@" >/dev/null || fail "$*"; }
check_clean() {
	local out
	out=$(qemu-img check "$1" 2>&1) || { echo "$out" | sed 's/^/#   /'; fail "qemu-img check $1: $2"; }
	grep -q leaked <<<"$out" && { echo "$out" | sed 's/^/#   /'; fail "leaks in $1: $2"; }
	return 0
}
alloc() { qemu-img info --output=json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["actual-size"])'; }

# --- ext4 on a partition ------------------------------------------------
q qemu-img create -q -f qcow2 fs.qcow2 256M
attach fs.qcow2
printf 'label: gpt\nstart=2048, size=200M\n' | sfdisk -q "$DEV" || fail "sfdisk"
udevadm settle 2>/dev/null
[ -b "${DEV}p1" ] || fail "${DEV}p1 missing after sfdisk"
q mkfs.ext4 -q -E nodiscard "${DEV}p1"
vd_mount "${DEV}p1" mnt
# Three of its trees (270 files; the whole of it, 900 files over the
# guest's 9p root, took 10 s).
src=/usr/share/zoneinfo
mkdir -p mnt/tree
cp -a "$src/America" "$src/Asia" "$src/Europe" mnt/tree/ || fail "copying $src"
(cd mnt/tree && find . -type f -print0 | sort -z | xargs -0 sha256sum) >sums || fail "checksums"
files=$(wc -l <sums)
vd_umount mnt
detach "$DEV"
check_clean fs.qcow2 "after ext4 copy"
attach fs.qcow2
udevadm settle 2>/dev/null
out=$(e2fsck -fn "${DEV}p1" 2>&1) || { echo "$out" | sed 's/^/#   /'; fail "e2fsck after reattach"; }
vd_mount "${DEV}p1" mnt -o ro
(cd mnt/tree && sha256sum -c --quiet ../../sums) || fail "checksums differ after reattach"
vd_umount mnt
log "ext4: $files files copied, check clean, e2fsck clean, checksums equal"

# --- fstrim -------------------------------------------------------------
vd_mount "${DEV}p1" mnt
q dd if=/dev/urandom of=mnt/big bs=1M count=32 conv=fsync status=none
vd_umount mnt
detach "$DEV"
before=$(alloc fs.qcow2)
attach fs.qcow2
udevadm settle 2>/dev/null
vd_mount "${DEV}p1" mnt
rm -f mnt/big
sync	# ext4 frees the blocks when the deleting transaction commits
q fstrim mnt
vd_umount mnt
detach "$DEV"
after=$(alloc fs.qcow2)
check_clean fs.qcow2 "after fstrim"
[ "$after" -lt $((before - (24 << 20))) ] || fail "fstrim: allocated $before -> $after bytes"
log "fstrim: allocated $before -> $after bytes"

# --- online resize ------------------------------------------------------
attach fs.qcow2
udevadm settle 2>/dev/null
vd_mount "${DEV}p1" mnt
run "$VDISKCTL" resize "$DEV" --size 384M >/dev/null
assert_blk_size "$DEV" $((384 << 20))
# grow the partition to the new end and the mounted file system with it
echo ", +" | sfdisk -q -N 1 --no-reread "$DEV" >/dev/null 2>&1 || fail "sfdisk grow"
q partx -u "$DEV"
q resize2fs "${DEV}p1"
q dd if=/dev/urandom of=mnt/after-resize bs=1M count=8 conv=fsync status=none
sum=$(sha256sum <mnt/after-resize)
vd_umount mnt
expect_fail "cannot shrink" "$VDISKCTL" resize "$DEV" --size 128M
detach "$DEV"
check_clean fs.qcow2 "after resize"
vs=$(qemu-img info --output=json fs.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
assert_eq "$vs" $((384 << 20)) "virtual size in the header"
attach fs.qcow2
udevadm settle 2>/dev/null
vd_mount "${DEV}p1" mnt -o ro
assert_eq "$(sha256sum <mnt/after-resize)" "$sum" "file written after the resize"
vd_umount mnt
detach "$DEV"
log "resize: 256M -> 384M online, file system grown, header updated"

# --- internal snapshot: copy on write ------------------------------------
q qemu-img create -q -f qcow2 snap.qcow2 32M
q qemu-io -c "write -P 0x5a 0 32M" snap.qcow2
q qemu-img snapshot -c s1 snap.qcow2
want=$(qemu_raw_sha snap.qcow2 $((32 << 20)) -l snapshot.name=s1)
# What the active state must become, built without vdisk or qemu reading
# the image vdisk wrote: the 3 x 4 KiB write shares its 64 KiB cluster
# with the snapshot, and the rest of that cluster must stay 0x5a.
python3 -c 'import sys; sys.stdout.buffer.write(b"\x5a" * (32 << 20))' >expect.raw
make_pattern w1 $((40 * 65536)) 61
make_pattern w2 $((3 * 4096)) 62
attach snap.qcow2
q dd if=w1 of="$DEV" bs=64k seek=3 oflag=direct status=none
q dd if=w2 of="$DEV" bs=4k seek=2000 conv=fsync status=none
q blkdiscard -o $((16 << 20)) -l $((4 << 20)) "$DEV"
q dd if=w1 of=expect.raw bs=64k seek=3 conv=notrunc status=none
q dd if=w2 of=expect.raw bs=4k seek=2000 conv=notrunc status=none
q dd if=/dev/zero of=expect.raw bs=1M seek=16 count=4 conv=notrunc status=none
active=$(sha256sum <"$DEV" | cut -d' ' -f1)
detach "$DEV"
assert_eq "$active" "$(sha256sum <expect.raw | cut -d' ' -f1)" "active state as written"
check_clean snap.qcow2 "after writes over a snapshot"
assert_eq "$(qemu_raw_sha snap.qcow2 $((32 << 20)) -l snapshot.name=s1)" "$want" "snapshot s1 contents"
assert_eq "$(qemu_raw_sha snap.qcow2 $((32 << 20)))" "$active" "active state"
# the snapshot itself attaches read-only
attach --snapshot s1 snap.qcow2
assert_eq "$(blockdev --getro "$DEV")" 1 "snapshot is read-only"
assert_eq "$(sha256sum <"$DEV" | cut -d' ' -f1)" "$want" "snapshot through vdisk"
detach "$DEV"
log "snapshot: shared clusters copied on write, s1 unchanged"
exit 0
