#!/bin/bash
# Hostile qcow2 images: refused at attach with a reason, or failing reads
# with an I/O error; never a crash, a hang, a kernel warning or wrong data.
. ./lib.sh

python3 "$VD_TOP/selftests/vdisk/mkhostile.py" "$VD_DIR" >"$VD_DIR/cases" || fail "mkhostile failed"
n=0
while read -r name kind rx; do
	img=$VD_DIR/$name.qcow2
	n=$((n + 1))
	case $kind in
	refuse)
		out=$("$VDISKCTL" attach "$img" 2>&1) && fail "$name: hostile image attached as $out"
		grep -Eiq -- "$rx" <<<"$out" || fail "$name: message '$out' lacks /$rx/"
		log "$name: $out" ;;
	eio)
		dev=$("$VDISKCTL" attach -f qcow2 "$img" 2>&1) || { log "$name: refused: $dev"; continue; }
		VD_DEVICES+=("$dev")
		if dd if="$dev" of=/dev/null bs=64k iflag=direct status=none 2>"$VD_DIR/err"; then
			fail "$name: reading the corrupt device succeeded"
		fi
		grep -q "Input/output error" "$VD_DIR/err" || fail "$name: unexpected read error: $(cat "$VD_DIR/err")"
		# The device stays usable: other reads and detach still work.
		blockdev --getsize64 "$dev" >/dev/null || fail "$name: device unusable"
		detach "$dev"
		log "$name: I/O error as expected" ;;
	ok)
		oracle_check "$img"
		log "$name: reads like qemu-img" ;;
	esac
done <"$VD_DIR/cases"
[ $n -ge 25 ] || fail "only $n hostile cases generated"
exit 0
