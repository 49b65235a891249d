#!/bin/bash
# `vdiskctl monitor` sees attach, change, resize and detach events, and
# sysfs shows every attribute udev rules rely on.
. ./lib.sh

img=$VD_DIR/a.img
truncate -s 16M "$img"
"$VDISKCTL" monitor --count 4 >"$VD_DIR/ev" &
mon=$!
sleep 0.5
attach --name evt -o 512 "$img"
run "$VDISKCTL" set "$DEV" --read-only
# A resize that changes nothing sends no event.
run "$VDISKCTL" resize "$DEV"
truncate -s 32M "$img"
run "$VDISKCTL" resize "$DEV"
detach "$DEV"
wait $mon || fail "monitor exited with an error"
mapfile -t ev <"$VD_DIR/ev"
[[ ${ev[0]} == "attach $DEV name=evt "*"backing-file=$img"* ]] || fail "attach event: ${ev[0]}"
[[ ${ev[1]} == "change $DEV "*"ro=1"* ]] || fail "change event: ${ev[1]}"
[[ ${ev[2]} == "resize $DEV "*"size=$(((32 << 20) - 512))"* ]] || fail "resize event: ${ev[2]}"
[[ ${ev[3]} == "detach $DEV name=evt"* ]] || fail "detach event: ${ev[3]}"

# JSON events are one object per line.
"$VDISKCTL" monitor --json --count 2 >"$VD_DIR/evj" &
mon=$!
sleep 0.5
attach "$img"
detach "$DEV"
wait $mon
python3 - "$DEV" "$VD_DIR/evj" <<'PY' || fail "bad JSON events: $(cat "$VD_DIR/evj")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[2])]
assert [e["event"] for e in ev] == ["attach", "detach"], ev
assert all(e["name"] == sys.argv[1] for e in ev), ev
# An attach event does not carry the opener count: null, not 0.
assert ev[0]["openers"] is None, ev
PY

# sysfs attributes.
attach --name sysfs-test -o 1024 -s 4M --cache writeback --no-partscan "$img"
s=/sys/block/${DEV#/dev/}/vdisk
assert_eq "$(cat $s/backing_file)" "$img"
assert_eq "$(cat $s/offset)" 1024
assert_eq "$(cat $s/sizelimit)" $((4 << 20))
assert_eq "$(cat $s/format)" raw
assert_eq "$(cat $s/read_only)" 0
assert_eq "$(cat $s/partscan)" 0
assert_eq "$(cat $s/autoclear)" 0
assert_eq "$(cat $s/cache)" writeback
assert_eq "$(cat $s/name)" sysfs-test
run "$VDISKCTL" set "$DEV" --autoclear --cache writethrough
assert_eq "$(cat $s/autoclear)" 1
assert_eq "$(cat $s/cache)" writethrough
# Write-through has no volatile cache to flush.
assert_eq "$(cat /sys/block/${DEV#/dev/}/queue/write_cache)" "write through"
run "$VDISKCTL" set "$DEV" --no-autoclear --cache writeback
assert_eq "$(cat /sys/block/${DEV#/dev/}/queue/write_cache)" "write back"

# A user's queue tuning survives a change of cache mode or read-only flag
# (6.1's setters used to put vdisk's own values back).
q=/sys/block/${DEV#/dev/}/queue
[ "$(cat $q/discard_max_bytes)" -gt $((1 << 20)) ] || fail "discard maximum: $(cat $q/discard_max_bytes)"
echo 64 >$q/max_sectors_kb
echo $((1 << 20)) >$q/discard_max_bytes
echo "write through" >$q/write_cache
echo 1 >$q/rotational
tuned() {
	assert_eq "$(cat $q/max_sectors_kb)" 64 "max_sectors_kb $1"
	assert_eq "$(cat $q/write_cache)" "write through" "write_cache $1"
	assert_eq "$(cat $q/rotational)" 1 "rotational $1"
}
run "$VDISKCTL" set "$DEV" --cache none
run "$VDISKCTL" set "$DEV" --cache writeback
tuned "after cache changes"
assert_eq "$(cat $q/discard_max_bytes)" $((1 << 20)) "discard_max_bytes after cache changes"
run "$VDISKCTL" set "$DEV" --read-only
assert_eq "$(cat $q/discard_max_bytes)" 0 "discard_max_bytes read-only"
run "$VDISKCTL" set "$DEV" --read-write
tuned "after read-only and back"
detach "$DEV"
exit 0
