#!/bin/bash
# attach-all / detach-all are idempotent: a second run leaves attached
# devices alone and says so (with a warning if one came from another image),
# detaching what is not attached is not an error; NAMEs select lines, noauto
# lines attach only when named; a busy device fails only its own line.
. ./lib.sh

cd "$VD_DIR"
truncate -s 16M a.img b.img c.img other.img
sfdisk -q a.img <<<'label: dos
,'
tab=$VD_DIR/vdisktab
cat >"$tab" <<TAB
ia   $VD_DIR/a.img
ib   $VD_DIR/b.img   ro
ic   $VD_DIR/c.img   noauto
TAB
A() { "$VDISKCTL" attach-all --tab "$tab" "$@"; }
D() { "$VDISKCTL" detach-all --tab "$tab" "$@"; }
attached() { "$VDISKCTL" list --json | grep -o '"label": "[^"]*"' | sed 's/.*: "//; s/"//' | sort | tr '\n' ' '; }
at_exit "$VDISKCTL" detach-all ia ib ic

out=$(A) || fail "attach-all: $out"
grep -q "^ia: attached /dev/vdisk" <<<"$out" || fail "ia: $out"
grep -q "^ib: attached /dev/vdisk" <<<"$out" || fail "ib: $out"
grep -q "^ic:" <<<"$out" && fail "noauto line attached: $out"
assert_eq "$(attached)" "ia ib " "after the first attach-all"
ia=$(vd_json_field ia name)

# Again: nothing changes, each line says so, exit 0.
out=$(A 2>&1) || fail "second attach-all failed: $out"
grep -q "^ia: already attached as $ia\$" <<<"$out" || fail "second run: $out"
grep -q "^ib: already attached as /dev/vdisk" <<<"$out" || fail "second run: $out"
assert_eq "$(attached)" "ia ib " "after the second attach-all"
assert_eq "$(vd_json_field ia name)" "$ia" "ia moved"

# noauto: only when named; naming attaches just that line.
out=$(A ic) || fail "attach-all ic: $out"
assert_eq "$out" "ic: attached $(vd_json_field ic name)" "attach-all ic"
out=$(A ic ia) || fail "attach-all ic ia: $out"
grep -q "^ic: already attached" <<<"$out" && grep -q "^ia: already attached" <<<"$out" || fail "named rerun: $out"
expect_fail "nosuch: no valid line" A nosuch

# A device attached under a line's name from another image: left alone,
# with a warning naming both files.
run "$VDISKCTL" detach ib >/dev/null
attach --name ib other.img
out=$(A ib 2>"$VD_DIR/err") || fail "attach-all with a mismatch failed: $out"
grep -q "^ib: already attached as $DEV\$" <<<"$out" || fail "mismatch: $out"
grep -q "^vdiskctl: warning: $tab:2: ib is attached as $DEV from $VD_DIR/other.img, not $VD_DIR/b.img\$" "$VD_DIR/err" ||
	fail "no mismatch warning: $(cat "$VD_DIR/err")"
assert_eq "$(vd_json_field ib backing-file)" "$VD_DIR/other.img" "mismatched device replaced"

# A busy device fails its line only; the others are detached (last line
# first), and a second detach-all finds nothing to do.
run mkfs.ext4 -q "${ia}p1"
vd_mount "${ia}p1" "$VD_DIR/m"
start=$(date +%s)
out=$(D 2>"$VD_DIR/err") && fail "detach-all of a mounted device exited 0"
grep -q "^vdiskctl: detach-all ia: .*in use" "$VD_DIR/err" || fail "busy: $(cat "$VD_DIR/err")"
[ $(($(date +%s) - start)) -le 10 ] || fail "busy retry took too long"
grep -q "^ic: detached /dev/vdisk" <<<"$(sed -n 1p <<<"$out")" || fail "not last line first: $out"
grep -q "^ib: detached $DEV\$" <<<"$out" || fail "detach-all: $out"
assert_eq "$(attached)" "ia " "after detach-all with ia busy"
vd_umount "$VD_DIR/m"
out=$(D --lazy) || fail "detach-all --lazy: $out"
assert_eq "$out" "ic: not attached
ib: not attached
ia: detached $ia" "second detach-all"
out=$(D) || fail "third detach-all: $out"
grep -c "not attached" <<<"$out" | grep -qx 3 || fail "third detach-all: $out"

# --lazy on a busy device: detached at its last close.
out=$(A) || fail "attach-all: $out"
ia=$(vd_json_field ia name)
exec 3<"$ia"
out=$(D --lazy ia) || fail "detach-all --lazy ia: $out"
assert_eq "$out" "ia: $ia will be detached at its last close" "lazy"
exec 3<&-
for i in $(seq 100); do [ -e "/sys/block/${ia#/dev/}" ] || break; sleep 0.05; done
[ -e "/sys/block/${ia#/dev/}" ] && fail "lazily detached device survived its last close"
# Names given to detach-all need no line in the table.
out=$(D ib nosuchname) || fail "detach-all names: $out"
assert_eq "$out" "ib: detached $(grep -o '/dev/vdisk[0-9]*' <<<"$out")
nosuchname: not attached" "detach-all NAMEs"
expect_fail "not a device name" D /dev/vdisk0
assert_eq "$(ls -d /sys/block/vdisk* 2>/dev/null | wc -l)" 0 "devices left"

# A bad line of the same name before a valid one does not move the valid
# line's device earlier in detach-all's order: ic is still detached first.
sed -i "1i ic   relative.img" "$tab"
A ia ib ic >/dev/null 2>&1 && fail "attach-all with a bad line exited 0"
assert_eq "$(attached)" "ia ib ic " "attached with a bad line of ic's name"
out=$(D 2>/dev/null) && fail "detach-all with a bad line exited 0"
assert_eq "$(sed 's/ \/dev\/vdisk[0-9]*$//' <<<"$out")" "ic: detached
ib: detached
ia: detached" "detach-all order with a bad line of ic's name"
exit 0
