#!/bin/bash
# A vdisk command that waits on the disk (SET's fsync of a write-back
# cache, with the disk under the image suspended) holds neither the mutex
# every generic netlink family without parallel_ops shares (`genl ctrl
# list` still answers) nor, while it writes the cache back, vdisk's global
# lock (`vdiskctl list` still answers).
. ./lib.sh
. ./fault_lib.sh
fl_setup 64
img=$FL_MNT/w.img
truncate -s 32M "$img"
attach --cache writeback "$img"
# Write-back mode writes through the image's page cache: 8 MiB stay dirty.
run dd if=/dev/urandom of="$DEV" bs=1M count=8 oflag=direct status=none
run dmsetup suspend --nolockfs --noflush "$FL_NAME"
at_exit dmsetup resume "$FL_NAME"	# before a detach waits on it
"$VDISKCTL" set "$DEV" --cache writethrough >"$VD_DIR/set.out" 2>&1 &
setpid=$!
# The SET is in the kernel's fsync, waiting on the disk (state D).
poll_nl_waiting $setpid || fail "set did not wait for the suspended disk: $(cat "$VD_DIR/set.out")"
# A task waiting on a mutex cannot be killed: poll, then resume the disk
# either way so that nothing stays stuck.
if command -v genl >/dev/null; then
	genl ctrl list >/dev/null 2>&1 &
else
	log "genl (iproute2) not installed: nlctrl not checked"
	true &
fi
ctl=$!
"$VDISKCTL" list >"$VD_DIR/list.out" 2>&1 &
list=$!
poll_exited 10 $ctl $list
ctl_waited=$(kill -0 $ctl 2>/dev/null && echo 1)
list_waited=$(kill -0 $list 2>/dev/null && echo 1)
run dmsetup resume "$FL_NAME"
wait $ctl
ctl_rc=$?
wait $list
list_rc=$?
[ -z "$ctl_waited" ] || fail "genl ctrl list waited 10 s while vdisk's SET waited on the disk"
[ $ctl_rc -eq 0 ] || fail "genl ctrl list failed (exit $ctl_rc)"
# The write-back runs without vdisk's global lock (under the device's own).
[ -z "$list_waited" ] || fail "vdiskctl list waited 10 s while SET wrote the cache back"
[ $list_rc -eq 0 ] || fail "vdiskctl list failed: $(cat "$VD_DIR/list.out")"
grep -q "^$DEV " "$VD_DIR/list.out" || fail "list did not show $DEV: $(cat "$VD_DIR/list.out")"
wait $setpid || fail "set failed: $(cat "$VD_DIR/set.out")"
assert_eq "$(cat /sys/block/${DEV#/dev/}/vdisk/cache)" writethrough "cache after set"
detach "$DEV"
exit 0
