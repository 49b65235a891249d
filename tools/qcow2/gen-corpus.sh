#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Seed corpus for fuzz_image: small qcow2 images of many shapes made with
# qemu-img and qemu-io (the fuzzer's max_len is 1 MiB, so virtual sizes
# and clusters stay small).  q2test --write-seeds adds the hostile images.
#
#   gen-corpus.sh DIR
set -euo pipefail

out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/q2corpus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

io() {
	local img=$1 args=()
	shift
	for c in "$@"; do args+=(-c "$c"); done
	qemu-io -f qcow2 "${args[@]}" "$img" >/dev/null
}

keep() {	# IMAGE NAME: into the corpus if small enough
	local size
	size=$(stat -c %s "$1")
	if [ "$size" -le 1048576 ]; then
		cp "$1" "$out/seed-$2"
	fi
	rm -f "$1"
}

writes() {	# IMAGE CLUSTER
	local cs=$2
	io "$1" "write -P 0x11 0 $((cs / 2 + 7))" \
		"write -P 0x22 $((cs * 3 - 512)) $((cs + 1024))" \
		"write -P 0x33 $((cs * 40)) 512" "write -P 0x44 1000k 8k"
}

python3 - <<'PY'
import random
r = random.Random(7)
b = bytearray()
while len(b) < 512 * 1024:
    b += bytes([r.randrange(4)]) * r.randrange(1, 300)
    if r.randrange(5) == 0:
        b += r.randbytes(r.randrange(1, 100))
open("src.raw", "wb").write(bytes(b[:512 * 1024]))
PY

for cs in 512 1024 4096 16384 65536; do
	for compat in 0.10 1.1; do
		qemu-img create -q -f qcow2 -o cluster_size=$cs,compat=$compat a.qcow2 4M
		writes a.qcow2 $cs
		[ "$compat" = 1.1 ] && io a.qcow2 "write -z $((cs * 10)) $cs" "discard $cs $cs"
		keep a.qcow2 "cs$cs-$compat"
	done
	for ct in zlib zstd; do
		qemu-img convert -q -c -O qcow2 -o cluster_size=$cs,compression_type=$ct src.raw c.qcow2
		keep c.qcow2 "comp-$ct-$cs"
	done
	qemu-img convert -q -c -O qcow2 -o cluster_size=$cs,compat=0.10 src.raw c.qcow2
	keep c.qcow2 "comp-v2-$cs"
done
for cs in 16384 65536; do
	qemu-img create -q -f qcow2 -o cluster_size=$cs,extended_l2=on e.qcow2 1M
	sc=$((cs / 32))
	io e.qcow2 "write -P 0x51 $sc $((sc * 2))" "write -z $((sc * 5)) $sc" \
		"write -P 0x52 $((cs * 3)) $cs" "discard $((cs * 3 + sc)) $sc"
	keep e.qcow2 "extl2-$cs"
	qemu-img convert -q -c -O qcow2 -o cluster_size=$cs,extended_l2=on,compression_type=zstd src.raw e.qcow2
	keep e.qcow2 "extl2-comp-$cs"
done
for rb in 1 8 64; do
	qemu-img create -q -f qcow2 -o refcount_bits=$rb,cluster_size=4096 r.qcow2 4M
	writes r.qcow2 4096
	keep r.qcow2 "refcount$rb"
done
qemu-img create -q -f qcow2 -o cluster_size=4096 s.qcow2 4M
writes s.qcow2 4096
qemu-img snapshot -c one s.qcow2
io s.qcow2 "write -P 0x61 0 64k"
qemu-img snapshot -c two s.qcow2
io s.qcow2 "write -z 4k 8k"
keep s.qcow2 snapshots
qemu-img create -q -f qcow2 -o cluster_size=4096 base.qcow2 1M
qemu-img create -q -f qcow2 -o cluster_size=4096 -b base.qcow2 -F qcow2 o.qcow2 4M
writes o.qcow2 4096
keep o.qcow2 overlay
qemu-img create -q -f raw base.raw 512k
qemu-img create -q -f qcow2 -o cluster_size=4096 -b base.raw -F raw o.qcow2 1M
keep o.qcow2 overlay-raw
qemu-img create -q -f qcow2 -o cluster_size=4096,lazy_refcounts=on l.qcow2 1M
(ulimit -c 0; qemu-io -f qcow2 -c "write -P 0x71 0 64k" -c abort l.qcow2 \
	>/dev/null 2>&1) 2>/dev/null || true
keep l.qcow2 dirty
qemu-img create -q -f qcow2 -o cluster_size=4096,preallocation=metadata p.qcow2 256k
keep p.qcow2 prealloc
qemu-img create -q -f qcow2 -o cluster_size=512 z.qcow2 0
keep z.qcow2 empty
qemu-img create -q -f qcow2 -o cluster_size=2M big.qcow2 1T
keep big.qcow2 huge-sparse
echo "gen-corpus: $(ls "$out" | wc -l) files in $out"
