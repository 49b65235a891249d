#!/bin/bash
# qcow2 read path against the oracle: every shape qemu-img makes reads back
# byte-identical to `qemu-img convert -O raw`.
. ./lib.sh

cd "$VD_DIR"
io() { qemu-io "$@" >/dev/null || fail "qemu-io $*"; }
mk() { qemu-img create -q -f qcow2 "$@" || fail "qemu-img create $*"; }

# Scattered writes, zero clusters, discards; every cluster size.
for cs in 512 4096 65536 2097152; do
	mine "cluster size $cs" || continue
	mk -o cluster_size=$cs c$cs.qcow2 24M
	io -c "write -P 0x11 0 5k" -c "write -P 0x22 1000k 300k" \
		-c "write -P 0x33 8M 3M" -c "write -z 9M 512k" \
		-c "discard 10M 512k" -c "write -P 0x44 23M 1M" c$cs.qcow2
	oracle_check c$cs.qcow2
done

# Version 2 (compat=0.10), refcount widths 1 and 64.
if mine "version 2"; then
	mk -o compat=0.10 v2.qcow2 16M
	io -c "write -P 0x55 4k 12k" -c "write -P 0x56 7M 1M" v2.qcow2
	oracle_check v2.qcow2
fi
for rb in 1 64; do
	mine "refcount_bits=$rb" || continue
	mk -o refcount_bits=$rb rc$rb.qcow2 16M
	io -c "write -P 0x57 0 3M" -c "write -z 1M 64k" rc$rb.qcow2
	oracle_check rc$rb.qcow2
done

# Extended L2: partial subcluster writes and zeroes.
if mine "extended L2, 64 KiB clusters"; then
	mk -o extended_l2=on,cluster_size=64k el2.qcow2 16M
	io -c "write -P 0x66 4k 8k" -c "write -z 40k 4k" -c "write -P 0x67 100k 2k" el2.qcow2
	oracle_check el2.qcow2
fi
if mine "extended L2, 2 MiB clusters"; then
	mk -o extended_l2=on,cluster_size=2M el2b.qcow2 16M
	io -c "write -P 0x68 64k 64k" -c "write -z 1M 128k" el2b.qcow2
	oracle_check el2b.qcow2
fi

# Compressed: zlib and zstd, like cloud images.
python3 - <<'PY'
import random
r = random.Random(7)
with open("src.raw", "wb") as f:
    for i in range(6):
        if i % 3 == 0:
            f.write(bytes(1 << 20))                       # zeros
        elif i % 3 == 1:
            f.write(b"".join(b"row %06d %s\n" % (j, b"x" * (j % 50)) for j in range(20000))[:1 << 20])
        else:
            f.write(r.randbytes(1 << 20))                 # incompressible
PY
for ct in zlib zstd; do
	qemu-img convert -c -O qcow2 -o compression_type=$ct src.raw $ct.qcow2 || fail "convert -c $ct"
	assert_compressed $ct.qcow2
	oracle_check $ct.qcow2
done
qemu-img convert -c -O qcow2 -o cluster_size=4k src.raw z4k.qcow2 || fail "convert -c, 4 KiB clusters"
assert_compressed z4k.qcow2
oracle_check z4k.qcow2

# Zero clusters over a backing file would hide it; plain zero flag here.
mk zf.qcow2 8M
io -c "write -P 0x77 0 8M" -c "write -z 2M 2M" zf.qcow2
oracle_check zf.qcow2

# Internal snapshots: the active state and each snapshot.
mk snap.qcow2 16M
io -c "write -P 0x01 0 4M" snap.qcow2
qemu-img snapshot -c first snap.qcow2
io -c "write -P 0x02 1M 2M" -c "write -z 3M 1M" snap.qcow2
qemu-img snapshot -c second snap.qcow2
io -c "write -P 0x03 0 512k" snap.qcow2
oracle_check snap.qcow2
ORACLE_ARGS="-l snapshot.name=first" oracle_check snap.qcow2 --snapshot first
ORACLE_ARGS="-l snapshot.name=second" oracle_check snap.qcow2 --snapshot 2
attach --snapshot first snap.qcow2
assert_eq "$(blockdev --getro "$DEV")" 1 "snapshot is read-only"
detach "$DEV"
expect_fail "snapshot" "$VDISKCTL" attach --snapshot nosuch snap.qcow2

# Odd virtual size: the device is the size rounded down to sectors.
mk odd.qcow2 10000000
io -c "write -P 0x44 0 64k" odd.qcow2
oracle_check odd.qcow2
exit 0
