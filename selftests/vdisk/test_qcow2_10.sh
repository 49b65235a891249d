#!/bin/bash
# A crash leaves what was written: a copy of the image file taken while
# the device is attached and has written, with no flush since (every
# write issued so far on disk; an O_DIRECT read writes back the file's
# dirty pages first), passes qemu-img check with at most leaked clusters.
# Small writes to new clusters grow the file a chunk at a time and write
# zeros over the new space; with 4 KiB clusters and 16-bit refcounts a
# refcount block covers 8 MiB, so a new one lands at the start of every
# other chunk, written and named by the refcount table before the
# chunk's zeros.  Until 2026-12-07 the zeros wiped it (refcount=0 reference=1
# in the copy) until the next flush wrote it again.  (With 64-bit
# refcounts, a block per 512 KiB, the old module passed: not run.)
. ./lib.sh

cd "$VD_DIR"
q() { "$@" >/dev/null || fail "$*"; }

# check_copy NAME IMAGE: qemu-img check of an O_DIRECT copy of IMAGE.
check_copy() {
	local out rc
	q dd if="$2" of="$1.copy" bs=1M iflag=direct status=none
	out=$(qemu-img check "$1.copy" 2>&1)
	rc=$?
	# 0: clean, 3: leaked clusters only (allowed after a crash)
	if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
		echo "$out" | grep -v "^Leaked" | head -20 | sed 's/^/#   /'
		fail "$1: copy taken while attached is corrupt (qemu-img check exit $rc)"
	fi
	rm -f "$1.copy"
}

for opts in cluster_size=4096; do
	name=grow-${opts//[=,]/-}
	q qemu-img create -q -f qcow2 -o "$opts" "$name.qcow2" 64M
	attach --cache none "$name.qcow2"
	# 512 bytes to every fourth 4 KiB cluster of the first 40 MiB: the
	# file grows through chunks of 4 and 8 MiB.
	python3 - "$DEV" <<'PY' || fail "$name: writes failed"
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
buf.write(b"\xa5" * 4096)
for off in range(0, 40 << 20, 16 << 10):
    os.pwrite(fd, memoryview(buf)[:512], off)
PY
	check_copy "$name" "$name.qcow2"
	detach "$DEV"
	out=$(qemu-img check "$name.qcow2" 2>&1) || { echo "$out" | sed 's/^/#   /'; fail "$name: qemu-img check after detach"; }
	log "$name: copy while attached consistent, check clean after detach"
done
exit 0
