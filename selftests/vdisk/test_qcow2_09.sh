#!/bin/bash
# qcow2 requests that flush before they complete, after clusters were
# freed: a discard in write-through mode, FUA writes after a discard
# (cache none and writeback), a write-through rewrite of compressed
# clusters.  The flush applies the freed clusters' refcounts and waits
# for the write epoch before they may be reused; the request that flushes
# must not be among those it waits for.  (Until 2026-12-07 it was, and
# each of these hung the device.)  Every operation finishes in time,
# qemu-img check is clean, and the image holds what the device returned.
. ./lib.sh

cd "$VD_DIR"
q() { "$@" >/dev/null || fail "$*"; }

# within SECONDS CMD...: run CMD; fail if it has not finished by then.
within() {
	local limit=$1 end=$((SECONDS + $1)) pid
	shift
	"$@" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		[ "$SECONDS" -lt "$end" ] || fail "still running after ${limit}s (hung): $*"
		sleep 0.2
	done
	wait "$pid" || fail "failed: $*"
}

# check_image NAME IMAGE: detach, then the oracle agrees with the device.
check_image() {
	local name=$1 img=$2 out
	q dd if="$DEV" of="$name.raw" bs=1M iflag=direct status=none
	detach "$DEV"
	out=$(qemu-img check "$img" 2>&1) || { echo "$out" | sed 's/^/#   /'; fail "$name: qemu-img check"; }
	out=$(qemu-img compare -F raw "$img" "$name.raw" 2>&1) ||
		fail "$name: image differs from what the device returned: $out"
	rm -f "$name.raw"
	log "$name: finished, check clean, compare equal"
}

make_pattern data.bin $((1 << 20)) 9

# Write-through: the discard's own flush frees the clusters.
q qemu-img create -q -f qcow2 wt.qcow2 32M
q qemu-io -c "write -P 0x11 0 16M" wt.qcow2
attach --cache writethrough wt.qcow2
within 60 blkdiscard -o 0 -l $((4 << 20)) "$DEV"
within 60 blkdiscard -z -o $((6 << 20)) -l $((2 << 20)) "$DEV"
within 60 dd if=data.bin of="$DEV" bs=64k seek=16 oflag=direct status=none
check_image writethrough-discard wt.qcow2

# FUA writes (O_DSYNC) after a discard that no flush has applied yet.
for cache in none writeback; do
	q qemu-img create -q -f qcow2 "fua-$cache.qcow2" 32M
	q qemu-io -c "write -P 0x22 0 16M" "fua-$cache.qcow2"
	attach --cache "$cache" "fua-$cache.qcow2"
	within 60 blkdiscard -o $((4 << 20)) -l $((4 << 20)) "$DEV"
	within 60 dd if=data.bin of="$DEV" bs=64k seek=200 oflag=direct,dsync status=none
	within 60 dd if=data.bin of="$DEV" bs=64k seek=64 oflag=direct,dsync status=none
	check_image "fua-$cache" "fua-$cache.qcow2"
done

# Write-through rewrites of compressed clusters free the old ones.
make_compressible seed.raw $((2 << 20)) 10
q qemu-img convert -c -O qcow2 seed.raw comp.qcow2
assert_compressed comp.qcow2
attach --cache writethrough comp.qcow2
within 60 dd if=data.bin of="$DEV" bs=4k seek=3 count=40 oflag=direct status=none
# every cluster rewritten: every compressed host cluster is freed
for i in 0 1; do
	within 60 dd if=data.bin of="$DEV" bs=1M seek=$i oflag=direct status=none
done
check_image writethrough-compressed comp.qcow2
exit 0
