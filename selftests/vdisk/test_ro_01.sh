#!/bin/bash
# Read-only devices: --read-only, a file the caller can only read, and
# toggling with `vdiskctl set`.
. ./lib.sh

img=$VD_DIR/a.img
truncate -s 16M "$img"
make_pattern "$VD_DIR/p" $((1 << 20)) 6
dd if="$VD_DIR/p" of="$img" conv=notrunc status=none
before=$(sha256sum <"$img")

attach --read-only "$img"
assert_eq "$(blockdev --getro "$DEV")" 1 "blockdev --getro"
assert_eq "$(cat /sys/block/${DEV#/dev/}/vdisk/read_only)" 1
cmp -n $((1 << 20)) "$VD_DIR/p" "$DEV" || fail "read-only device reads wrong data"
dd if=/dev/zero of="$DEV" bs=4k count=1 oflag=direct status=none 2>/dev/null &&
	fail "write to a read-only device succeeded"
blkdiscard "$DEV" 2>/dev/null && fail "discard on a read-only device succeeded"
assert_eq "$(sha256sum <"$img")" "$before" "image changed through a read-only device"

# --read-only opens the file read-only: it cannot be made writable later.
expect_fail "opened read-only" "$VDISKCTL" set "$DEV" --read-write
detach "$DEV"

# Toggle a writable attach: read-only, refuse writes, writable again.
attach "$img"
run "$VDISKCTL" set "$DEV" --read-only
assert_eq "$(blockdev --getro "$DEV")" 1
dd if=/dev/zero of="$DEV" bs=4k count=1 oflag=direct status=none 2>/dev/null &&
	fail "write after set --read-only succeeded"
run "$VDISKCTL" set "$DEV" --read-write
assert_eq "$(blockdev --getro "$DEV")" 0
run dd if=/dev/zero of="$DEV" bs=4k count=1 oflag=direct status=none
detach "$DEV"

# A file the caller may only read attaches read-only automatically.
chmod 0444 "$img"
cp "$img" "$VD_DIR/ro.img"
chmod 0444 "$VD_DIR/ro.img"
chattr +i "$VD_DIR/ro.img" 2>/dev/null && at_exit chattr -i "$VD_DIR/ro.img"
if lsattr "$VD_DIR/ro.img" 2>/dev/null | grep -q '^....i'; then
	attach "$VD_DIR/ro.img"
	assert_eq "$(blockdev --getro "$DEV")" 1 "immutable file gives a read-only device"
	expect_fail "read-only|EROFS|Read-only" "$VDISKCTL" set "$DEV" --read-write
	detach "$DEV"
fi
exit 0
