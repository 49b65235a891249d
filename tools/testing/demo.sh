#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The `make demo` walk-through, run inside the guest by run-demo.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
ctl=$top/tools/vdiskctl/vdiskctl
"$top/tools/testing/guest-install-module"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

cd /scratch
img=demo.qcow2

say "A fresh 256 MiB qcow2 image, attached as a block device with one command"
show modprobe vdisk
show qemu-img create -q -f qcow2 "$img" 256M
printf '$ vdiskctl attach %s\n' "$img"
dev=$("$ctl" attach "$img")
echo "$dev"

say "Partition it, make an ext4 and a vfat file system, write a file in each"
printf '$ sfdisk %s <<< "start=2048, size=160M, type=83 / type=c"\n' "$dev"
printf 'label: dos\nstart=2048, size=160M, type=83\ntype=c\n' | sfdisk -q "$dev"
show lsblk -o NAME,SIZE,TYPE "$dev"
mkfs.ext4 -q -L demo-root "${dev}p1"
mkfs.vfat -n DEMO-EFI "${dev}p2" >/dev/null
mkdir -p /mnt/a /mnt/b
mount "${dev}p1" /mnt/a && echo "Hello from ext4 inside qcow2" >/mnt/a/hello.txt
mount "${dev}p2" /mnt/b && echo "Hello from vfat inside qcow2" >/mnt/b/HELLO.TXT
cp -a /usr/share/doc/bash /mnt/a/
show df -h /mnt/a /mnt/b
umount /mnt/a /mnt/b
show "$ctl" detach "$dev"

say "qemu-img judges what the kernel wrote"
show qemu-img check "$img"
show qemu-img info "$img"

say "An overlay on it (a backing chain), attached, written, grown online"
show qemu-img create -q -f qcow2 -b "$img" -F qcow2 overlay.qcow2
dev=$("$ctl" attach overlay.qcow2)
show "$ctl" list
show blkid "${dev}p1" "${dev}p2"
show lsblk -o NAME,SIZE,TYPE "$dev"
show mount "${dev}p1" /mnt/a
show mount "${dev}p2" /mnt/b
show cat /mnt/a/hello.txt /mnt/b/HELLO.TXT
echo "Changed in the overlay" >/mnt/a/hello.txt
umount /mnt/b
show "$ctl" resize "$dev" --size 512M
show lsblk -o NAME,SIZE,TYPE "$dev"
umount /mnt/a
show "$ctl" detach "$dev"
show qemu-img check overlay.qcow2
show qemu-img info --backing-chain overlay.qcow2

say "The base image is untouched; the overlay holds the change"
dev=$("$ctl" attach --read-only "$img")
mount -o ro "${dev}p1" /mnt/a; show cat /mnt/a/hello.txt; umount /mnt/a
"$ctl" detach "$dev"
dev=$("$ctl" attach overlay.qcow2)
mount -o ro "${dev}p1" /mnt/a; show cat /mnt/a/hello.txt; umount /mnt/a
"$ctl" detach "$dev"
show "$ctl" list --json
say "Demo finished"
