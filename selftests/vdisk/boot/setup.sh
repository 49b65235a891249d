#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot test, first part: runs in a vm-run --systemd guest before systemd,
# on the overlay root.  Installs vdisk as an administrator would (the
# module with its index, `make install-tools`), builds two images with a
# file system each, and writes the configuration systemd then boots with:
#
#   /etc/vdisktab  qimg: a qcow2 image on the root file system, read-only
#                  simg: a raw image on /scratch, itself an fstab mount
#   /etc/fstab     /scratch, and the two file systems by UUID= and LABEL=
#
# plus the test's units (default.target -> vdisk-boot-test.target): one
# checks the booted system and powers off, one records the journal and the
# verdict at shutdown, after the vdisk units have stopped.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
V=/usr/local/sbin/vdiskctl
out=/vm-out

"$top/tools/testing/guest-install-module" ${VDISK_KO:-}
modprobe vdisk
make -s --no-print-directory -C "$top" install-tools PREFIX=/usr/local
[ -x $V ] && [ -L /lib/systemd/system-generators/vdisk-generator ] &&
	[ -r /lib/systemd/system/vdisk@.service ] && [ -r /lib/udev/rules.d/60-vdisk.rules ] ||
	{ echo "setup: make install-tools did not install everything" >&2; exit 1; }

# A GPT disk with one ext4 partition, holding a file, built through vdisk.
mkimage() {	# RAW LABEL CONTENT
	local raw=$1 label=$2 content=$3 dev
	truncate -s 48M "$raw"
	sfdisk -q "$raw" <<<'label: gpt
,,L'
	dev=$($V attach "$raw")
	mkfs.ext4 -q -F -L "$label" "${dev}p1"
	mkdir -p /tmp/mk
	mount "${dev}p1" /tmp/mk
	echo "$content" >/tmp/mk/hello
	umount /tmp/mk
	blkid -o value -s UUID "${dev}p1"
	$V detach "$dev" >/dev/null
}

mkdir -p /var/lib/vdisk-boot /scratch/images /mnt/vq /mnt/vs
qcontent="qcow2 on the root fs, $(date +%s.%N)"
scontent="raw on /scratch, $(date +%s.%N)"
quuid=$(mkimage /scratch/q.raw vdboot-q "$qcontent")
# Compressed clusters, as in a cloud image.
qemu-img convert -c -f raw -O qcow2 /scratch/q.raw /var/lib/vdisk-boot/q.qcow2
rm /scratch/q.raw
suuid=$(mkimage /scratch/images/s.img vdboot-s "$scontent")
rmmod vdisk	# systemd loads it

cat >/etc/vdisktab <<TAB
# vdisk boot test
qimg   /var/lib/vdisk-boot/q.qcow2   ro
simg   /scratch/images/s.img
TAB
cat >/etc/fstab <<FSTAB
# vdisk boot test (the root is vm-run's overlay)
/dev/vda          /scratch  ext4  defaults  0 0
UUID=$quuid  /mnt/vq   ext4  ro        0 0
LABEL=vdboot-s    /mnt/vs   ext4  defaults  0 2
FSTAB
for v in quuid suuid qcontent scontent; do
	printf '%s=%q\n' "$v" "${!v}"
done >"$out/boot-expect"

# The test's units and settings, in the overlay's /etc.
cat >/etc/systemd/system/vdisk-boot-test.target <<UNIT
[Unit]
Description=vdisk boot test
Requires=sysinit.target
After=sysinit.target
Wants=vdisk-boot-check.service vdisk-boot-record.service
AllowIsolate=yes
UNIT
ln -sf vdisk-boot-test.target /etc/systemd/system/default.target

cat >/etc/systemd/system/vdisk-boot-check.service <<UNIT
[Unit]
Description=vdisk boot test: check the booted system, then power off
After=local-fs.target
SuccessAction=poweroff
FailureAction=poweroff
[Service]
Type=oneshot
ExecStart=/bin/bash $here/check.sh
UNIT

# Stopped after every vdisk unit and /scratch (it is ordered before them),
# while the journal and /vm-out are still there.
cat >/etc/systemd/system/vdisk-boot-record.service <<UNIT
[Unit]
Description=vdisk boot test: record the shutdown
DefaultDependencies=no
RequiresMountsFor=/vm-out
Before=vdisk@qimg.service vdisk@simg.service scratch.mount
Conflicts=umount.target
Before=umount.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/bin/bash $here/shutdown-check.sh
UNIT

# /vm-out (mounted before systemd) stays mounted to the end: without the
# default ordering after local-fs-pre.target, which would make a cycle with
# the record unit, and without a stop job (systemd-shutdown unmounts it).
mkdir -p '/etc/systemd/system/vm\x2dout.mount.d'
cat >'/etc/systemd/system/vm\x2dout.mount.d/vdisk-boot.conf' <<CONF
[Unit]
DefaultDependencies=no
CONF

# Fail fast instead of waiting 90 s, and never sit in an emergency shell.
mkdir -p /etc/systemd/system.conf.d /etc/systemd/system/local-fs.target.d \
	/etc/systemd/journald.conf.d
cat >/etc/systemd/system.conf.d/vdisk-boot.conf <<CONF
[Manager]
DefaultTimeoutStartSec=40s
DefaultTimeoutStopSec=30s
CONF
cat >/etc/systemd/system/local-fs.target.d/vdisk-boot.conf <<CONF
[Unit]
OnFailure=
CONF
ln -sf /dev/null /etc/systemd/system/emergency.service
ln -sf /dev/null /etc/systemd/system/rescue.service
# The journal, live, on vm-run's output.
cat >/etc/systemd/journald.conf.d/vdisk-boot.conf <<CONF
[Journal]
Storage=volatile
ForwardToConsole=yes
TTYPath=/dev/ttyS1
MaxLevelConsole=info
CONF
echo "setup: qimg UUID=$quuid, simg LABEL=vdboot-s; booting systemd"
