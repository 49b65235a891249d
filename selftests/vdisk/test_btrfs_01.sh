#!/bin/bash
# Images on btrfs, a file system that takes direct I/O but reports no
# alignment for it (no STATX_DIOALIGN on 6.1 and 6.12) and has no single
# block device to take one from.  --cache none must work there, as loop's
# direct I/O does (it was refused: "backing file does not support direct
# I/O"); the default stays writeback; and the device keeps pages stable
# during writes, since btrfs checksums a direct write's data before it
# writes it.
. ./lib.sh

modprobe btrfs 2>/dev/null || skip "no btrfs module"
modprobe loop 2>/dev/null
command -v mkfs.btrfs >/dev/null || fail "mkfs.btrfs missing (btrfs-progs: make deps)"

truncate -s 256M "$VD_DIR/btrfs.img"
loopdev=$(losetup -f --show "$VD_DIR/btrfs.img") || fail "losetup"
at_exit losetup -d "$loopdev"
run mkfs.btrfs -q "$loopdev"
mnt=$VD_DIR/mnt
vd_mount "$loopdev" "$mnt"

csum_errors() { dmesg | grep -c 'BTRFS.*csum failed' || true; }
csum_before=$(csum_errors)

# Raw, with data checksums (btrfs's default) and without (chattr +C, as
# VM images on btrfs usually are; direct writes of a checksummed file fall
# back to buffered in btrfs itself since 6.12.y, not in 6.1): the default
# mode is writeback; none on request.
make_pattern "$VD_DIR/p" $((1 << 20)) 11
touch "$mnt/nocow.raw"
run chattr +C "$mnt/nocow.raw"
for img in "$mnt/sum.raw" "$mnt/nocow.raw"; do
	truncate -s 8M "$img"
	attach "$img"
	assert_eq "$(cat /sys/block/${DEV#/dev/}/vdisk/cache)" writeback "default cache mode on btrfs"
	assert_eq "$(cat /sys/block/${DEV#/dev/}/queue/stable_writes)" 1 "stable_writes, writeback"
	run "$VDISKCTL" set "$DEV" --cache none
	assert_eq "$(cat /sys/block/${DEV#/dev/}/vdisk/cache)" none "cache after set --cache none"
	detach "$DEV"

	attach --cache none "$img"
	assert_eq "$(cat /sys/block/${DEV#/dev/}/vdisk/cache)" none "attach --cache none on btrfs"
	assert_eq "$(cat /sys/block/${DEV#/dev/}/queue/stable_writes)" 1 "stable_writes, none"
	# 4 KiB-aligned writes, then 512-byte ones at odd sectors (which
	# btrfs takes as buffered I/O), read back directly.
	run dd if="$VD_DIR/p" of="$DEV" bs=4k count=192 oflag=direct status=none
	run dd if="$VD_DIR/p" of="$DEV" bs=512 skip=1601 seek=1601 count=63 oflag=direct status=none
	cmp -n $((3 << 18)) "$VD_DIR/p" "$DEV" || fail "$img: 4 KiB direct writes read back wrong"
	cmp -i $((1601 * 512)) -n $((63 * 512)) "$VD_DIR/p" "$DEV" ||
		fail "$img: 512-byte direct writes read back wrong"
	detach "$DEV"
	echo 3 >/proc/sys/vm/drop_caches
	cmp -n $((3 << 18)) "$VD_DIR/p" "$img" || fail "$img after detach (4 KiB writes)"
	cmp -i $((1601 * 512)) -n $((63 * 512)) "$VD_DIR/p" "$img" ||
		fail "$img after detach (512-byte writes)"
done
img=$mnt/sum.raw

# The two parts below do not depend on each other; a `make check` runs
# the first on its first kernel (6.1, whose btrfs writes checksummed
# files directly) and the second on the next.

# A file system on the device, its pages rewritten while they are being
# written back: with stable pages, every block of the checksummed image
# still matches its checksum.  The race this guards against (6.1: btrfs
# sums the page, the page changes, then it is written) has a window too
# small to hit reliably here; the stable_writes checks above are what fail
# if the flag goes.
if mine "file system on a device on btrfs"; then
	attach --cache none "$img"
	run mkfs.ext4 -q -F "$DEV"
	vd_mount "$DEV" "$VD_DIR/ext4"
	timeout 120 python3 - "$VD_DIR/ext4/f" <<'PY' || fail "rewriting a mapped file"
import mmap, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
os.ftruncate(fd, 1 << 20)
m = mmap.mmap(fd, 1 << 20)
end = time.time() + 3
if os.fork() == 0:	# the writer: changes every page, all the time
    n = 0
    while time.time() < end:
        b = n.to_bytes(8, "little")
        for off in range(0, 1 << 20, 4096):
            m[off:off + 8] = b
        n += 1
    os._exit(0)
syncs = 0
while time.time() < end:	# write back while the writer goes on
    m.flush()
    syncs += 1
os.wait()
m.close()
os.fsync(fd)
os.close(fd)
print(f"# {syncs} write-backs of 256 mapped pages while another process changed them")
PY
	vd_umount "$VD_DIR/ext4"
	detach "$DEV"
	echo 3 >/proc/sys/vm/drop_caches
	cat "$img" >/dev/null || fail "reading the image back from btrfs failed"
	assert_eq "$(csum_errors)" "$csum_before" "btrfs checksum errors in dmesg"
fi

# A 4 KiB-sector device: qcow2 with a backing file, both on btrfs.
if mine "qcow2 with a backing file on btrfs"; then
	run qemu-img create -q -f qcow2 "$mnt/base.qcow2" 8M
	run qemu-io -f qcow2 -c "write -P 0x5a 0 4M" "$mnt/base.qcow2"
	run qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$mnt/top.qcow2"
	attach --cache none --sector-size 4096 "$mnt/top.qcow2"
	run dd if="$VD_DIR/p" of="$DEV" bs=64k seek=16 count=16 oflag=direct status=none
	detach "$DEV"
	run qemu-img check -q "$mnt/top.qcow2"
	oracle_check "$mnt/top.qcow2" --cache none --read-only
fi

vd_umount "$mnt"
exit 0
