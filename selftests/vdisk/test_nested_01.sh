#!/bin/bash
# Requests issued inline from queue_rq run inside the submitter's
# submit_bio, where bios that the backing file system submits are only
# queued until the submitter returns.  ext4 reads a file's extent tree
# blocks even under IOCB_NOWAIT, so an inline read or write of an image
# whose extent tree is not cached must not wait for that read inside the
# submitter's submit_bio: it did, and hung for good (seen once in the soak
# test, after drop_caches).
#
# Each image here has 512 extents (every other 4 KiB block
# written), so its extent tree has leaf blocks outside the inode; the
# images live on an ext4 that is mounted afresh before each attach, so no
# leaf is cached.  Direct reads and writes at depth 1, one at a time (no
# plug, so issued from inside submit_bio), must read the leaves they
# need.  The ext4 is on a loop device, then on another vdisk (whose own
# inline call is then nested inside ours).
. ./lib.sh

nblk=1024	# 4 MiB: 512 extents, in 2 leaf blocks
mnt=$VD_DIR/mnt

# fragment FILE FMT: write every other 4 KiB block of the guest data at
# the host offsets `qemu-img map` gives, into the file's holes.
fragment() {
	qemu-img map -f "$2" --output=json "$1" >"$VD_DIR/map.json" || fail "qemu-img map $1"
	python3 - "$1" "$VD_DIR/map.json" "$nblk" <<'PY' || fail "fragmenting $1"
import json, os, sys
path, mapfile, nblk = sys.argv[1], sys.argv[2], int(sys.argv[3])
extents = [e for e in json.load(open(mapfile)) if "offset" in e]
fd = os.open(path, os.O_WRONLY)
for b in range(0, nblk, 2):
    g = b * 4096
    e = next(e for e in extents if e["start"] <= g < e["start"] + e["length"])
    os.pwrite(fd, bytes([b % 251 + 1]) * 4096, e["offset"] + g - e["start"])
os.fsync(fd)
os.close(fd)
PY
}

# first_byte DEV BLOCK: the first byte of a 4 KiB block, read directly.
first_byte() {
	timeout 60 dd if="$1" bs=4096 skip="$2" count=1 iflag=direct status=none |
		od -An -tx1 -N1 | tr -d ' '
}

# exercise BDEV WHERE: make the images on a fresh ext4 on BDEV, then for
# each format, read one block, then write many, each time just after a
# fresh mount.
exercise() {
	local bdev=$1 where=$2 fmt img blk
	run mkfs.ext4 -q -F "$bdev"
	vd_mount "$bdev" "$mnt"
	truncate -s $((nblk * 4096)) "$mnt/frag.raw"
	run qemu-img create -q -f qcow2 -o preallocation=metadata "$mnt/frag.qcow2" $((nblk * 4))K
	for fmt in raw qcow2; do
		fragment "$mnt/frag.$fmt" $fmt
		# filefrag -v lists the file system's extents one per line
		# (its summary merges the ones that are physically in step).
		log "$where, $fmt: $(filefrag -v "$mnt/frag.$fmt" | grep -c '^ *[0-9]*:') extents in the file"
	done
	vd_umount "$mnt"
	for fmt in raw qcow2; do
		img=$mnt/frag.$fmt
		blk=$(( (RANDOM % (nblk / 4)) * 2 + nblk / 2 ))	# second half
		vd_mount "$bdev" "$mnt"
		attach --cache none "$img"
		assert_eq "$(first_byte "$DEV" $blk)" "$(printf '%02x' $((blk % 251 + 1)))" \
			"$where, $fmt: first byte of block $blk, read after a fresh mount"
		detach "$DEV"
		vd_umount "$mnt"

		# Overwrite the written blocks of the second half, one at a
		# time, crossing leaves whose extents are not cached (inline
		# too when the write must update the file's times, since
		# 2026-12-06).
		vd_mount "$bdev" "$mnt"
		attach --cache none "$img"
		timeout 60 python3 - "$DEV" $((nblk / 2)) $nblk <<'PY' ||
import mmap, os, sys
dev, first, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
buf = mmap.mmap(-1, 4096)
buf.write(b"x" * 4096)
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
for b in range(first, end, 2):
    os.pwritev(fd, [buf], b * 4096)
os.close(fd)
PY
			fail "$where, $fmt: direct writes after a fresh mount did not finish"
		assert_eq "$(first_byte "$DEV" $((nblk - 2)))" 78 "$where, $fmt: block $((nblk - 2)) after the writes"
		assert_eq "$(first_byte "$DEV" $((nblk - 1)))" 00 "$where, $fmt: hole block $((nblk - 1)) after the writes"
		detach "$DEV"
		[ $fmt = qcow2 ] && run qemu-img check -q "$img"
		vd_umount "$mnt"
	done
}

truncate -s 128M "$VD_DIR/loop.img"
modprobe loop 2>/dev/null
loopdev=$(losetup -f --show "$VD_DIR/loop.img") || fail "losetup"
at_exit losetup -d "$loopdev"
exercise "$loopdev" "ext4 on loop"

truncate -s 128M "$VD_DIR/outer.img"
attach --cache none "$VD_DIR/outer.img"
outer=$DEV
exercise "$outer" "ext4 on vdisk"
detach "$outer"
log "2 formats x 2 backing devices: a direct read, and $((nblk / 4)) direct writes, after a fresh mount"
exit 0
