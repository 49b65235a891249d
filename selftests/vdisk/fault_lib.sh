# SPDX-License-Identifier: GPL-2.0
# Fault injection for the test_fault_* tests (source after lib.sh).
#
# fl_setup MIB makes an ext4 without a journal (errors=continue) on a
# device-mapper device over a loop device on /scratch and mounts it on
# $FL_MNT.  fl_fault MODE FILE... then reloads the dm table so that only the
# blocks of FILEs (as FIEMAP reports them, preallocated tails included) go
# through a faulty target; the file system's own metadata stays on a
# linear target, so it survives the fault and the fault reaches vdisk
# through the image file, as a failing disk under a real file system would.
# Without a journal, a failed flush cannot abort the file system either.
#
# MODE: linear   no fault
#       error    dm-error: reads and writes of FILEs fail
#       ewrites  dm-flakey error_writes, always down: writes of FILEs fail,
#                and every flush of the device fails (dm sends flushes to
#                every target); reads work
#       flaky:UP:DOWN  the same, up UP seconds then down DOWN seconds
#
# FL_FAULTS counts the faults the caller saw (fl_count adds one).

FL_NAME=vdfault$$
FL_DEV=/dev/mapper/$FL_NAME
FL_MNT=$VD_DIR/fs
FL_LOOP=""
FL_SECTORS=0
FL_FAULTS=0

fl_cleanup() {
	local d f
	for d in /sys/block/vdisk*; do
		[ -e "$d/vdisk/backing_file" ] || continue
		f=$(cat "$d/vdisk/backing_file")
		case "$f" in "$FL_MNT"/*) "$VDISKCTL" detach "/dev/${d##*/}" ;; esac
	done
	dmsetup resume "$FL_NAME" 2>/dev/null
	umount "$FL_MNT" 2>/dev/null
	dmsetup remove --retry "$FL_NAME" 2>/dev/null
	[ -n "$FL_LOOP" ] && losetup -d "$FL_LOOP"
}

fl_setup() {
	command -v dmsetup >/dev/null || skip "dmsetup not installed"
	modprobe loop 2>/dev/null
	modprobe dm-flakey 2>/dev/null || skip "no dm-flakey module"
	truncate -s "${1}M" "$VD_DIR/lower.img"
	FL_LOOP=$(losetup -f --show --direct-io=on "$VD_DIR/lower.img") || skip "losetup failed"
	at_exit fl_cleanup
	FL_SECTORS=$(blockdev --getsz "$FL_LOOP")
	run dmsetup create "$FL_NAME" --table "0 $FL_SECTORS linear $FL_LOOP 0"
	# No udev in the test guest: make the /dev/mapper node ourselves.
	[ -b "$FL_DEV" ] || run dmsetup mknodes "$FL_NAME"
	run mkfs.ext4 -q -F -O ^has_journal -b 4096 "$FL_DEV"
	mkdir -p "$FL_MNT"
	run mount -o errors=continue "$FL_DEV" "$FL_MNT"
}

# The dm table for MODE over FILEs' extents.
fl_table() {
	python3 - "$FL_LOOP" "$FL_SECTORS" "$@" <<'PY'
import re, subprocess, sys
loop, total, mode, files = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
ext = []
for f in files:
    out = subprocess.run(["filefrag", "-e", "-v", f], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"blocks of (\d+) bytes|blocksize of (\d+)", out)
    bs = int(m.group(1) or m.group(2)) // 512
    for m in re.finditer(r"^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):", out, re.M):
        ext.append((int(m.group(1)) * bs, (int(m.group(2)) + 1) * bs))
ext.sort()
merged = []
for s, e in ext:
    if merged and s <= merged[-1][1]:
        merged[-1][1] = max(merged[-1][1], e)
    else:
        merged.append([s, e])
if mode == "linear":
    merged = []
def faulty(s, n):
    if mode == "error":
        return f"{s} {n} error"
    if mode == "ewrites":
        return f"{s} {n} flakey {loop} {s} 0 3600 1 error_writes"
    if mode.startswith("flaky:"):
        up, down = mode.split(":")[1:]
        return f"{s} {n} flakey {loop} {s} {up} {down} 1 error_writes"
    sys.exit(f"unknown fault mode {mode}")
pos = 0
for s, e in merged:
    if s > pos:
        print(f"{pos} {s - pos} linear {loop} {pos}")
    print(faulty(s, e - s))
    pos = e
if pos < total:
    print(f"{pos} {total - pos} linear {loop} {pos}")
PY
}

# fl_fault MODE FILE...: switch the table (in-flight I/O drains first).
fl_fault() {
	local table out
	table=$(fl_table "$@") || fail "building the dm table for $* failed"
	run dmsetup suspend --nolockfs "$FL_NAME"
	if ! out=$(dmsetup load "$FL_NAME" <<<"$table" 2>&1); then
		dmsetup resume "$FL_NAME"
		echo "$table" | sed 's/^/#   /'
		fail "dmsetup load failed: $out"
	fi
	run dmsetup resume "$FL_NAME"
	log "fault: $1 ($(grep -vc linear <<<"$table") faulty segments)"
}

# The command must fail with an I/O error (EIO, or ENOSPC where given).
# Usage: expect_ioerr [-s] CMD...  (-s: ENOSPC also accepted)
expect_ioerr() {
	local pat="Input/output error" out
	[ "$1" = -s ] && { pat="$pat|No space left"; shift; }
	out=$("$@" 2>&1) && fail "expected an I/O error but succeeded: $*"
	grep -Eq "$pat" <<<"$out" || fail "'$*' failed without an I/O error: $out"
	FL_FAULTS=$((FL_FAULTS + 1))
}

# sha256 of COUNT MiB of FILE/DEV from MiB SKIP, read with O_DIRECT.
sha_range() {
	dd if="$1" bs=1M skip="$2" count="$3" iflag=direct status=none | sha256sum | cut -d' ' -f1
}
