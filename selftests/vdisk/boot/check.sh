#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot test, second part: runs as a unit once local-fs.target is reached.
# The fstab file systems inside the vdisk images must be mounted from the
# right devices and readable, the stable names in place, the vdisk units
# active.  Prints KTAP-ish lines to /vm-out/boot-check.log and the verdict
# to /vm-out/boot-check.status; the unit then powers off.
set -u
out=/vm-out
V=/usr/local/sbin/vdiskctl
. "$out/boot-expect"
log=$out/boot-check.log
fails=0
ok() { echo "ok - $*" >>"$log"; }
bad() { echo "not ok - $*" >>"$log"; fails=$((fails + 1)); }
check() {	# DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@" >>"$log.cmd" 2>&1; then ok "$d"; else bad "$d"; fi
}
: >"$log"

for u in vdisk@qimg.service vdisk@simg.service; do
	check "$u is active" systemctl is-active --quiet "$u"
done
$V list >>"$log.cmd" 2>&1

# name -> device, mount point, expected content, UUID
verify() {
	local name=$1 mnt=$2 want=$3 uuid=$4 src dev
	src=$(findmnt -n -o SOURCE "$mnt")
	dev=$(readlink -f "/dev/disk/by-vdisk/$name" 2>/dev/null)
	check "/dev/disk/by-vdisk/$name is a vdisk" test -b "$dev" -a "${dev#/dev/vdisk}" != "$dev"
	check "/dev/disk/by-vdisk/$name-part1 is ${dev}p1" \
		test "$(readlink -f "/dev/disk/by-vdisk/$name-part1")" = "${dev}p1"
	check "/dev/disk/by-uuid/$uuid is ${dev}p1" \
		test "$(readlink -f "/dev/disk/by-uuid/$uuid")" = "${dev}p1"
	check "$mnt is mounted from ${dev}p1 (got '$src')" test "$src" = "${dev}p1"
	check "$mnt/hello reads back" test "$(cat "$mnt/hello" 2>&1)" = "$want"
}
verify qimg /mnt/vq "$qcontent" "$quuid"
verify simg /mnt/vs "$scontent" "$suuid"
check "/dev/disk/by-label/vdboot-s exists" test -b /dev/disk/by-label/vdboot-s
check "/mnt/vs is writable" sh -c 'echo written >/mnt/vs/new && sync'
check "/mnt/vq is read-only" sh -c '! touch /mnt/vq/x 2>/dev/null'
# The generator's ordering, as systemd loaded it.
check "vdisk@qimg is before local-fs-pre.target" \
	sh -c 'systemctl show -p Before vdisk@qimg.service | grep -qw local-fs-pre.target'
check "vdisk@qimg is after systemd-remount-fs.service (the root writable)" \
	sh -c 'systemctl show -p After vdisk@qimg.service | grep -qw systemd-remount-fs.service'
check "vdisk@simg requires /scratch" \
	sh -c 'systemctl show -p RequiresMountsFor vdisk@simg.service | grep -q /scratch/images/s.img'
check "mnt-vs.mount is after vdisk@simg" \
	sh -c 'systemctl show -p After mnt-vs.mount | grep -qw vdisk@simg.service'
check "no failed units" sh -c '[ -z "$(systemctl list-units --failed --plain --no-legend)" ]'
systemctl list-units --failed --plain --no-legend >>"$log.cmd" 2>&1
systemd-analyze critical-chain mnt-vq.mount mnt-vs.mount >>"$log.cmd" 2>&1

echo $((fails ? 1 : 0)) >"$out/boot-check.status"
sync
exit 0
