#!/bin/bash
# 256 devices attached at once, each with its own data, then all detached.
. ./lib.sh

n=256
truncate -s 1M "$VD_DIR/base.img"
for i in $(seq 0 $((n - 1))); do
	cp --sparse=always "$VD_DIR/base.img" "$VD_DIR/$i.img"
	printf 'device %d' "$i" | dd of="$VD_DIR/$i.img" conv=notrunc status=none
done
declare -a devs
for i in $(seq 0 $((n - 1))); do
	d=$("$VDISKCTL" attach "$VD_DIR/$i.img") || fail "attach #$i failed"
	devs[$i]=$d
	VD_DEVICES+=("$d")
done
assert_eq "$("$VDISKCTL" list | tail -n +2 | wc -l)" $n "devices listed"
for i in 0 17 128 255; do
	got=$(dd if="${devs[$i]}" bs=512 count=1 status=none | tr -d '\0')
	assert_eq "$got" "device $i" "content of ${devs[$i]}"
done
run "$VDISKCTL" detach --all
assert_eq "$(ls -d /sys/block/vdisk* 2>/dev/null | wc -l)" 0 "devices left"
exit 0
