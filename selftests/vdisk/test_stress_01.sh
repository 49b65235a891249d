#!/bin/bash
# Detach, lazy detach, resize, cache-mode changes and module unload while
# fio (with verification) runs on four devices, two raw and two qcow2.
# Busy detach and unload are refused, lazy detach waits for the last
# close, resizes take effect under I/O, fio verifies clean, and `vdiskctl
# monitor` sees every attach, detach and resize event.
. ./lib.sh
command -v fio >/dev/null || skip "fio not installed"

secs=14 rounds=2
[ "$VD_PROFILE" = full ] && secs=300 rounds=60
"$VDISKCTL" monitor --json >"$VD_DIR/ev" 2>"$VD_DIR/ev.err" &
mon=$!
at_exit kill $mon
sleep 0.5

devs=() imgs=()
for i in 0 1; do
	truncate -s 64M "$VD_DIR/r$i.img"
	qemu-img create -q -f qcow2 "$VD_DIR/q$i.qcow2" 64M || fail "qemu-img create"
done
for f in r0.img q0.qcow2 r1.img q1.qcow2; do
	attach "$VD_DIR/$f"
	[ -b "$DEV" ] || fail "$DEV is not a block device"
	devs+=("$DEV") imgs+=("$VD_DIR/$f")
done
pids=()
for i in 0 1 2 3; do
	fio --name=s$i --filename="${devs[$i]}" --ioengine=libaio --direct=1 \
		--rw=randwrite --bsrange=4k-256k --iodepth=8 --size=64M \
		--time_based --runtime=$secs --verify=crc32c --verify_backlog=256 \
		--verify_fatal=1 --output="$VD_DIR/fio$i.log" >"$VD_DIR/fio$i.err" 2>&1 &
	pids+=($!)
done
at_exit kill "${pids[*]}"
t0=$(date +%s)
# Hold every device open ourselves too, so "busy" does not depend on when
# fio opens and reopens its file.
hold=()
for i in 0 1 2 3; do
	exec {fd}<"${devs[$i]}"
	hold+=($fd)
done
sleep 1
resizes=0 changes=0 r=0
# Rounds while fio surely still runs.
# (At least one: the devices are held open by us in any case.)
while [ $r -eq 0 ] || { [ $r -lt $rounds ] && [ $(($(date +%s) - t0)) -lt $((secs - 4)) ]; }; do
	r=$((r + 1))
	for i in 0 1 2 3; do
		expect_fail "in use|busy|lazy" "$VDISKCTL" detach "${devs[$i]}"
	done
	rmmod vdisk 2>/dev/null && fail "module unloaded under I/O"
	for i in 0 1; do
		# raw: grow the file and refresh; qcow2: grow the virtual size.
		want=$(((64 + r) << 20))
		truncate -s $want "${imgs[$((2 * i))]}"
		run "$VDISKCTL" resize "${devs[$((2 * i))]}" >/dev/null
		run "$VDISKCTL" resize "${devs[$((2 * i + 1))]}" --size $want >/dev/null
		assert_blk_size "${devs[$((2 * i))]}" $want
		assert_blk_size "${devs[$((2 * i + 1))]}" $want
		resizes=$((resizes + 2))
	done
	c=writeback; [ $((r % 2)) -eq 0 ] && c=none
	run "$VDISKCTL" set "${devs[0]}" --cache $c >/dev/null
	run "$VDISKCTL" set "${devs[1]}" --cache $c >/dev/null
	changes=$((changes + 2))
	sleep 0.5
done
rounds=$r
# Lazy detach of two devices under fio: they go at the last close, which
# is ours (fio closes and reopens its files between its write and verify
# phases, so letting fio close last would race with its own reopen).
run "$VDISKCTL" detach --lazy "${devs[1]}" "${devs[3]}" >/dev/null
[ -b "${devs[1]}" ] || fail "lazy detach removed a busy device at once"
for i in 0 1 2 3; do
	wait ${pids[$i]} || {
		grep -E "err=|fio:|verify|bad" "$VD_DIR/fio$i.log" "$VD_DIR/fio$i.err" | head -n 20 | sed 's/^/#   /'
		fail "fio on ${devs[$i]} failed"
	}
done
for fd in "${hold[@]}"; do exec {fd}<&-; done
for i in 1 3; do
	for _ in $(seq 100); do [ -e "/sys/block/${devs[$i]#/dev/}" ] || break; sleep 0.05; done
	[ -e "/sys/block/${devs[$i]#/dev/}" ] && fail "lazily detached ${devs[$i]} survived the last close"
done
for i in 1 3; do
	out=$(qemu-img check "${imgs[$i]}" 2>&1) || { echo "$out"; fail "qemu-img check ${imgs[$i]}"; }
done
detach "${devs[0]}"
sleep 1
kill $mon
wait $mon 2>/dev/null
# Module unload with an idle device still attached removes it.
run rmmod vdisk
[ -e "/sys/block/${devs[2]#/dev/}" ] && fail "${devs[2]} survived module unload"

grep -q "lost" "$VD_DIR/ev.err" && fail "monitor lost events: $(cat "$VD_DIR/ev.err")"
python3 - "$VD_DIR/ev" $resizes $changes "${devs[@]}" <<'PY' || fail "monitor events: $(cat "$VD_DIR/ev")"
import collections, json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
resizes, changes, devs = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
n = collections.Counter(e["event"] for e in ev)
per = collections.Counter((e["event"], e["name"]) for e in ev)
assert n["attach"] == 4, n
assert n["detach"] == 3, n
assert n["resize"] == resizes, (n, resizes)
assert n["change"] >= changes, (n, changes)
for d in devs:
    assert per[("attach", d)] == 1, (d, per)
for d in (devs[0], devs[1], devs[3]):
    assert per[("detach", d)] == 1, (d, per)
print(f"# events: {dict(n)}")
PY
log "rounds $rounds: busy detaches refused $((rounds * 4)), unloads refused $rounds, resizes $resizes, cache changes $changes"
exit 0
