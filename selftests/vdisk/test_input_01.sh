#!/bin/bash
# Bad input gets a clear one-line error and leaves nothing attached.
. ./lib.sh

img=$VD_DIR/a.img
truncate -s 16M "$img"
printf 'x%.0s' $(seq 100) >"$VD_DIR/tiny.img"

expect_fail "^vdiskctl: attach $VD_DIR: .*directory" "$VDISKCTL" attach "$VD_DIR"
expect_fail "^vdiskctl: attach $VD_DIR/missing.img: No such file" "$VDISKCTL" attach "$VD_DIR/missing.img"
expect_fail "^vdiskctl: attach .*tiny.img: .*sector" "$VDISKCTL" attach "$VD_DIR/tiny.img"
expect_fail "^vdiskctl: attach .*a.img: .*offset" "$VDISKCTL" attach --offset 32M "$img"
expect_fail "^vdiskctl: attach .*a.img: .*offset" "$VDISKCTL" attach --offset 16M "$img"
expect_fail "format" "$VDISKCTL" attach --format vmdk "$img"
expect_fail "sector size" "$VDISKCTL" attach --sector-size 1000 "$img"
expect_fail "sector size" "$VDISKCTL" attach --sector-size 8192 "$img"
expect_fail "size|number|invalid" "$VDISKCTL" attach --offset 12Q "$img"
expect_fail "negative|invalid" "$VDISKCTL" attach --offset -5 "$img"
expect_fail "cache" "$VDISKCTL" attach --cache sometimes "$img"
# Names are checked before the image is opened or the kernel asked.
expect_fail "invalid name 'bad/name': letters, digits" "$VDISKCTL" attach --name "bad/name" "$img"
expect_fail "invalid name 'a b': letters, digits" "$VDISKCTL" attach --name "a b" "$img"
expect_fail "invalid name 'vdisk3': vdiskN names a device by index" "$VDISKCTL" attach --name vdisk3 "$img"
expect_fail "invalid name '': empty name" "$VDISKCTL" attach --name "" "$img"
expect_fail "unknown command" "$VDISKCTL" frobnicate
expect_fail "unknown option '-X'" "$VDISKCTL" attach --autoclear -Xr "$img"
# Inside a cluster, getopt has not moved past it: not the '--name' before.
expect_fail "unknown option '-X'" "$VDISKCTL" attach --name=foo -Xr "$img"
expect_fail "option '--read-only' takes no argument" "$VDISKCTL" attach --read-only=1 -r "$img"
# cache=none where direct I/O is impossible (tmpfs) is an error, not a
# silent fallback; the default falls back and says so in list.
mkdir -p /tmp/vd-input && cp "$img" /tmp/vd-input/t.img
at_exit rm -rf /tmp/vd-input
if ! dd if=/tmp/vd-input/t.img of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null; then
	expect_fail "direct I/O" "$VDISKCTL" attach --cache none /tmp/vd-input/t.img
	attach /tmp/vd-input/t.img
	assert_eq "$(vd_json_field "$DEV" cache)" writeback "fallback mode"
	detach "$DEV"
fi
# Sector sizes: 4096-byte logical sectors, and an offset that does not fit.
attach --sector-size 4096 "$img"
assert_eq "$(blockdev --getss "$DEV")" 4096 "logical sector size"
assert_eq "$(vd_json_field "$DEV" sector)" 4096
detach "$DEV"
for ss in 1024 2048; do
	attach -b $ss "$img"
	assert_eq "$(blockdev --getss "$DEV")" $ss
	detach "$DEV"
done

# Raw netlink: things vdiskctl would never send.
g() { python3 "$VD_GENL" "$@"; }
expect_fail "FD.*required|required" g add PATH=/x
expect_fail "FLAGS has unknown bits 0x100" g add FD=0 FLAGS=0x100
expect_fail "FORMAT 9 is unknown" g add FD=0 FORMAT=9
expect_fail "CACHE 7 is unknown" g add FD=0 CACHE=7
expect_fail "DEL_FLAGS has unknown bits" g del INDEX=0 DEL_FLAGS=0x2
expect_fail "SET_FLAGS has unknown bits" g set INDEX=0 SET_FLAGS=0x40
expect_fail "INDEX or NAME" g del
expect_fail "not attached" g get INDEX=77
expect_fail "open file descriptor" g add FD=1000
expect_fail "not a regular file" g add FD=3 3</dev/null
expect_fail "not open for reading" g add FD=3 3>>"$img"
# Read-write but appending: every write would land at the end of the file.
expect_fail "open for appending" genl_add_open "$img" "O_RDWR|O_APPEND"
# The kernel checks names itself, whoever asks.
expect_fail "letters, digits" g add FD=3 "NAME=a b" 3<"$img"
expect_fail "letters, digits" g add FD=3 NAME=vdisk3 3<"$img"
# A Latin-1 letter in a name (the kernel's isalnum() takes it).
expect_fail "letters, digits" python3 -c '
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[2]))
import vdisk_genl as g
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    g.Genl().cmd("ADD", g.enc("FD", fd) + g.nla(g.C["VDISK_ATTR_NAME"], b"caf\xe9\0"))
except g.NetlinkError as e:
    print("error:", e.msg)
    sys.exit(1)
print("attached")' "$img" "$VD_GENL"

# vdiskctl runs out of memory reading ADD's reply (the snapshot's name),
# after the kernel attached: it detaches the device again.
run qemu-img create -q -f qcow2 "$VD_DIR/s.qcow2" 16M
run qemu-img snapshot -c vd-nomem "$VD_DIR/s.qcow2"
[ nomem_preload.so -nt nomem_preload.c ] || fail "nomem_preload.so not built (make tools)"
out=$(LD_PRELOAD=$PWD/nomem_preload.so NOMEM_STRDUP=vd-nomem \
	"$VDISKCTL" attach --snapshot vd-nomem "$VD_DIR/s.qcow2" 2>&1) &&
	fail "attach passed without memory for its reply: $out"
grep -q "s.qcow2: Cannot allocate memory" <<<"$out" || fail "no ENOMEM: $out"
grep -Eq "s.qcow2: vdisk[0-9]+ was attached; detached it again" <<<"$out" ||
	fail "not detached: $out"

# Nothing was left half-attached by any of the above.
assert_eq "$(ls -d /sys/block/vdisk* 2>/dev/null | wc -l)" 0 "devices after bad input"
exit 0
