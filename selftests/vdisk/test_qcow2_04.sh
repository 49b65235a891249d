#!/bin/bash
# Backing chains: resolved by vdiskctl like qemu-img (relative names
# against the naming image's directory), checked by the kernel, read
# through byte-identical; loops, missing files and over-deep chains are
# refused with a reason.
. ./lib.sh

cd "$VD_DIR"
q() { "$@" >/dev/null || fail "$*"; }
mkdir -p base images elsewhere

# raw base (8M) <- qcow2 mid (12M) <- qcow2 top (16M): each layer smaller
# than the one above, different data written at each level.
truncate -s 8M base/base.raw
q qemu-io -f raw -c "write -P 0x01 0 8M" base/base.raw
q qemu-img create -q -f qcow2 -b ../base/base.raw -F raw base/mid.qcow2 12M
q qemu-io -c "write -P 0x02 1M 2M" -c "write -z 4M 1M" -c "write -P 0x03 10M 1M" base/mid.qcow2
q qemu-img create -q -f qcow2 -b ../base/mid.qcow2 -F qcow2 images/top.qcow2 16M
q qemu-io -c "write -P 0x04 2M 512k" -c "write -P 0x05 15M 1M" images/top.qcow2
cd elsewhere
oracle_check ../images/top.qcow2
attach --cache-size 256K ../images/top.qcow2
cd ..
json=$("$VDISKCTL" list --json "$DEV")
JSON=$json python3 - "$VD_DIR" <<'PY' || fail "chain not in list --json: $json"
import json, os, sys
d = json.loads(os.environ["JSON"])["vdisks"][0]
base = sys.argv[1]
chain = [(l["path"], l["format"]) for l in d["backing-chain"]]
assert chain == [(base + "/base/mid.qcow2", "qcow2"), (base + "/base/base.raw", "raw")], chain
assert d["cache-size"] == 256 << 10, d
assert d["format"] == "qcow2" and d["ro"] is False, d
PY
"$VDISKCTL" list | grep -q "top.qcow2 -> .*mid.qcow2 -> .*base.raw" || fail "chain not in list"
detach "$DEV"

# info describes the chain like qemu-img info does.
"$VDISKCTL" info images/top.qcow2 >info.txt || fail "vdiskctl info failed"
grep -q "backing file: ../base/mid.qcow2" info.txt || fail "info lacks the backing file: $(cat info.txt)"
vsize=$("$VDISKCTL" info --json images/top.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
assert_eq "$vsize" $((16 << 20)) "info virtual size"

# A missing backing file is named.
q qemu-img create -q -f qcow2 -u -b gone.qcow2 -F qcow2 orphan.qcow2 4M
expect_fail "gone.qcow2" "$VDISKCTL" attach orphan.qcow2

# A loop (a names b, b names a) is refused.
q qemu-img create -q -f qcow2 a.qcow2 4M
q qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 b.qcow2 4M
q qemu-img rebase -u -b b.qcow2 -F qcow2 a.qcow2
expect_fail "loop" "$VDISKCTL" attach a.qcow2

# The kernel checks the chain it gets: a layer that is not the named file.
python3 - "$VD_GENL" <<'PY' || fail "kernel accepted a wrong backing layer"
import os, struct, subprocess, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import vdisk_genl as g
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "impostor.qcow2", "4M"], check=True)
c = g.Genl()
top = os.open("b.qcow2", os.O_RDONLY)
imp = os.open("impostor.qcow2", os.O_RDONLY)
layer = g.nla(g.C["VDISK_LAYER_ATTR_FD"], struct.pack("I", imp)) + \
        g.nla(g.C["VDISK_LAYER_ATTR_PATH"], os.path.abspath("impostor.qcow2").encode() + b"\0")
backing = g.nla(g.C["VDISK_ATTR_BACKING"] | g.NLA_F_NESTED, g.nla(1 | g.NLA_F_NESTED, layer))
try:
    c.cmd("ADD", g.enc("FD", top) + g.enc("PATH", os.path.abspath("b.qcow2")) + backing)
except g.NetlinkError as e:
    print("# refused:", e.msg)
    sys.exit(0 if e.msg else 1)
sys.exit(1)
PY

# 16 layers below the top attach, with long paths (a large description:
# list, events and dumps must still fit); 17 are refused.
long=$VD_DIR/$(printf 'p%.0s' $(seq 200))/$(printf 'q%.0s' $(seq 200))
mkdir -p "$long"
cd "$long"
truncate -s 1M l0.raw
prev=l0.raw pf=raw
for i in $(seq 1 17); do
	q qemu-img create -q -f qcow2 -b $prev -F $pf l$i.qcow2 1M
	prev=l$i.qcow2 pf=qcow2
done
q qemu-io -c "write -P 0x09 0 4k" l16.qcow2
"$VDISKCTL" monitor --count 1 >"$VD_DIR/ev" &
mon=$!
sleep 0.5
oracle_check l16.qcow2
wait $mon
grep -q "^attach .*backing=" "$VD_DIR/ev" || fail "no attach event for the deep chain: $(cat "$VD_DIR/ev")"
attach l16.qcow2
"$VDISKCTL" list >/dev/null || fail "list failed with a deep chain attached"
n=$("$VDISKCTL" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["vdisks"][0]["backing-chain"]))')
assert_eq "$n" 16 "layers listed"
detach "$DEV"
expect_fail "deeper than 16" "$VDISKCTL" attach l17.qcow2

# A header naming a character device as its backing file: root opens
# nothing but regular files and block devices for an image's header.
cd "$VD_DIR"
q qemu-img create -q -f qcow2 -b /dev/zero -F raw chr.qcow2 1M
expect_fail "backing file /dev/zero: is not a regular file or block device" "$VDISKCTL" attach chr.qcow2
expect_fail "backing file /dev/zero: is not a regular file or block device" "$VDISKCTL" info chr.qcow2
# Control characters in a header's names stay escaped in error messages.
q qemu-img create -q -f qcow2 -u -b "$(printf '/x\nd\033[31m')" -F raw esc.qcow2 1M
out=$("$VDISKCTL" attach esc.qcow2 2>&1) && fail "attached with a missing backing file"
assert_eq "$(printf '%s' "$out" | wc -l)" 0 "newlines inside the error message"
grep -qF 'backing file /x\x0ad\x1b[31m: No such file' <<<"$out" || fail "unescaped or wrong message: $out"

# A backing layer on a disk of 4 KiB sectors under a top layer on 512-byte
# sectors.  The device's queue promises the top layer's direct I/O
# alignment (buffers and pieces in 512-byte multiples), so that layer is
# read buffered; read directly, its file system refused the pieces of a
# read in pieces of 512 bytes and 7.5 KiB (XFS: EINVAL, an I/O error;
# ext4 falls back to buffered reads by itself).  Two buffers, so that the
# block layer cannot merge the pieces into whole pages.
cd "$VD_DIR"
truncate -s 512M 4kn.disk
modprobe loop 2>/dev/null
modprobe xfs 2>/dev/null
lo=$(losetup --sector-size 4096 -f --show 4kn.disk) || fail "losetup --sector-size 4096"
at_exit losetup -d "$lo"
q mkfs.xfs -q -f "$lo"
vd_mount "$lo" "$VD_DIR/4kn"
q qemu-img create -q -f qcow2 4kn/base.qcow2 8M
q qemu-io -c "write -P 0x66 0 8M" 4kn/base.qcow2
q qemu-img create -q -f qcow2 -b "$VD_DIR/4kn/base.qcow2" -F qcow2 top4k.qcow2 8M
attach --cache none top4k.qcow2
python3 - "$DEV" <<'PY' || fail "direct read through a backing layer on 4 KiB sectors, in 512-byte pieces"
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
a, b = mmap.mmap(-1, 4096), mmap.mmap(-1, 2 * 4096)
va, vb = memoryview(a)[:512], memoryview(b)[:7680]
n = os.preadv(fd, [va, vb], 4096)
assert n == 8192, n
assert bytes(va) + bytes(vb) == b"\x66" * 8192, "wrong data"
PY
detach "$DEV"
# The format probe reads 16 bytes: buffered, even through an O_DIRECT
# descriptor (XFS refuses so small a direct read).
genl_add_open 4kn/base.qcow2 "O_RDONLY|O_DIRECT" "PATH=$VD_DIR/4kn/base.qcow2" >genl.out 2>&1 ||
	fail "attach through an O_DIRECT descriptor on XFS: $(cat genl.out)"
idx=$(grep -o "'INDEX': [0-9]*" genl.out | grep -o "[0-9]*$")
[ -n "$idx" ] || fail "no INDEX in the reply: $(head -c 300 genl.out)"
VD_DEVICES+=("/dev/vdisk$idx")
assert_eq "$(vd_json_field "/dev/vdisk$idx" format)" qcow2 "format probed through an O_DIRECT descriptor"
detach "/dev/vdisk$idx"
# A device of 4 KiB sectors on that file system, direct: each piece of a
# request reaches XFS as it is, and XFS takes only whole 4 KiB pieces.  A
# buffer at 512 bytes into a page spans two pages, made physically apart
# by touching them in reverse (else one merged piece), and reached XFS as
# pieces of 3.5 KiB and 512 bytes: EIO on 6.1 in half the reads (6.12
# passes XFS's EINVAL on).  The device must refuse such buffers (EINVAL)
# or read and write them right.
q dd if=/dev/urandom of=4kn/r.raw bs=1M count=4 status=none
attach --sector-size 4096 --cache none 4kn/r.raw
python3 - "$DEV" 4kn/r.raw <<'PY' || fail "direct I/O with buffers not 4 KiB aligned, 4 KiB sectors on XFS"
import errno, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_DIRECT)
want = open(sys.argv[2], "rb").read(1 << 20)
refused = 0
for off in range(0, 32 * 4096, 4096):
    m = mmap.mmap(-1, 3 * 4096)
    m[8192] = 1; m[4096] = 1; m[0] = 1
    v = memoryview(m)[512:4608]
    try:
        assert os.preadv(fd, [v], off) == 4096
        assert bytes(v) == want[off:off + 4096], "wrong data at %d" % off
        assert os.pwritev(fd, [v], off) == 4096
    except OSError as e:
        assert e.errno == errno.EINVAL, "read or write at %d: %s" % (off, e)
        refused += 1
print("# buffers at 512 bytes into a page refused with EINVAL: %d of 32" % refused)
v = memoryview(mmap.mmap(-1, 4096))
assert os.preadv(fd, [v], 8192) == 4096 and bytes(v) == want[8192:12288]
PY
detach "$DEV"
q umount "$VD_DIR/4kn"
exit 0
