#!/bin/bash
# The seeds' resize workflow: truncate the image bigger, `vdiskctl resize`,
# and resize2fs grows the mounted ext4 into the new space.
. ./lib.sh

img=$VD_DIR/a.img
truncate -s 128M "$img"
attach "$img"
run mkfs.ext4 -q -F "$DEV"
vd_mount "$DEV" "$VD_DIR/m"
before=$(df -k --output=size "$VD_DIR/m" | tail -n1)

truncate -s 512M "$img"
"$VDISKCTL" monitor --count 1 >"$VD_DIR/events" &
mon=$!
sleep 0.5
run "$VDISKCTL" resize "$DEV"
assert_blk_size "$DEV" $((512 << 20))
run resize2fs "$DEV" >/dev/null
after=$(df -k --output=size "$VD_DIR/m" | tail -n1)
[ "$after" -gt $((before * 3)) ] || fail "ext4 did not grow: $before -> $after KiB"
wait $mon
grep -q "^resize $DEV size=$((512 << 20))" "$VD_DIR/events" || fail "no resize event: $(cat "$VD_DIR/events")"

# Shrinking the file shrinks the device.
vd_umount "$VD_DIR/m"
truncate -s 256M "$img"
run "$VDISKCTL" resize "$DEV"
assert_blk_size "$DEV" $((256 << 20))
# With an offset beyond the new end, resize fails and keeps the old size.
detach "$DEV"
attach --offset 200M "$img"
truncate -s 100M "$img"
expect_fail "offset" "$VDISKCTL" resize "$DEV"
assert_blk_size "$DEV" $((56 << 20))
# Reads past the end of a file that shrank under the device are zeros.
cmp -s -n 4096 <(dd if="$DEV" bs=4k count=1 iflag=direct status=none) /dev/zero ||
	fail "bytes past EOF do not read as zeros"
exit 0
