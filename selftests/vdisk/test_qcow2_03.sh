#!/bin/bash
# Partitions inside qcow2 images appear as pM nodes, and an ext4 inside a
# compressed, cloud-style image mounts read-only with its files intact.
. ./lib.sh

cd "$VD_DIR"
# Build a partitioned disk with a filesystem as a raw file, then let
# qemu-img turn it into a compressed qcow2, as cloud images are made.
truncate -s 96M disk.raw
sfdisk -q disk.raw <<'SF' || fail sfdisk
label: gpt
size=16M, name=efi
name=root
SF
attach disk.raw
run mkfs.vfat "${DEV}p1" >/dev/null
run mkfs.ext4 -q -L cloudroot "${DEV}p2"
vd_mount "${DEV}p2" m
cp -a /usr/include/linux/netfilter m/include
python3 -c 'import os; open("m/big", "wb").write(os.urandom(2 << 20))'
( cd m && find . -type f -print0 | sort -z | xargs -0 sha256sum ) >sums
vd_umount m
detach "$DEV"

for ct in zlib zstd; do
	qemu-img convert -c -O qcow2 -o compression_type=$ct disk.raw cloud-$ct.qcow2 || fail convert
	attach cloud-$ct.qcow2
	assert_eq "$(vd_json_field "$DEV" format)" qcow2
	assert_blk_size "${DEV}p1" $((16 << 20))
	[ -b "${DEV}p2" ] || fail "${DEV}p2 missing"
	vd_mount "${DEV}p2" m -o ro
	( cd m && sha256sum -c --quiet ../sums ) || fail "files differ inside the $ct image"
	vd_umount m
	detach "$DEV"
done
exit 0
