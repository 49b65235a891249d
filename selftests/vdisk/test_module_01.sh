#!/bin/bash
# Module unload: refused while a device is open, detaches idle devices
# cleanly; the module autoloads when vdiskctl asks for the family; the
# max_devices parameter is honoured.
. ./lib.sh

img=$VD_DIR/a.img
truncate -s 16M "$img"
attach "$img"
exec 3<"$DEV"
rmmod vdisk 2>/dev/null && fail "rmmod succeeded with $DEV open"
exec 3<&-
attach "$img"
run rmmod vdisk
[ -d /sys/module/vdisk ] && fail "module still loaded"
[ -e /sys/block/vdisk0 ] && fail "devices survived module unload"

# Autoload through the genetlink family alias.
run "$VDISKCTL" list
[ -d /sys/module/vdisk ] || fail "vdiskctl did not autoload the module"

run rmmod vdisk
run modprobe vdisk max_devices=2 max_part=7
assert_eq "$(cat /sys/module/vdisk/parameters/max_devices)" 2
attach "$img"
attach "$img"
expect_fail "max_devices" "$VDISKCTL" attach "$img"
expect_fail "max_devices|below" "$VDISKCTL" attach --index 5 "$img"
run "$VDISKCTL" detach --all
run rmmod vdisk
modprobe vdisk max_part=0 2>/dev/null && fail "max_part=0 accepted"
modprobe vdisk max_devices=100000 2>/dev/null && fail "max_devices=100000 with max_part=15 accepted"
run modprobe vdisk
# A requested index.
attach --index 7 "$img"
assert_eq "$DEV" /dev/vdisk7
expect_fail "exists" "$VDISKCTL" attach --index 7 "$img"
detach "$DEV"
exit 0
