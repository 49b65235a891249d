#!/bin/bash
# Raw image on ext4 on device-mapper: reads, writes and flushes of the image
# file fail at chosen times (dm-error, dm-flakey).  Each error reaches the
# caller as EIO, nothing hangs, the data written before the fault is intact
# and the device works again once the fault clears.  Then intermittent
# write faults (flakey, 1s up / 1s down) under fio: fio finishes and sees
# errors; after the fault a full fio verify pass succeeds.
. ./lib.sh
. ./fault_lib.sh
command -v fio >/dev/null || skip "fio not installed"

fl_setup 192
img=$FL_MNT/raw.img
run fallocate -l 64M "$img"
head -c $((4 << 20)) /dev/urandom >"$VD_DIR/a"
head -c $((4 << 20)) /dev/urandom >"$VD_DIR/b"
sha_a=$(sha256sum <"$VD_DIR/a" | cut -d' ' -f1)
sha_b=$(sha256sum <"$VD_DIR/b" | cut -d' ' -f1)

attach --cache none "$img"
run dd if="$VD_DIR/a" of="$DEV" bs=1M oflag=direct conv=fsync status=none

# 1. dm-error under the file: direct reads and writes fail.
fl_fault error "$img"
for i in 1 2 3; do
	expect_ioerr dd if="$DEV" of=/dev/null bs=64k count=4 skip=$((i * 7)) iflag=direct status=none
	expect_ioerr dd if="$VD_DIR/b" of="$DEV" bs=1M count=1 seek=$((8 + i)) oflag=direct status=none
done
fl_fault linear
assert_eq "$(sha_range "$DEV" 0 4)" "$sha_a" "data written before the fault"
run dd if="$VD_DIR/b" of="$DEV" bs=1M seek=8 oflag=direct conv=fsync status=none
assert_eq "$(sha_range "$DEV" 8 4)" "$sha_b" "data written after the fault cleared"

# 2. Writes and flushes fail (flakey error_writes), cache=writeback: the
#    write lands in the host page cache, the flush must report the loss.
run "$VDISKCTL" set "$DEV" --cache writeback
fl_fault ewrites "$img"
expect_ioerr dd if="$VD_DIR/a" of="$DEV" bs=1M seek=16 oflag=direct conv=fsync status=none
expect_ioerr dd if="$VD_DIR/a" of="$DEV" bs=1M seek=24 count=1 oflag=direct,sync status=none
# Reads still work during a write fault.
assert_eq "$(sha_range "$DEV" 0 4)" "$sha_a" "reads during a write fault"
# Leaving writeback mode flushes, which fails too.  The write-back error
# that fsync took is the device's as well: its next flush reports it,
# once, with the fault gone.
run dd if="$VD_DIR/b" of="$DEV" bs=1M seek=28 count=2 oflag=direct status=none
expect_ioerr "$VDISKCTL" set "$DEV" --cache none
fl_fault linear
expect_ioerr python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_WRONLY))' "$DEV"
run python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_WRONLY))' "$DEV"
# The same, but the device enters write-through mode before any flush:
# such a device gets no flush, so its first write reports the error.
run "$VDISKCTL" set "$DEV" --cache writeback
fl_fault ewrites "$img"
run dd if="$VD_DIR/b" of="$DEV" bs=1M seek=28 count=2 oflag=direct status=none
expect_ioerr "$VDISKCTL" set "$DEV" --cache none
fl_fault linear
run "$VDISKCTL" set "$DEV" --cache writethrough
expect_ioerr dd if="$VD_DIR/b" of="$DEV" bs=1M seek=28 count=1 oflag=direct status=none
run dd if="$VD_DIR/b" of="$DEV" bs=1M seek=28 count=2 oflag=direct status=none
run "$VDISKCTL" set "$DEV" --cache none
fl_fault ewrites "$img"
expect_ioerr dd if="$VD_DIR/a" of="$DEV" bs=1M seek=16 count=1 oflag=direct status=none
expect_ioerr python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY); os.fsync(fd)' "$DEV"
fl_fault linear
run dd if="$VD_DIR/b" of="$DEV" bs=1M seek=16 oflag=direct conv=fsync status=none
assert_eq "$(sha_range "$DEV" 16 4)" "$sha_b" "rewrite after the flush fault"
assert_eq "$(sha_range "$DEV" 0 4)" "$sha_a" "old data after the flush fault"

# 3. Intermittent write faults under fio: no request hangs.
secs=4 vsize=8M
[ "$VD_PROFILE" = full ] && secs=60 vsize=32M
fl_fault flaky:1:1 "$img"
timeout $((secs + 120)) fio --name=flaky --filename="$DEV" --ioengine=libaio --direct=1 \
	--rw=randwrite --bs=16k --iodepth=16 --numjobs=2 --offset=32M --size=32M \
	--time_based --runtime=$secs --continue_on_error=all \
	--output-format=json --output="$VD_DIR/fio.json" >/dev/null
rc=$?
[ $rc -eq 124 ] && fail "fio hung under intermittent faults"
errs=$(python3 -c 'import json,sys; print(sum(j["total_err"] for j in json.load(open(sys.argv[1]))["jobs"]))' "$VD_DIR/fio.json") ||
	fail "no fio result"
[ "$errs" -gt 0 ] || fail "fio saw no errors under intermittent faults"
FL_FAULTS=$((FL_FAULTS + errs))
fl_fault linear
run fio --name=after --filename="$DEV" --ioengine=libaio --direct=1 --rw=randwrite \
	--bs=16k --iodepth=16 --offset=32M --size=$vsize --verify=crc32c --verify_fatal=1 \
	--do_verify=1 --output="$VD_DIR/fio2.log"
assert_eq "$(sha_range "$DEV" 0 4)" "$sha_a" "old data after intermittent faults"
detach "$DEV"
log "faults seen by callers: $FL_FAULTS"
exit 0
