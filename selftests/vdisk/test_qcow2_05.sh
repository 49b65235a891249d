#!/bin/bash
# qcow2 writes under fio: random writes of 4 KiB to 1 MiB from several
# jobs with crc32c verification, over a fresh image, an overlay on a
# backing chain, a compressed image and every layout that changes the
# allocator (refcount widths 1 and 64, 512 B and 2 MiB clusters, version
# 2, extended L2), and an L2 cache smaller than the tables written.
# After detach, qemu-img check finds no errors and no leaks, and the
# image equals a raw copy read through the device.  The backing layers
# are not modified.
. ./lib.sh

cd "$VD_DIR"
q() { "$@" >/dev/null || fail "$*"; }
command -v fio >/dev/null || skip "fio not installed"

# fio_check NAME IMAGE [ATTACH ARGS...]
fio_check() {
	local name=$1 img=$2 size jobs out
	shift 2
	attach "$@" "$img"
	assert_eq "$(blockdev --getro "$DEV")" 0 "$name: writable"
	size=$(blockdev --getsize64 "$DEV")
	jobs=4
	out=$(fio --name="$name" --filename="$DEV" --rw=randwrite \
		--bsrange=4k-1m --size=$((size / jobs)) \
		--offset_increment=$((size / jobs)) --numjobs=$jobs \
		--direct=1 --ioengine=libaio --iodepth=8 --verify=crc32c \
		--verify_fatal=1 --group_reporting 2>&1) ||
		{ echo "$out" | sed 's/^/#   /'; fail "$name: fio failed"; }
	grep -q "err= 0" <<<"$out" || { echo "$out" | sed 's/^/#   /'; fail "$name: fio reported errors"; }
	# Some buffered, unaligned and zeroing traffic too.
	q dd if=/dev/urandom of="$DEV" bs=3584 seek=7 count=9 conv=notrunc,fsync status=none
	q blkdiscard -o $((size / 2)) -l $((size / 8)) "$DEV"
	q blkdiscard -z -o $((size / 4)) -l 1179648 "$DEV"
	# Zeros, even where a backing layer has data.
	cmp -s -n 1179648 <(dd if="$DEV" bs=4k skip=$((size / 4 / 4096)) count=288 iflag=direct status=none) /dev/zero ||
		fail "$name: the zeroed range does not read as zeros"
	q dd if="$DEV" of="$name.raw" bs=1M status=none
	detach "$DEV"
	out=$(qemu-img check "$img" 2>&1) || { echo "$out" | sed 's/^/#   /'; fail "$name: qemu-img check"; }
	grep -q "leaked" <<<"$out" && { echo "$out" | sed 's/^/#   /'; fail "$name: leaked clusters after a clean detach"; }
	out=$(qemu-img compare -F raw "$img" "$name.raw" 2>&1) ||
		fail "$name: image differs from what the device returned: $out"
	rm -f "$name.raw"
	log "$name: fio verify, check clean, compare equal"
}

q qemu-img create -q -f qcow2 fresh.qcow2 32M
fio_check fresh fresh.qcow2

# raw base <- qcow2 mid <- qcow2 top (the device writes the top only)
truncate -s 16M base.raw
q qemu-io -f raw -c "write -P 0x01 0 16M" base.raw
q qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 24M
q qemu-io -c "write -P 0x02 1M 5M" -c "write -z 12M 3M" -c "write -P 0x03 20M 2M" mid.qcow2
q qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 32M
low=$(cat base.raw mid.qcow2 | sha256sum)
# Writes into part of a cluster fill the rest from the layer below: over
# mid's data, over mid's zero clusters (base's data below them), and past
# base's end.  Checked against bytes built from qemu's reading of the
# chain before vdisk wrote, not from a reading of what it wrote.
q qemu-img convert -O raw top.qcow2 expect.raw
make_pattern part 12288 51
attach top.qcow2
for at in $((1 << 20)) $(((12 << 20) + 20480)) $(((16 << 20) + 512)); do
	q dd if=part of="$DEV" bs=512 seek=$((at / 512)) oflag=direct status=none
	q dd if=part of=expect.raw bs=512 seek=$((at / 512)) conv=notrunc status=none
done
cmp -s "$DEV" expect.raw || fail "overlay: partial-cluster writes read back wrong"
detach "$DEV"
q qemu-img convert -O raw top.qcow2 after.raw
cmp -s after.raw expect.raw || fail "overlay: qemu-img reads the partial-cluster writes differently"
rm -f after.raw expect.raw
fio_check overlay top.qcow2
assert_eq "$(cat base.raw mid.qcow2 | sha256sum)" "$low" "backing layers unchanged"

# compressed clusters are rewritten to new ones (kernel-independent, like
# the shapes below: split among the kernels of one run)
if mine compressed; then
	make_compressible seed.raw $((8 << 20)) 5
	q qemu-img convert -c -O qcow2 seed.raw comp.qcow2
	assert_compressed comp.qcow2
	fio_check compressed comp.qcow2
fi

# More L2 tables than cache slots (4 KiB clusters: a table maps 2 MiB, and
# a 16 KiB cache holds 4 of the 16): writes evict dirty tables, and a
# table that is not cached makes room by writing the dirty ones back.
if mine small-l2-cache; then
	q qemu-img create -q -f qcow2 -o cluster_size=4096 smallcache.qcow2 32M
	fio_check small-l2-cache smallcache.qcow2 --cache-size 16K
fi

small=$((8 << 20))
[ "$VD_PROFILE" = full ] && small=$((64 << 20))
for opts in refcount_bits=1 refcount_bits=64 cluster_size=512 \
	    cluster_size=2M compat=0.10 extended_l2=on \
	    extended_l2=on,cluster_size=2M lazy_refcounts=on; do
	name=shape-${opts//[=,]/-}
	mine "$name" || continue
	q qemu-img create -q -f qcow2 -o "$opts" "$name.qcow2" $small
	q qemu-io -c "write -P 0x44 100k 300k" -c "write -P 0x45 3M 2M" "$name.qcow2"
	[ "$opts" = refcount_bits=1 ] || q qemu-img snapshot -c s "$name.qcow2"
	fio_check "$name" "$name.qcow2"
done
exit 0
