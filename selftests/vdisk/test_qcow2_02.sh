#!/bin/bash
# Hostile qcow2 images: refused at attach with a reason, or failing reads
# with an I/O error; never a crash, a hang, a kernel warning or wrong data.
. ./lib.sh

python3 "$VD_TOP/selftests/vdisk/mkhostile.py" "$VD_DIR" >"$VD_DIR/cases" || fail "mkhostile failed"
n=0
refused=()
while read -r name kind rx; do
	img=$VD_DIR/$name.qcow2
	n=$((n + 1))
	case $kind in
	refuse)
		# vdiskctl reads the header first and refuses most of these
		# itself; the kernel must refuse them too, to whoever asks.
		# The image's name is left out of the match: it is the case's.
		out=$("$VDISKCTL" attach "$img" 2>&1) && fail "$name: hostile image attached as $out"
		grep -Eq -- "$rx" <<<"${out//"$img"/IMAGE}" || fail "$name: message '$out' lacks /$rx/"
		log "$name: $out"
		kout=$(genl_add_open "$img" O_RDONLY FORMAT=2) &&
			fail "$name: the kernel attached the hostile image: $kout"
		grep -Eq -- "^error [0-9-]+: .*($rx)" <<<"$kout" ||
			fail "$name: kernel's message '$kout' lacks /$rx/"
		log "$name: kernel: $kout" ;;
	eio)
		dev=$("$VDISKCTL" attach -f qcow2 "$img" 2>&1) || {
			refused+=("$name")
			log "$name: refused: $dev"
			continue
		}
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
# The damage of these cases is in tables read later: the read path must
# be reached, not the attach refuse them.
[ ${#refused[@]} -eq 0 ] || fail "cases meant to reach reads were refused at attach: ${refused[*]}"

# A guest must not turn its raw disk, attached with the format detected,
# into a qcow2 image: the next attach would detect qcow2 and open the
# backing file the guest's header names, as root (QEMU's CVE-2008-2004).
cd "$VD_DIR"
truncate -s 8M guest.raw
qemu-img create -q -f qcow2 -b /etc/passwd -F raw evil.qcow2 8M
attach guest.raw
assert_eq "$(vd_json_field "$DEV" format)" raw "format detected"
dmesg -C
dd if=evil.qcow2 of="$DEV" bs=4k count=1 oflag=direct status=none 2>err &&
	fail "a qcow2 header was written over a detected raw image"
grep -q "Input/output error" err || fail "unexpected error: $(cat err)"
dmesg | grep -q "refused a write that would make the raw image read as qcow2" ||
	fail "no kernel message for the refused write: $(dmesg | tail -3)"
# Anything else in that sector, and the header anywhere else, is written.
printf 'label: dos\nstart=2048, type=83\n' | run sfdisk -q "$DEV"
run dd if=evil.qcow2 of="$DEV" bs=4k count=1 seek=1 oflag=direct status=none
detach "$DEV"
[ "$(od -An -tx1 -j 0 -N 4 guest.raw | tr -d ' ')" != 514649fb ] ||
	fail "the qcow2 magic reached the raw image"
assert_eq "$(od -An -tx1 -j 510 -N 2 guest.raw | tr -d ' ')" 55aa "the partition table's signature"
cmp -s -n 4096 -i 4096:0 guest.raw evil.qcow2 || fail "the write to the second block did not land"
# The check is made on a copy of the data, which is what is written: a
# guest changing its buffer while the write is under way must not get the
# magic through (write-back, where the write lags most behind queue_rq).
attach --cache writeback guest.raw
python3 - "$DEV" guest.raw <<'PY' || fail "the qcow2 magic reached the image through a buffer changed under the write"
import mmap, os, sys, threading
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
img = os.open(sys.argv[2], os.O_RDONLY)
buf = mmap.mmap(-1, 4096)
stop = False
def flip():
    while not stop:
        buf[0:4] = b"QFI\xfb"
        buf[0:4] = b"\0\0\0\0"
t = threading.Thread(target=flip)
t.start()
refused = leaked = 0
for i in range(1000):
    try:
        os.pwrite(fd, buf, 0)
    except OSError:
        refused += 1
    # Write-back: the image's page cache shows what was written.
    if os.pread(img, 4, 0) == b"QFI\xfb":
        leaked += 1
stop = True
t.join()
print("# writes refused while the buffer changed: %d of 1000; magic in the image after %d" % (refused, leaked))
sys.exit(1 if leaked else 0)
PY
detach "$DEV"
[ "$(od -An -tx1 -j 0 -N 4 guest.raw | tr -d ' ')" != 514649fb ] ||
	fail "the qcow2 magic reached the raw image through a changing buffer"
# Given the format, the owner may write whatever they like there.
attach -f raw guest.raw
run dd if=evil.qcow2 of="$DEV" bs=4k count=1 oflag=direct status=none
detach "$DEV"
cmp -s -n 4096 guest.raw evil.qcow2 || fail "the write with an explicit format did not land"
exit 0
