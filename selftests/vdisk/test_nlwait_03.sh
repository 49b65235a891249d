#!/bin/bash
# A SET that waits on its image's disk (a qcow2 resize writes the image's
# header and tables with the queue frozen; the disk under the image
# suspended) holds up only its own device: `vdiskctl list`, and an attach
# and a detach elsewhere, answer meanwhile, also with a second SET of the
# device waiting behind it; that SET and a detach of the device wait for
# the resize and then succeed.
. ./lib.sh
. ./fault_lib.sh
command -v qemu-img >/dev/null || skip "qemu-img not installed"
fl_setup 64
img=$FL_MNT/s.qcow2
run qemu-img create -q -f qcow2 "$img" 16M
attach "$img"
sdev=$DEV
run dd if=/dev/urandom of="$sdev" bs=1M count=4 oflag=direct conv=fsync status=none
# Out of the page cache: the resize's partial-block writes must read.
run sh -c 'sync; echo 3 >/proc/sys/vm/drop_caches'
"$VDISKCTL" list >/dev/null	# and vdiskctl back in
run dmsetup suspend --nolockfs --noflush "$FL_NAME"
at_exit dmsetup resume "$FL_NAME"	# before a detach waits on it

"$VDISKCTL" resize "$sdev" --size 32M >"$VD_DIR/set.out" 2>&1 &
set=$!
set_d=$(poll_nl_waiting $set && echo 1)
# A second SET of the same device, and its detach, queue behind the
# resize (the detach must not close the image under it) without holding
# anything up; they answer once the resize is done.
"$VDISKCTL" set "$sdev" --cache writethrough >"$VD_DIR/set2.out" 2>&1 &
set2=$!
set2_d=$(poll_nl_waiting $set2 && echo 1)
"$VDISKCTL" detach "$sdev" >"$VD_DIR/del.out" 2>&1 &
del=$!
start_other_commands
other=$OTHER_PID
poll_exited 10 $other
other_waited=$(kill -0 $other 2>/dev/null && echo 1)
set_waited=$(kill -0 $set 2>/dev/null && echo 1)
del_waited=$(kill -0 $del 2>/dev/null && echo 1)
run dmsetup resume "$FL_NAME"
wait $other
other_rc=$?
wait $set
set_rc=$?
wait $set2
set2_rc=$?
wait $del
del_rc=$?

[ -n "$set_d" ] || fail "resize did not wait for the suspended disk: $(cat "$VD_DIR/set.out")"
[ -n "$set2_d" ] || fail "the second set did not wait for the resize: $(cat "$VD_DIR/set2.out")"
[ -z "$other_waited" ] || fail "list, attach and detach of another image waited 10 s behind the SET"
[ $other_rc -eq 0 ] || fail "list, attach or detach of another image failed ($other_rc): $(cat "$VD_DIR/other.out")"
grep -q "^$sdev " "$VD_DIR/list.out" || fail "list did not show $sdev: $(cat "$VD_DIR/list.out")"
[ -n "$set_waited" ] || fail "the resize did not wait for the disk"
[ -n "$del_waited" ] || fail "the detach of the device did not wait for its SET: $(cat "$VD_DIR/del.out")"
[ $set_rc -eq 0 ] || fail "resize failed: $(cat "$VD_DIR/set.out")"
[ $set2_rc -eq 0 ] || fail "the second set failed: $(cat "$VD_DIR/set2.out")"
[ $del_rc -eq 0 ] || fail "detach failed: $(cat "$VD_DIR/del.out")"
[ ! -e "/sys/block/${sdev#/dev/}" ] || fail "$sdev still exists after its detach"
assert_eq "$(qemu-img info --output=json "$img" | python3 -c 'import json, sys; print(json.load(sys.stdin)["virtual-size"])')" \
	$((32 << 20)) "virtual size after the resize"
run qemu-img check -q "$img"
exit 0
