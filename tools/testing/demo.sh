#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The `make demo` walk-through, run inside the guest by run-demo.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
ctl=$top/tools/vdiskctl/vdiskctl
"$top/tools/testing/guest-install-module"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

img=/scratch/demo.qcow2
raw=/scratch/demo.raw

say "Build a 256 MiB disk with an MBR: an ext4 and a vfat partition, a file in each"
show modprobe vdisk
truncate -s 256M "$raw"
dev=$("$ctl" attach "$raw")
echo "attached $raw as $dev"
printf 'label: dos\nstart=2048, size=160M, type=83\ntype=c\n' | sfdisk -q "$dev"
mkfs.ext4 -q -L demo-root "${dev}p1"
mkfs.vfat -n DEMO-EFI "${dev}p2" >/dev/null
mkdir -p /mnt/a /mnt/b
mount "${dev}p1" /mnt/a && echo "Hello from ext4 inside qcow2" >/mnt/a/hello.txt && umount /mnt/a
mount "${dev}p2" /mnt/b && echo "Hello from vfat inside qcow2" >/mnt/b/HELLO.TXT && umount /mnt/b
"$ctl" detach "$dev"
show qemu-img convert -c -O qcow2 "$raw" "$img"
show qemu-img info "$img"

say "Attach the compressed qcow2: one command, partitions appear at once, no offsets to compute"
printf '$ vdiskctl attach %s\n' "$img"
dev=$("$ctl" attach "$img")
echo "$dev"
show "$ctl" list
show lsblk -o NAME,SIZE,TYPE "$dev"
show blkid "${dev}p1" "${dev}p2"

say "Mount both partitions and read the files back"
show mount -o ro "${dev}p1" /mnt/a
show mount -o ro "${dev}p2" /mnt/b
show cat /mnt/a/hello.txt /mnt/b/HELLO.TXT
show umount /mnt/a /mnt/b

say "Detach, and let qemu-img judge the image"
show "$ctl" detach "$dev"
show "$ctl" list --json
show qemu-img check "$img"
say "Demo finished"
