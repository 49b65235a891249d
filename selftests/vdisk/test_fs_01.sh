#!/bin/bash
# The seeds' workflow: partition, mkfs.ext4 and vfat, mount, write, umount,
# detach; then check the filesystem read back straight from the image file.
. ./lib.sh

img=$VD_DIR/disk.img
truncate -s 256M "$img"
sfdisk -q "$img" <<'SF' || fail sfdisk
label: dos
start=2048, size=160M, type=83
type=c
SF
attach "$img"
run mkfs.ext4 -q -F "${DEV}p1"
run mkfs.vfat "${DEV}p2" >/dev/null
vd_mount "${DEV}p1" "$VD_DIR/m1"
vd_mount "${DEV}p2" "$VD_DIR/m2"
make_pattern "$VD_DIR/m1/data" $((8 << 20)) 5
cp -a /usr/include/linux/netfilter "$VD_DIR/m1/tree"
echo "vfat hello" >"$VD_DIR/m2/HELLO.TXT"
sum1=$(sha256sum <"$VD_DIR/m1/data")
vd_umount "$VD_DIR/m1"
vd_umount "$VD_DIR/m2"
detach "$DEV"

# The partition, cut out of the file, is a clean ext4 with our data.
dd if="$img" of="$VD_DIR/p1.img" bs=1M skip=1 count=160 status=none
e2fsck -fn "$VD_DIR/p1.img" >"$VD_DIR/fsck.log" 2>&1 || { cat "$VD_DIR/fsck.log"; fail "e2fsck found errors"; }
got=$(debugfs -R "cat /data" "$VD_DIR/p1.img" 2>/dev/null | sha256sum)
assert_eq "$got" "$sum1" "file content inside the image"

# And it mounts again through a fresh attach.
attach "$img"
vd_mount "${DEV}p1" "$VD_DIR/m1" -o ro
assert_eq "$(sha256sum <"$VD_DIR/m1/data")" "$sum1" "data after re-attach"
diff -r /usr/include/linux/netfilter "$VD_DIR/m1/tree" >/dev/null || fail "tree differs after re-attach"
vd_mount "${DEV}p2" "$VD_DIR/m2" -o ro
assert_eq "$(cat "$VD_DIR/m2/HELLO.TXT")" "vfat hello"
exit 0
