#!/bin/bash
# Netlink fuzzing: random and malformed messages to every command (missing,
# duplicated, truncated, oversized and wrongly typed attributes, random
# BACKING nests, descriptors of sockets, directories, pipes, write-only and
# O_PATH files, closed and huge descriptors), as root and as nobody.
# Every message gets a clean error or a valid reply; unprivileged callers
# always get EPERM for ADD/DEL/SET; no warning; and nothing leaks: no
# device is left, every descriptor handed over is released (the tmpfs
# holding the files unmounts), the module's reference count is 0 and it
# unloads, and slab usage returns to where it was.
. ./lib.sh

count=300
[ "$VD_PROFILE" = full ] && count=8000
fuzz=$VD_TOP/selftests/vdisk/vdisk_nlfuzz.py
t=$VD_DIR/t
mkdir -p "$t"
run mount -t tmpfs -o size=64M,mode=0777 vdfuzz "$t"
VD_MOUNTS+=("$t")
truncate -s 4M "$t/raw.img"
qemu-img create -q -f qcow2 "$t/q.qcow2" 8M || fail "qemu-img create failed"
qemu-img create -q -f qcow2 -b "$t/q.qcow2" -F qcow2 "$t/top.qcow2" || fail "qemu-img create failed"
chmod 0666 "$t"/*.img "$t"/*.qcow2

# One warm-up round so caches that fill on first use do not count.
python3 "$fuzz" --seed 99 --count 50 --dir "$t/warm" "$t/raw.img" "$t/q.qcow2" >/dev/null ||
	fail "warm-up round failed"
settle_memory
before=$(meminfo_kib SUnreclaim)

total=0
for seed in 1 2; do
	out=$(python3 "$fuzz" --seed $seed --count $count --dir "$t/root$seed" \
		"$t/raw.img" "$t/q.qcow2" "$t/top.qcow2") || { echo "$out"; fail "fuzz as root (seed $seed)"; }
	log "root seed $seed: $out"
	total=$((total + $(awk '{print $2}' <<<"$out")))
done
mkdir -p "$t/nobody" && chmod 0777 "$t/nobody"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
	python3 "$fuzz" --unpriv --seed 3 --count $count --dir "$t/nobody/d" \
	"$t/raw.img" "$t/q.qcow2") || { echo "$out"; fail "fuzz as nobody"; }
log "nobody: $out"
total=$((total + $(awk '{print $2}' <<<"$out")))

assert_eq "$(ls -d /sys/block/vdisk* 2>/dev/null | wc -l)" 0 "devices left by the fuzzer"
assert_eq "$(cat /sys/module/vdisk/refcnt)" 0 "module references"
settle_memory
after=$(meminfo_kib SUnreclaim)
log "SUnreclaim before ${before} kB, after ${after} kB"
# Leaking one object per message would show as well over 1 MiB.
[ $((after - before)) -lt 1024 ] || fail "unreclaimable slab grew by $((after - before)) kB"
vd_umount "$t"
run rmmod vdisk
log "messages fuzzed: $total"
exit 0
