#!/bin/bash
# /etc/vdisktab parsing: every option reaches the device as attach's flag
# would; bad lines (unknown option, bad value, bad or duplicate name,
# relative path, wrong field count, missing image) are reported with their
# line numbers and do not stop the other lines; the exit status says so.
. ./lib.sh

cd "$VD_DIR"
truncate -s 16M a.img b.img c.img
sfdisk -q a.img <<<'label: dos
,'
qemu-img create -q -f qcow2 q.qcow2 8M
qemu-io -c "write -P 0x5a 0 64k" q.qcow2 >/dev/null
qemu-img snapshot -c s1 q.qcow2
qemu-io -c "write -P 0x11 0 64k" q.qcow2 >/dev/null

tab=$VD_DIR/vdisktab
cat >"$tab" <<TAB
# NAME  IMAGE  OPTIONS       (a comment line)

tab.a   $VD_DIR/a.img
tab-b   $VD_DIR/b.img  ro,offset=1M,sizelimit=4M,noparts,cache=writeback  # comment
bad1    relative.img
bad2    $VD_DIR/c.img  frobnicate
bad3    $VD_DIR/c.img  offset
bad4    $VD_DIR/c.img  cache=sometimes
vdisk7  $VD_DIR/c.img
tab.a   $VD_DIR/c.img
.dot    $VD_DIR/c.img
bad5    $VD_DIR/c.img  ro extra
bad6
bad7    $VD_DIR/missing.img
tab:c	$VD_DIR/c\\056img	sector-size=4096,format=raw,defaults
tab_q   $VD_DIR/q.qcow2  snapshot=s1,cache-size=256K
bad8    $VD_DIR/c.img  ro,,noparts
bad9    $VD_DIR/c.img  sector-size=1000
TAB

# --check: needs no kernel, prints the good lines as attach commands.
out=$("$VDISKCTL" attach-all --tab "$tab" --check 2>"$VD_DIR/err") && fail "--check passed a bad table"
grep -q "^tab-b: vdiskctl attach --name tab-b --read-only --no-partscan --offset 1048576 --sizelimit 4194304 --cache writeback $VD_DIR/b.img\$" <<<"$out" ||
	fail "--check output: $out"
grep -q "^tab:c: .*--sector-size 4096 $VD_DIR/c.img\$" <<<"$out" || fail "octal escape: $out"

out=$("$VDISKCTL" attach-all --tab "$tab" 2>"$VD_DIR/err") && fail "attach-all with bad lines exited 0"
cat "$VD_DIR/err" | sed 's/^/# stderr: /'
want() {	# LINE REGEX: that line is reported
	grep -Eq "^vdiskctl: attach-all $tab:$1: .*$2" "$VD_DIR/err" || fail "line $1 not reported as /$2/"
}
want 5 "absolute path"
want 6 "unknown option 'frobnicate'"
want 7 "option 'offset' needs a value"
want 8 "invalid cache mode 'sometimes'"
want 9 "invalid name 'vdisk7'"
want 10 "duplicate name 'tab.a' \\(first on line 3\\)"
want 11 "invalid name '.dot'"
want 12 "too many fields"
want 13 "missing IMAGE"
want 14 "missing.img: No such file"
want 17 "empty option"
want 18 "sector size"
# Nothing else complained, and the good lines were all attached.
assert_eq "$(grep -c . "$VD_DIR/err")" 12 "error lines"
for n in tab.a tab-b tab:c tab_q; do
	grep -q "^$n: attached /dev/vdisk[0-9]*\$" <<<"$out" || fail "$n not attached: $out"
	dev=$(readlink -f "$(grep "^$n: attached" <<<"$out" | cut -d' ' -f3)")
	VD_DEVICES+=("$dev")
	assert_eq "$(cat /sys/block/${dev#/dev/}/vdisk/name)" "$n" "name of $dev"
done

f() { vd_json_field "$1" "$2"; }
assert_eq "$(f tab.a partscan)" true
assert_eq "$(f tab.a ro)" false
assert_eq "$(f tab-b ro)" true
assert_eq "$(f tab-b offset)" 1048576
assert_eq "$(f tab-b sizelimit)" 4194304
assert_eq "$(f tab-b size)" 4194304
assert_eq "$(f tab-b partscan)" false
assert_eq "$(f tab-b cache)" writeback
assert_eq "$(f tab:c sector)" 4096
assert_eq "$(f tab:c format)" raw
assert_eq "$(f tab:c backing-file)" "$VD_DIR/c.img"
assert_eq "$(f tab_q format)" qcow2
assert_eq "$(f tab_q snapshot)" s1
assert_eq "$(f tab_q ro)" true
assert_eq "$(f tab_q cache-size)" 262144
# The snapshot's data, not the current state.
qdev=$("$VDISKCTL" list --json tab_q | python3 -c 'import json,sys; print(json.load(sys.stdin)["vdisks"][0]["name"])')
assert_eq "$(head -c 4 "$qdev" | od -An -tx1 | tr -d ' ')" 5a5a5a5a "snapshot data"
apart=$(f tab.a name)
[ -b "${apart}p1" ] || fail "tab.a has no partition"

# The devices are known by name.
run "$VDISKCTL" detach tab.a
[ -b "$apart" ] && fail "detach by a tab name failed"

# A file that cannot be read at all, and usage errors.
expect_fail "attach-all $VD_DIR/nosuch: No such file" "$VDISKCTL" attach-all --tab "$VD_DIR/nosuch"
# Naming lines limits the reports and the exit status to them.
expect_fail "no valid line for it" "$VDISKCTL" attach-all --tab "$tab" --check bad2
"$VDISKCTL" attach-all --tab "$tab" --check bad2 2>"$VD_DIR/err" >/dev/null
assert_eq "$(grep -c . "$VD_DIR/err")" 2 "messages about bad2 alone"
grep -q "vdisktab:6: unknown option 'frobnicate'" "$VD_DIR/err" || fail "bad2's reason not given"
expect_fail "unknown option" "$VDISKCTL" attach-all --frob
# $VDISKTAB names the default table.
out=$(VDISKTAB="$tab" "$VDISKCTL" attach-all --check tab_q 2>&1) || fail "VDISKTAB --check tab_q: $out"
grep -q "^tab_q: vdiskctl attach --name tab_q --read-only --snapshot s1 --cache-size 262144 $VD_DIR/q.qcow2" <<<"$out" ||
	fail "VDISKTAB: $out"

# detach-all reports the same bad lines, and detaches the rest; also the
# device of a line that became bad after its attach (tab-b's, now with an
# unknown option).  Bad lines whose device is not attached say nothing
# (bad7's line is valid: only its image is missing).
sed -i 's/cache=writeback  #/cache=writeback,frob  #/' "$tab"
out=$("$VDISKCTL" detach-all --tab "$tab" 2>"$VD_DIR/err") && fail "detach-all with bad lines exited 0"
assert_eq "$(grep -c "^vdiskctl: detach-all $tab:" "$VD_DIR/err")" 12 "detach-all error lines"
grep -q "^vdiskctl: detach-all $tab:4: unknown option 'frob'" "$VD_DIR/err" || fail "line 4 not reported"
grep -q "^tab-b: detached /dev/vdisk" <<<"$out" || fail "the device of a line made bad was not detached: $out"
grep -q "^tab.a: not attached" <<<"$out" || fail "detach-all: $out"
grep -qE "^bad[^7]" <<<"$out" && fail "detach-all spoke of bad lines' names: $out"
assert_eq "$(ls -d /sys/block/vdisk* 2>/dev/null | wc -l)" 0 "devices after detach-all"
exit 0
