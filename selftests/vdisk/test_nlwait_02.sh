#!/bin/bash
# An attach or a detach that waits on the image's disk (the partition scan,
# a qcow2 image's metadata written back at close, a partition rescan
# holding the disk's open_mutex; the disk under the image suspended) does
# not hold up the other devices: `vdiskctl list`, and an attach and a
# detach of an image elsewhere, answer meanwhile.
. ./lib.sh
. ./fault_lib.sh
command -v qemu-img >/dev/null || skip "qemu-img not installed"
fl_setup 64
q=$FL_MNT/q.qcow2
r=$FL_MNT/r.img
run qemu-img create -q -f qcow2 "$q" 32M
# Data, not holes: a direct read of a hole needs no disk.
run dd if=/dev/urandom of="$r" bs=1M count=16 conv=fsync status=none
attach --cache none "$q"
qdev=$DEV
# New clusters: the image's tables change, and are written back at close.
run dd if=/dev/urandom of="$VD_DIR/data" bs=1M count=4 status=none
run dd if="$VD_DIR/data" of="$qdev" bs=1M oflag=direct status=none
# The attach of the raw image (--cache none drops its page cache) reads
# the disk in its partition scan.  The qcow2 image's pages are read into
# the page cache: attached again with write-back cache, it would need
# nothing from the disk but for the wait on its detach.
run dd if="$q" of=/dev/null bs=1M status=none
run dmsetup suspend --nolockfs --noflush "$FL_NAME"
at_exit dmsetup resume "$FL_NAME"	# before a detach waits on it

"$VDISKCTL" detach "$qdev" >"$VD_DIR/del.out" 2>&1 &
del=$!
del_d=$(poll_nl_waiting $del && echo 1)
"$VDISKCTL" attach --format raw --cache none "$r" >"$VD_DIR/add.out" 2>&1 &
add=$!
add_d=$(poll_nl_waiting $add && echo 1)
# The image being detached, attached again: this waits until the detach
# has written its tables back, or it would read stale ones.
"$VDISKCTL" attach --cache writeback "$q" >"$VD_DIR/readd.out" 2>&1 &
readd=$!

# Meanwhile, on another file system.  A task waiting on a mutex cannot be
# killed: poll, then resume the disk either way so nothing stays stuck.
start_other_commands
other=$OTHER_PID
poll_exited 10 $other
other_waited=$(kill -0 $other 2>/dev/null && echo 1)
readd_waited=$(kill -0 $readd 2>/dev/null && echo 1)
run dmsetup resume "$FL_NAME"
wait $other
other_rc=$?
wait $del
del_rc=$?
wait $add
add_rc=$?
wait $readd
readd_rc=$?
rdev=$(cat "$VD_DIR/add.out")
case "$rdev" in /dev/vdisk[0-9]*) VD_DEVICES+=("$rdev") ;; esac
qdev2=$(cat "$VD_DIR/readd.out")
case "$qdev2" in /dev/vdisk[0-9]*) VD_DEVICES+=("$qdev2") ;; esac

[ -n "$del_d" ] || fail "detach did not wait for the suspended disk: $(cat "$VD_DIR/del.out")"
[ -n "$add_d" ] || fail "attach did not wait for the suspended disk: $(cat "$VD_DIR/add.out")"
[ -z "$other_waited" ] || fail "list, attach and detach of another image waited 10 s behind them"
[ $other_rc -eq 0 ] || fail "list, attach or detach of another image failed ($other_rc): $(cat "$VD_DIR/other.out")"
grep -q "^$qdev " "$VD_DIR/list.out" &&
	fail "list showed $qdev while it was being detached: $(cat "$VD_DIR/list.out")"
[ $del_rc -eq 0 ] || fail "detach failed: $(cat "$VD_DIR/del.out")"
[ $add_rc -eq 0 ] || fail "attach failed: $(cat "$VD_DIR/add.out")"
[ $readd_rc -eq 0 ] || fail "attach of the image being detached failed: $(cat "$VD_DIR/readd.out")"
[ -n "$readd_waited" ] || fail "attach of the image being detached did not wait for the detach"
assert_eq "$(cat "/sys/block/${rdev#/dev/}/vdisk/backing_file")" "$r" "attached file"
detach "$rdev"
cmp -n 4M "$VD_DIR/data" "$qdev2" || fail "$q read back other data when attached again"
detach "$qdev2"
run qemu-img check -q "$q"

# A partition rescan holds the disk's open_mutex while it reads the disk:
# a detach of that device waits for it, without holding the rest up.  The
# rescan's opener (blockdev) is still there when the detach decides:
# --lazy, and the device goes at blockdev's close.
attach --cache none "$r"
pdev=$DEV
run dmsetup suspend --nolockfs --noflush "$FL_NAME"
blockdev --rereadpt "$pdev" >"$VD_DIR/rr.out" 2>&1 &
rr=$!
rr_d=$(poll_in_syscall $rr 16 && echo 1)	# ioctl
"$VDISKCTL" detach --lazy "$pdev" >"$VD_DIR/del2.out" 2>&1 &
del2=$!
del2_d=$(poll_nl_waiting $del2 && echo 1)
start_other_commands
poll_exited 10 $OTHER_PID
other_waited=$(kill -0 $OTHER_PID 2>/dev/null && echo 1)
run dmsetup resume "$FL_NAME"
wait $OTHER_PID
other_rc=$?
wait $rr
rr_rc=$?
wait $del2
del2_rc=$?
for ((i = 0; i < 100; i++)); do
	[ -e "/sys/block/${pdev#/dev/}" ] || break
	sleep 0.1
done
[ -n "$rr_d" ] || fail "the partition rescan did not wait for the suspended disk: $(cat "$VD_DIR/rr.out")"
[ -n "$del2_d" ] || fail "the detach did not wait for the partition rescan: $(cat "$VD_DIR/del2.out")"
[ -z "$other_waited" ] || fail "list, attach and detach of another image waited 10 s behind a detach waiting for a partition rescan"
[ $other_rc -eq 0 ] || fail "list, attach or detach of another image failed ($other_rc): $(cat "$VD_DIR/other.out")"
[ $rr_rc -eq 0 ] || fail "the partition rescan failed: $(cat "$VD_DIR/rr.out")"
[ $del2_rc -eq 0 ] || fail "detach after the partition rescan failed: $(cat "$VD_DIR/del2.out")"
[ ! -e "/sys/block/${pdev#/dev/}" ] || fail "$pdev still exists 10 s after the rescan closed it"
exit 0
