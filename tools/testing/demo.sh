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
fmt=${DEMO_FORMAT:-qcow2}
[ "$fmt" = raw ] && img=/scratch/demo.img

say "Create a 256 MiB $fmt image with qemu-img, and an MBR with two partitions"
show qemu-img create -q -f "$fmt" "$img" 256M
show modprobe vdisk
dev=$("$ctl" attach "$img")
echo "attached as $dev"
printf 'label: dos\nstart=2048, size=160M, type=83\ntype=c\n' | sfdisk -q "$dev"
mkfs.ext4 -q -L demo-root "${dev}p1"
mkfs.vfat -n DEMO-EFI "${dev}p2" >/dev/null
mkdir -p /mnt/a /mnt/b
mount "${dev}p1" /mnt/a && echo "Hello from ext4 inside $fmt" >/mnt/a/hello.txt && umount /mnt/a
mount "${dev}p2" /mnt/b && echo "Hello from vfat inside $fmt" >/mnt/b/HELLO.TXT && umount /mnt/b
"$ctl" detach "$dev"
echo "(partitioned, formatted, one file written to each, detached)"

say "Attach it: one command, partitions appear at once, no offsets to compute"
show "$ctl" attach "$img"
show "$ctl" list
show lsblk -o NAME,SIZE,TYPE,FSTYPE,LABEL "$dev"

say "Mount both partitions and read the files back"
show mount "${dev}p1" /mnt/a
show mount -o ro "${dev}p2" /mnt/b
show cat /mnt/a/hello.txt /mnt/b/HELLO.TXT
show umount /mnt/a /mnt/b

say "Detach, and let qemu-img judge the image"
show "$ctl" detach "$dev"
show "$ctl" list --json
show qemu-img check "$img" || true
show qemu-img info "$img"
say "Demo finished"
