#!/bin/bash
# Many processes attach and detach concurrently (plain and lazy detach,
# by name), while others list and dump; every cycle reads back its own
# data; `vdiskctl monitor` sees exactly one attach and one detach event per
# cycle; nothing is left attached.
. ./lib.sh

workers=4 cycles=5
[ "$VD_PROFILE" = full ] && workers=8 cycles=30
total=$((workers * cycles))
for w in $(seq $workers); do
	printf 'worker %d' $w >"$VD_DIR/w$w.img"
	truncate -s 1M "$VD_DIR/w$w.img"
done
"$VDISKCTL" monitor --json >"$VD_DIR/ev" 2>"$VD_DIR/ev.err" &
mon=$!
at_exit kill $mon
sleep 0.5

worker() {
	local w=$1 c dev got
	for c in $(seq $cycles); do
		dev=$("$VDISKCTL" attach --name "w$w-$c" "$VD_DIR/w$w.img") || { echo "attach w$w #$c" >>"$VD_DIR/errors"; return; }
		[ -b "$dev" ] || echo "w$w #$c: $dev is not a block device" >>"$VD_DIR/errors"
		got=$(dd if="$dev" bs=512 count=1 status=none | tr -d '\0')
		[ "$got" = "worker $w" ] || echo "w$w #$c: $dev read '$got'" >>"$VD_DIR/errors"
		case $((c % 3)) in
		0)	# lazy: detach while open, gone at last close
			exec {fd}<"$dev"
			"$VDISKCTL" detach --lazy "$dev" >/dev/null || echo "lazy w$w #$c" >>"$VD_DIR/errors"
			exec {fd}<&-
			;;
		1)	"$VDISKCTL" detach "w$w-$c" >/dev/null || echo "detach by name w$w #$c" >>"$VD_DIR/errors" ;;
		*)	"$VDISKCTL" detach "$dev" >/dev/null || echo "detach w$w #$c" >>"$VD_DIR/errors" ;;
		esac
	done
}
lister() {
	while [ ! -e "$VD_DIR/stop" ]; do
		"$VDISKCTL" list >/dev/null 2>&1
		python3 "$VD_GENL" get >/dev/null 2>&1
	done
}
lister &
lpid=$!
pids=()
for w in $(seq $workers); do
	worker $w &
	pids+=($!)
done
for p in "${pids[@]}"; do wait $p; done
touch "$VD_DIR/stop"
wait $lpid
[ -s "$VD_DIR/errors" ] && fail "$(head -n 5 "$VD_DIR/errors")"
for _ in $(seq 100); do ls -d /sys/block/vdisk* >/dev/null 2>&1 || break; sleep 0.1; done
assert_eq "$(ls -d /sys/block/vdisk* 2>/dev/null | wc -l)" 0 "devices left"
for _ in $(seq 50); do
	[ "$(grep -c '"detach"' "$VD_DIR/ev")" -ge $total ] && break
	sleep 0.2
done
kill $mon
wait $mon 2>/dev/null
grep -q "lost" "$VD_DIR/ev.err" && fail "monitor lost events: $(cat "$VD_DIR/ev.err")"
assert_eq "$(grep -c '"event": *"attach"' "$VD_DIR/ev")" $total "attach events"
assert_eq "$(grep -c '"event": *"detach"' "$VD_DIR/ev")" $total "detach events"
log "$workers workers x $cycles cycles = $total attach/detach cycles, $((total * 2)) events seen"
exit 0
