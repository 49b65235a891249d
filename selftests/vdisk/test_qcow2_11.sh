#!/bin/bash
# Hostile qcow2 images against the write path (found by a review,
# 2026-12-07; QEMU refuses both).
#  1. A data entry (COPIED, so written in place) that names the image's
#     own refcount block: the guest zeroes every refcount with one write,
#     and the allocator then hands out the header cluster as free, where
#     the guest's next write lands.  At the next attach the header is the
#     guest's, naming any backing file (/etc/shadow).  The in-place write
#     must be refused, and a later allocation must not touch the header.
#  2. Refcounts that claim every cluster up to the 64 PiB limit (one
#     all-ones block named by every entry of the refcount table, 1-bit
#     refcounts, 2 MiB clusters): the first allocating write scanned 2^35
#     clusters, minutes of CPU holding the image's metadata lock.  Past
#     the end of the file nothing can be in use: it must take a moment.
#  3. A refcount table of 1M entries alternating between two blocks far
#     apart: a writable open checked each block's own refcount in table
#     order, reading a cluster per entry (minutes, holding vdisk's global
#     lock).  The allocator guards metadata now, so those checks are gone.
. ./lib.sh

cd "$VD_DIR"
command -v qemu-img >/dev/null || skip "qemu-img not installed"

# in_30s WHAT CMD...: CMD must end, with success, within 30 s.  A task in
# the kernel cannot be killed: poll, judge, then wait for it.
in_30s() {
	local what=$1 pid rc slow=0
	shift
	"$@" &
	pid=$!
	for _ in $(seq 300); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
	kill -0 $pid 2>/dev/null && slow=1
	wait $pid
	rc=$?
	[ $slow = 0 ] || fail "$what took over 30 s"
	[ $rc = 0 ] || fail "$what failed ($rc)"
}

# 1. Guest cluster 0's L2 entry -> the refcount block, COPIED.
run qemu-img create -q -f qcow2 hostile.qcow2 64M
run qemu-io -f qcow2 -c "write -P 0x11 0 64k" hostile.qcow2
python3 - hostile.qcow2 <<'PY' || fail "patching the image"
import struct, sys
f = open(sys.argv[1], 'r+b')
h = f.read(104)
l1 = struct.unpack('>Q', h[40:48])[0]
rt = struct.unpack('>Q', h[48:56])[0]
f.seek(rt); rb = struct.unpack('>Q', f.read(8))[0]
f.seek(l1); l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2); f.write(struct.pack('>Q', rb | (1 << 63)))
PY
attach --cache none hostile.qcow2
if dd if=/dev/zero of="$DEV" bs=64k count=1 oflag=direct status=none 2>/dev/null; then
	fail "a write in place over the refcount block was taken"
fi
# The device refuses writes once the image is marked corrupt, or takes
# them elsewhere; either way the header must stay the image's.
dd if=/dev/urandom of="$DEV" bs=64k count=4 seek=16 oflag=direct status=none 2>/dev/null
detach "$DEV"
magic=$(head -c 4 hostile.qcow2 | od -An -tx1 | tr -d ' ')
[ "$magic" = 514649fb ] || fail "the header cluster was overwritten (magic $magic)"
qemu-img info hostile.qcow2 | grep -q "^backing file" && fail "the image gained a backing file"
log "refcount-block overlap refused, header intact"

# 2. Refcounts claiming everything; the write must finish within 30 s.
python3 - scan.qcow2 <<'PY' || fail "making the image"
import struct, sys
cb, order, nent = 21, 0, 2048
cs = 1 << cb
vsize = 1 << 30
l1_size = -(-vsize // (cs * (cs // 8)))
rt_clusters = -(-(nent * 8) // cs)
l1_off, rt_off = cs, 2 * cs
rb_off = rt_off + rt_clusters * cs
h = bytearray(cs)
struct.pack_into('>IIQIIQIIQQIIQ', h, 0, 0x514649fb, 3, 0, 0, cb, vsize, 0,
                 l1_size, l1_off, rt_off, rt_clusters, 0, 0)
struct.pack_into('>QQQII', h, 72, 0, 0, 0, order, 104)
rt = bytearray(rt_clusters * cs)
for i in range(nent):
    struct.pack_into('>Q', rt, i * 8, rb_off)
with open(sys.argv[1], 'wb') as f:
    f.write(h + bytes(cs) + rt + b'\xff' * cs)
PY
attach --cache none scan.qcow2
head -c 4096 /dev/urandom >data
in_30s "the first allocating write" \
	dd if=data of="$DEV" bs=4k count=1 oflag=direct status=none
cmp -n 4096 data "$DEV" || fail "the data written reads back different"
detach "$DEV"
log "allocation past the claimed refcounts took under 30 s"

# 3. Attach within 30 s (1 MiB clusters, 64-bit refcounts: a block
#    covers 128 GiB, so the file is that sparse size; the old module read
#    1 TiB of refcount blocks).
python3 - probe.qcow2 <<'PY' || fail "making the image"
import struct, sys
cb, order = 20, 6
cs = 1 << cb
region = (1 << (cb + 3 - order)) * cs
vsize = 1 << 30
l1_size = -(-vsize // (cs * (cs // 8)))
rt_bytes = 8 << 20
l1_off, rt_off = cs, 2 * cs
x, y = rt_off + rt_bytes, region
rt = struct.pack('>QQ', x, y) * (rt_bytes // 16)
h = bytearray(cs)
struct.pack_into('>IIQIIQIIQQIIQ', h, 0, 0x514649fb, 3, 0, 0, cb, vsize, 0,
                 l1_size, l1_off, rt_off, rt_bytes // cs, 0, 0)
struct.pack_into('>QQQII', h, 72, 0, 0, 0, order, 104)
with open(sys.argv[1], 'wb') as f:
    f.write(h + bytes(cs) + rt)
    f.seek(x); f.write(b'\xff' * cs)
    f.seek(y); f.write(b'\xff' * cs)
PY
in_30s "the writable attach" \
	sh -c '"$1" attach --cache none probe.qcow2 >dev.out' sh "$VDISKCTL"
detach "$(cat dev.out)"
log "writable attach of a 1M-entry refcount table took under 30 s"
exit 0
