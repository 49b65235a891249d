#!/bin/bash
# The udev rules (packaging/udev/60-vdisk.rules) under a real systemd-udevd:
# /dev/disk/by-vdisk/NAME and NAME-partN, and by-uuid, by-label, by-partuuid
# and by-partlabel for what is on vdisk devices, also when systemd's own
# persistent-storage rules do not cover vdisk; links follow mkfs (watch)
# and go away at detach.
. ./lib.sh

udevd=/lib/systemd/systemd-udevd
[ -x $udevd ] || skip "no systemd-udevd"
rules=/run/udev/rules.d
mkdir -p $rules
cp "$VD_TOP/packaging/udev/60-vdisk.rules" $rules/
at_exit rm -f $rules/60-vdisk.rules $rules/60-persistent-storage.rules
$udevd --daemon >/dev/null 2>&1 || fail "cannot start systemd-udevd"
at_exit udevadm control --exit
settle() { udevadm settle -t 20 || fail "udevadm settle timed out"; }
link() { readlink -f "/dev/disk/$1" 2>/dev/null; }
expect_link() {	# LINK DEV
	[ "$(link "$1")" = "$2" ] || fail "/dev/disk/$1 -> '$(link "$1")', expected $2"
}

cd "$VD_DIR"
truncate -s 40M a.img
sfdisk -q a.img <<<'label: gpt
size=16M, name=vd-alpha
name=vd-beta'
attach --name web:01 a.img
a=$DEV
settle
p1=${a}p1 p2=${a}p2
run mkfs.ext4 -q -F -L vdlabel "$p1"
settle	# the watch rule re-reads p1 when mkfs closes it
uuid=$(blkid -o value -s UUID "$p1")
puuid=$(blkid -o value -s PARTUUID "$p2")
expect_link by-vdisk/web:01 "$a"
expect_link by-vdisk/web:01-part1 "$p1"
expect_link by-vdisk/web:01-part2 "$p2"
expect_link "by-uuid/$uuid" "$p1"
expect_link by-label/vdlabel "$p1"
expect_link "by-partuuid/$puuid" "$p2"
expect_link by-partlabel/vd-beta "$p2"
udevadm info -q property "$p2" | grep -qx 'VDISK_NAME=web:01' || fail "partition lacks VDISK_NAME"

# A device without a name gets no by-vdisk link; `vdiskctl` accepts the link.
truncate -s 8M b.img
attach b.img
b=$DEV
settle
[ -z "$(ls /dev/disk/by-vdisk/ | grep -v '^web:01')" ] || fail "unnamed device got a by-vdisk link: $(ls /dev/disk/by-vdisk)"
assert_eq "$(vd_json_field /dev/disk/by-vdisk/web:01 name)" "$a" "DEV given as the link"
detach "$b"

# Without systemd's persistent-storage rules (which match vdisk only
# through their "vd*" pattern), the vdisk rules still make the links ...
ln -sf /dev/null $rules/60-persistent-storage.rules
udevadm control --reload
run mkfs.ext4 -q -F -L vdlabel2 "$p1"
settle
uuid=$(blkid -o value -s UUID "$p1")
expect_link "by-uuid/$uuid" "$p1"
expect_link by-label/vdlabel2 "$p1"
expect_link "by-partuuid/$puuid" "$p2"
expect_link by-partlabel/vd-alpha "$p1"
# ... and the test would notice if they did not: without both, no by-uuid.
mv $rules/60-vdisk.rules $rules/60-vdisk.rules.off
udevadm control --reload
run mkfs.ext4 -q -F -L vdlabel3 "$p1"
settle
uuid3=$(blkid -o value -s UUID "$p1")
[ -e "/dev/disk/by-uuid/$uuid3" ] && fail "by-uuid link without any rule for vdisk: the check above proves nothing"
mv $rules/60-vdisk.rules.off $rules/60-vdisk.rules
at_exit rm -f $rules/60-vdisk.rules.off
udevadm control --reload

# Detach: the links go.
detach "$a"
settle
for l in by-vdisk/web:01 by-vdisk/web:01-part1 "by-partuuid/$puuid" by-label/vdlabel2; do
	[ -e "/dev/disk/$l" ] && fail "/dev/disk/$l survived the detach"
done
exit 0
