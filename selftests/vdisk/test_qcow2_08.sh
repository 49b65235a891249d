#!/bin/bash
# Images past 4 GiB, without writing gigabytes (sparse files):
#  - a qcow2 image whose first 4160 MiB are preallocated (metadata only)
#    and whose virtual size is then doubled: writes in place past 4 GiB of
#    file, and allocating writes that grow the file, so that the detach
#    trims its unused tail.  After the detach qemu-img check is clean and
#    every write reads back, through qemu-io and through a new attach.
#    (The tail trim once masked its start with 32 bits and punched from
#    the allocation end modulo 4 GiB to the end of the file.)
#  - a raw image of 6 GiB attached at an offset past 4 GiB: the device
#    and the file agree on both sides of the file's 4 GiB mark.
. ./lib.sh

cd "$VD_DIR"
q() { "$@" >/dev/null || fail "$*"; }
vd_need_module

# pattern BYTE: 64 KiB of it on stdout.
pattern() { head -c 65536 /dev/zero | tr '\0' "\\$(printf '%03o' "$1")"; }

mib=4160
q qemu-img create -q -f qcow2 -o preallocation=metadata big.qcow2 ${mib}M
q qemu-img resize -q big.qcow2 $((2 * mib))M
# Device offsets (bytes): the first cluster, the last preallocated one
# (past 4 GiB of file), new clusters just past the preallocated part and
# at the end of the device.
offs=(0 $((mib * 1048576 - 65536)) $((mib * 1048576 + 196608)) $((2 * mib * 1048576 - 131072)))
attach --cache none big.qcow2
for i in "${!offs[@]}"; do
	pattern $((0x40 + i)) >p$i
	q dd if=p$i of="$DEV" bs=64k seek=$((offs[i] / 65536)) oflag=direct conv=notrunc status=none
done
q blockdev --flushbufs "$DEV"
detach "$DEV"
out=$(qemu-img check big.qcow2 2>&1) || { echo "$out" | head -n 20 | sed 's/^/#   /'; fail "qemu-img check after detach"; }
grep -q "leaked" <<<"$out" && { echo "$out" | head -n 20 | sed 's/^/#   /'; fail "leaked clusters after a clean detach"; }
host=$(qemu-img map --output=json big.qcow2 | python3 -c '
import json, sys
want = int(sys.argv[1])
for e in json.load(sys.stdin):
    if e["start"] <= want < e["start"] + e["length"] and "offset" in e:
        print(e["offset"] + want - e["start"])' "${offs[1]}")
[ -n "$host" ] && [ "$host" -ge $((4 << 30)) ] ||
	fail "the test image keeps its data below 4 GiB of file (host offset '$host')"
for i in "${!offs[@]}"; do
	qemu-io -f qcow2 -c "read -P $((0x40 + i)) ${offs[i]} 65536" big.qcow2 >/dev/null ||
		fail "qemu-io: write #$i at ${offs[i]} does not read back"
done
attach --cache none --read-only big.qcow2
for i in "${!offs[@]}"; do
	dd if="$DEV" bs=64k skip=$((offs[i] / 65536)) count=1 iflag=direct status=none | cmp -s - p$i ||
		fail "device: write #$i at ${offs[i]} does not read back"
done
detach "$DEV"
log "qcow2: in-place and allocating writes past 4 GiB of file, check clean, read back"
rm -f big.qcow2

# raw: 6 GiB sparse, the device starting at 4 GiB + 1 MiB of the file.
truncate -s 6G big.raw
start=$(((4 << 30) + (1 << 20)))
attach --offset $start --cache none big.raw
assert_eq "$(blockdev --getsize64 "$DEV")" $(((6 << 30) - start)) "raw device size"
pattern $((0x5a)) >pr
q dd if=pr of="$DEV" bs=64k seek=16 oflag=direct conv=notrunc status=none
dd if=big.raw bs=64k skip=$(((start >> 16) + 16)) count=1 status=none | cmp -s - pr ||
	fail "raw: the file does not hold the device's write at offset $start + 1 MiB"
detach "$DEV"
# A device that spans the mark (from 4 GiB - 1 MiB) reads that write at
# 3 MiB, and its own write below the mark lands there in the file.
attach --offset $(((4 << 30) - (1 << 20))) big.raw
dd if="$DEV" bs=64k skip=48 count=1 iflag=direct status=none | cmp -s - pr ||
	fail "raw: the device does not read the file's data past the 4 GiB mark"
pattern $((0x5b)) >pr2
q dd if=pr2 of="$DEV" bs=64k seek=8 oflag=direct conv=notrunc status=none
dd if=big.raw bs=64k skip=$((((4 << 30) - (1 << 20) + (512 << 10)) >> 16)) count=1 status=none | cmp -s - pr2 ||
	fail "raw: the file does not hold the device's write below the 4 GiB mark"
detach "$DEV"
log "raw: offsets past 4 GiB of file agree with the device"
exit 0
