#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot test, last part: the ExecStop of a unit ordered before the vdisk
# units, so it runs at shutdown once they have stopped.  Every vdisk device
# must be gone, each detached after the file systems on it were unmounted,
# without errors; writes the journal and the run's status to /vm-out.
set -u
out=/vm-out
log=$out/shutdown-check.log
fails=0
ok() { echo "ok - $*" >>"$log"; }
bad() { echo "not ok - $*" >>"$log"; fails=$((fails + 1)); }
: >"$log"

journalctl --sync 2>/dev/null; sleep 0.5
journalctl -b -o short-monotonic --no-pager >"$out/journal.txt" 2>&1

left=$(ls -d /sys/block/vdisk* 2>/dev/null | tr '\n' ' ')
if [ -z "$left" ]; then ok "no vdisk device left attached"; else bad "left attached: $left"; fi

for name in qimg simg; do
	u=vdisk@$name.service
	st=$(systemctl show -p ActiveState --value "$u")
	res=$(systemctl show -p Result --value "$u")
	if [ "$st" = inactive ] && [ "$res" = success ]; then
		ok "$u stopped cleanly"
	else
		bad "$u: state $st, result $res"
	fi
	# The unit's own output: "NAME: detached /dev/vdiskN", no "vdiskctl:" errors.
	ulog=$(journalctl -b -u "$u" -o cat --no-pager)
	if grep -q "^$name: detached /dev/vdisk" <<<"$ulog"; then ok "$name: detach reported"; else bad "$name: no detach in the journal"; fi
	if grep -q "vdiskctl:" <<<"$ulog"; then bad "$name: errors: $(grep 'vdiskctl:' <<<"$ulog" | tr '\n' ' ')"; else ok "$name: no vdiskctl errors"; fi
done

# Order: each file system unmounted before its device was detached, and
# /scratch (holding simg's image) unmounted only after simg was detached
# (this unit stops after scratch.mount).
jline() { grep -n -m1 -E "$1" "$out/journal.txt" | cut -d: -f1; }
order() {	# DESCRIPTION FIRST-REGEX SECOND-REGEX
	local a b
	a=$(jline "$2") b=$(jline "$3")
	if [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]; then ok "$1"; else bad "$1 (lines '$a' '$b')"; fi
}
order "/mnt/vq unmounted before qimg detached" 'Unmounted .*/mnt/vq|mnt-vq.mount: Deactivated' 'qimg: detached'
order "/mnt/vs unmounted before simg detached" 'Unmounted .*/mnt/vs|mnt-vs.mount: Deactivated' 'simg: detached'
order "simg detached before /scratch unmounted" 'simg: detached' 'Unmounting .*/scratch|scratch.mount: Deactivated'

# No errors from vdisk anywhere in the journal (kernel or userspace).
errs=$(journalctl -b -p err --no-pager -o short-monotonic | grep -i -E 'vdisk|/mnt/v[qs]|scratch')
if [ -z "$errs" ]; then ok "no vdisk errors in the journal"; else bad "journal errors: $errs"; fi
journalctl -b -p err --no-pager -o short-monotonic >"$out/journal-errors.txt" 2>&1

boot=$(cat "$out/boot-check.status" 2>/dev/null || echo 1)
[ "$boot" = 0 ] || echo "not ok - the boot checks failed (boot-check.log)" >>"$log"
echo $(( (fails || boot != 0) ? 1 : 0 )) >"$out/status"
sync
exit 0
