#!/bin/bash
# Detaching an open device fails with EBUSY and a message naming --lazy;
# --lazy detaches at last close; --autoclear likewise; detach by name and
# `detach --all`.
. ./lib.sh

img=$VD_DIR/a.img
truncate -s 16M "$img"
attach "$img"
exec 3<"$DEV"
expect_fail "lazy" "$VDISKCTL" detach "$DEV"
[ -b "$DEV" ] || fail "busy detach removed the device"
run "$VDISKCTL" detach --lazy "$DEV"
[ -b "$DEV" ] || fail "lazy detach removed an open device"
assert_eq "$(cat /sys/block/${DEV#/dev/}/vdisk/autoclear)" 1 "lazy sets autoclear"
exec 3<&-
for i in $(seq 100); do [ -e "/sys/block/${DEV#/dev/}" ] || break; sleep 0.05; done
[ -e "/sys/block/${DEV#/dev/}" ] && fail "lazy-detached device survived its last close"

# A mounted filesystem keeps the device busy too (partition open).
truncate -s 64M "$img"
sfdisk -q "$img" <<<'label: dos
,'
attach "$img"
run mkfs.ext4 -q -F "${DEV}p1"
vd_mount "${DEV}p1" "$VD_DIR/m"
expect_fail "in use.*lazy" "$VDISKCTL" detach "$DEV"
vd_umount "$VD_DIR/m"
detach "$DEV"

# --autoclear: stays attached until opened and closed once.
attach --autoclear "$img"
sleep 0.2
[ -b "$DEV" ] || fail "autoclear device vanished before anyone opened it"
dd if="$DEV" of=/dev/null bs=4k count=1 status=none
for i in $(seq 100); do [ -e "/sys/block/${DEV#/dev/}" ] || break; sleep 0.05; done
[ -e "/sys/block/${DEV#/dev/}" ] && fail "autoclear device survived its last close"

# Names, and detach --all.
attach --name web "$img"
d1=$DEV
attach --name db --read-only "$img"
d2=$DEV
expect_fail "already in use|exists" "$VDISKCTL" attach --name web "$img"
assert_eq "$(cat /sys/block/${d1#/dev/}/vdisk/name)" web
run "$VDISKCTL" detach web
[ -b "$d1" ] && fail "detach by name did not detach $d1"
attach "$img"
run "$VDISKCTL" detach --all
[ -b "$d2" ] && fail "detach --all left $d2"
[ -z "$("$VDISKCTL" list)" ] || fail "detach --all left devices"
expect_fail "not attached|no device" "$VDISKCTL" detach "$d2"
expect_fail "no device|not attached" "$VDISKCTL" detach nosuchname
exit 0
