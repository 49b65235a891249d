#!/bin/bash
# Partitioned images made with sfdisk: MBR primaries (at sector 63 and 2048),
# extended with logical partitions, and GPT.  Every pM node must exist at
# attach, with the size sfdisk reports.
. ./lib.sh

check_parts() {
	local img=$1 n=0 start size node
	attach "$img"
	while read -r node start size; do
		n=$((n + 1))
		local num=${node##*[!0-9]}
		assert_blk_size "${DEV}p$num" $((size * 512))
	done < <(sfdisk -q -l -o Device,Start,Sectors,Type "$img" | awk 'NR > 1 && !/Extended/ { print $1, $2, $3 }')
	[ $n -gt 0 ] || fail "no partitions listed for $img"
	log "$img: $n partitions ok"
	detach "$DEV"
}

mbr=$VD_DIR/mbr.img
truncate -s 1G "$mbr"
sfdisk -q "$mbr" <<'SF' || fail "sfdisk mbr"
label: dos
start=63, size=100000, type=83
start=102400, size=200000, type=83
SF
check_parts "$mbr"

ext=$VD_DIR/ext.img
truncate -s 1G "$ext"
sfdisk -q "$ext" <<'SF' || fail "sfdisk extended"
label: dos
start=2048, size=200M, type=83
start=411648, size=700M, type=5
start=413696, size=100M, type=83
start=620544, size=100M, type=82
start=827392, size=200M, type=83
SF
check_parts "$ext"
attach "$ext"
for p in 1 2 5 6 7; do [ -b "${DEV}p$p" ] || fail "${DEV}p$p missing"; done
# The extended partition itself is a 1 KiB placeholder, as with any disk.
assert_blk_size "${DEV}p2" 1024
[ -b "${DEV}p3" ] && fail "${DEV}p3 should not exist"
detach "$DEV"

gpt=$VD_DIR/gpt.img
truncate -s 1G "$gpt"
sfdisk -q "$gpt" <<'SF' || fail "sfdisk gpt"
label: gpt
size=100M, name=efi
size=200M, name=root
size=300M, name=home
size=50M, name=swap
SF
check_parts "$gpt"

# More partitions than max_part's classic minors: extended minors.
many=$VD_DIR/many.img
truncate -s 1G "$many"
{ echo "label: gpt"; for i in $(seq 1 20); do echo "size=10M"; done; } | sfdisk -q "$many" || fail "sfdisk many"
attach "$many"
for p in $(seq 1 20); do assert_blk_size "${DEV}p$p" $((10 << 20)); done
detach "$DEV"

# --no-partscan: no nodes, and the flag is visible.
attach --no-partscan "$gpt"
[ -b "${DEV}p1" ] && fail "--no-partscan still created ${DEV}p1"
assert_eq "$(cat /sys/block/${DEV#/dev/}/vdisk/partscan)" 0
detach "$DEV"
exit 0
