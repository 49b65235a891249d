#!/bin/bash
# Requests issued inline from queue_rq run inside the submitter's
# submit_bio, where bios that the backing file system submits are only
# queued until the submitter returns.  ext4 reads a file's extent tree
# blocks even under IOCB_NOWAIT, so an inline read or write of an image
# whose extent tree is not cached must not wait for that read inside the
# submitter's submit_bio: it did, and hung for good (the soak test after
# drop_caches).
#
# Each image here has thousands of extents (every other 4 KiB block
# written), so its extent tree has leaf blocks outside the inode; dropping
# the caches evicts them, and single direct reads and writes at depth 1
# (dd: no plug, so issued from submit_bio) must find them again.
. ./lib.sh

nblk=4096	# 16 MiB: 2048 extents
# fragment FILE [START]: write every other 4 KiB block of the guest data
# at the host offsets `qemu-img map` gives, into the file's holes.
fragment() {
	qemu-img map -f "$2" --output=json "$1" >"$VD_DIR/map.json" || fail "qemu-img map $1"
	python3 - "$1" "$VD_DIR/map.json" "$nblk" <<'PY' || fail "fragmenting $1"
import json, os, sys
path, mapfile, nblk = sys.argv[1], sys.argv[2], int(sys.argv[3])
extents = [e for e in json.load(open(mapfile)) if "offset" in e]
fd = os.open(path, os.O_WRONLY)
n = 0
for b in range(0, nblk, 2):
    g = b * 4096
    e = next(e for e in extents if e["start"] <= g < e["start"] + e["length"])
    os.pwrite(fd, bytes([b % 251 + 1]) * 4096, e["offset"] + g - e["start"])
    n += 1
os.fsync(fd)
os.close(fd)
print(n)
PY
}

truncate -s $((nblk * 4096)) "$VD_DIR/frag.raw"
run qemu-img create -q -f qcow2 -o preallocation=metadata "$VD_DIR/frag.qcow2" $((nblk * 4))K
for fmt in raw qcow2; do
	img=$VD_DIR/frag.$fmt
	n=$(fragment "$img" $fmt)
	# filefrag -v lists the file system's extents one per line (its
	# summary merges those that are physically in step).
	command -v filefrag >/dev/null &&
		log "$fmt: $(filefrag -v "$img" | grep -c '^ *[0-9]*:') extents in the file"
	[ $fmt = qcow2 ] && run qemu-img check -q "$img"
	attach --cache none "$img"
	for round in 1 2 3; do
		blk=$(( (RANDOM % (nblk / 2)) * 2 ))
		sync
		echo 3 >/proc/sys/vm/drop_caches
		want=$(printf '%02x' $((blk % 251 + 1)))
		got=$(timeout 60 dd if="$DEV" bs=4096 skip=$blk count=1 iflag=direct status=none | od -An -tx1 -N1 | tr -d ' ')
		assert_eq "$got" "$want" "$fmt: first byte of block $blk read after drop_caches"
		sync
		echo 3 >/proc/sys/vm/drop_caches
		head -c 4096 /dev/zero | tr '\0' 'x' >"$VD_DIR/x"
		timeout 60 dd if="$VD_DIR/x" of="$DEV" bs=4096 seek=$blk count=1 oflag=direct conv=notrunc status=none ||
			fail "$fmt: direct write of block $blk after drop_caches did not finish"
		got=$(dd if="$DEV" bs=4096 skip=$blk count=1 iflag=direct status=none | od -An -tx1 -N1 | tr -d ' ')
		assert_eq "$got" 78 "$fmt: block $blk after the write"
	done
	detach "$DEV"
	[ $fmt = qcow2 ] && run qemu-img check -q "$img"
done

# The same with the image on a file system on another vdisk: the inner
# device's inline request reaches the outer device from inside its own
# inline call; that one goes to the outer device's worker.
truncate -s 256M "$VD_DIR/outer.img"
attach --cache none "$VD_DIR/outer.img"
outer=$DEV
run mkfs.ext4 -q "$outer"
vd_mount "$outer" "$VD_DIR/mnt"
truncate -s $((nblk * 4096)) "$VD_DIR/mnt/frag.raw"
fragment "$VD_DIR/mnt/frag.raw" raw >/dev/null
attach --cache none "$VD_DIR/mnt/frag.raw"
for round in 1 2 3; do
	blk=$(( (RANDOM % (nblk / 2)) * 2 ))
	sync
	echo 3 >/proc/sys/vm/drop_caches
	got=$(timeout 60 dd if="$DEV" bs=4096 skip=$blk count=1 iflag=direct status=none | od -An -tx1 -N1 | tr -d ' ')
	assert_eq "$got" "$(printf '%02x' $((blk % 251 + 1)))" "nested: block $blk read after drop_caches"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	timeout 60 dd if="$VD_DIR/x" of="$DEV" bs=4096 seek=$blk count=1 oflag=direct conv=notrunc status=none ||
		fail "nested: direct write of block $blk after drop_caches did not finish"
done
detach "$DEV"
vd_umount "$VD_DIR/mnt"
detach "$outer"
log "direct I/O after drop_caches: 9 reads, 9 writes on images of $n extents (3 each nested)"
exit 0
