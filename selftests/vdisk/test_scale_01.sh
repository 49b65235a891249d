#!/bin/bash
# 256 devices attached at once, each with its own data, then all detached.
. ./lib.sh

n=256
# One process makes all images: forking hundreds of tools is slow under TCG.
python3 - "$VD_DIR" $n <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(f"{d}/{i}.img", "wb") as f:
        f.write(b"device %d" % i)
        f.truncate(1 << 20)
PY
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
