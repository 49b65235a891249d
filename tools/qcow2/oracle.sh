#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The qcow2 core against the judge: images of many shapes made with
# qemu-img/qemu-io, read by q2cat (the core) and by `qemu-img convert -O raw`,
# must hash the same.  KTAP on stdout.
#
#   oracle.sh [-v]     -v keeps going with the failing hashes on stderr
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
Q2CAT=${Q2CAT:-$here/q2cat}
verbose=${1:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/q2oracle.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

results=()
failed=0

report() {	# ok|not-ok name [detail]
	local i=$((${#results[@]} + 1))
	if [ "$1" = ok ]; then
		results+=("ok $i $2")
	else
		results+=("not ok $i $2${3:+ # $3}")
		failed=$((failed + 1))
	fi
}

# same NAME Q2CAT-ARGS... :: QEMU-IMG-CONVERT-ARGS...
same() {
	local name=$1 q=() c=() a b
	shift
	while [ "$1" != "::" ]; do q+=("$1"); shift; done
	shift
	c=("$@")
	a=$("$Q2CAT" "${q[@]}" 2>"$tmp/q2cat.err" | sha256sum) || true
	if ! qemu-img convert -O raw "${c[@]}" "$tmp/ref.raw" 2>"$tmp/qemu.err"; then
		report not-ok "$name" "qemu-img convert failed: $(head -c 100 "$tmp/qemu.err")"
		return
	fi
	b=$(sha256sum < "$tmp/ref.raw")
	rm -f "$tmp/ref.raw"
	if [ -s "$tmp/q2cat.err" ]; then
		report not-ok "$name" "q2cat: $(head -c 120 "$tmp/q2cat.err" | tr '\n' ' ')"
	elif [ "$a" != "$b" ]; then
		report not-ok "$name" "hash mismatch"
		[ -n "$verbose" ] && echo "$name: q2cat $a qemu $b" >&2
	else
		report ok "$name"
	fi
}

# Plain comparison of an image with its own backing chain.
same_img() {
	same "$1" "$2" :: "$2"
}

io() {	# IMAGE qemu-io commands...
	local img=$1 args=()
	shift
	for c in "$@"; do args+=(-c "$c"); done
	qemu-io -f qcow2 "${args[@]}" "$img" >/dev/null
}

# Scattered writes that cross cluster and L2 boundaries, at sizes
# proportional to the cluster size $2.
scatter() {
	local img=$1 cs=$2
	io "$img" "write -P 0x11 0 $((cs / 2))" \
		"write -P 0x22 $((cs - 512)) $((cs * 2 + 1024))" \
		"write -P 0x33 $((cs * 7)) 512" \
		"write -P 0x44 $((cs * 9 + 512)) $((cs * 3))" \
		"write -P 0x55 3M 64k" \
		"write -P 0x66 $((8 * 1024 * 1024 - cs)) $cs" \
		"write -P 0x77 $((16 * 1024 * 1024 - 4096)) 4096"
}

# A raw file of compressible, varied content.
pattern_raw() {	# FILE MiB
	python3 - "$1" "$2" <<'EOF'
import random, sys
r = random.Random(int(sys.argv[2]))
n = int(sys.argv[2]) << 20
b = bytearray()
while len(b) < n:
    k = r.randrange(6)
    if k == 0:
        b += bytes(r.randrange(1, 70000))          # zero runs
    elif k == 1:
        b += r.randbytes(r.randrange(1, 9000))     # incompressible
    else:
        b += bytes([r.randrange(256)]) * r.randrange(1, 3000)
open(sys.argv[1], "wb").write(bytes(b[:n]))
EOF
}

# 1. Cluster sizes x versions, with zero clusters and discards on v3.
for cs in 512 4096 65536 2097152; do
	for compat in 0.10 1.1; do
		img=cs$cs-$compat.qcow2
		qemu-img create -q -f qcow2 -o cluster_size=$cs,compat=$compat "$img" 16M
		scatter "$img" $cs
		io "$img" "write -z $((cs * 8)) $((cs * 2))" "discard $((cs * 10)) $cs" \
			"write -P 0x99 $((cs * 20)) $((cs / 2))"
		same_img "cluster=$cs compat=$compat" "$img"
	done
done

# 2. Refcount widths.
for rb in 1 64; do
	img=rb$rb.qcow2
	qemu-img create -q -f qcow2 -o refcount_bits=$rb,cluster_size=4096 "$img" 16M
	scatter "$img" 4096
	same_img "refcount_bits=$rb" "$img"
done

# 3. Extended L2: partial subcluster writes, subcluster zeroes and discards.
for cs in 16384 65536 2097152; do
	img=ext$cs.qcow2
	qemu-img create -q -f qcow2 -o cluster_size=$cs,extended_l2=on "$img" 16M
	sc=$((cs / 32))
	io "$img" "write -P 0x11 0 $sc" "write -P 0x12 $((sc * 3)) $((sc * 2))" \
		"write -P 0x13 $((cs + sc * 31)) $((sc * 2))" \
		"write -z $((sc * 4)) $sc" "write -P 0x14 $((cs * 5)) $cs" \
		"discard $((cs * 5 + sc * 8)) $((sc * 4))" \
		"write -P 0x15 $((16 * 1024 * 1024 - sc)) $sc"
	same_img "extended_l2 cluster=$cs" "$img"
done

# 4. Compression: zlib and zstd, mixed with later plain writes.
pattern_raw src.raw 8
for ct in zlib zstd; do
	for cs in 512 4096 65536 2097152; do
		img=comp-$ct-$cs.qcow2
		qemu-img convert -q -c -O qcow2 -o compression_type=$ct,cluster_size=$cs \
			src.raw "$img"
		same_img "compressed $ct cluster=$cs" "$img"
	done
	img=comp-$ct-mixed.qcow2
	qemu-img convert -q -c -O qcow2 -o compression_type=$ct src.raw "$img"
	scatter "$img" 65536
	io "$img" "write -z 1M 128k" "discard 2M 64k"
	same_img "compressed $ct + rewrites" "$img"
	img=comp-$ct-extl2.qcow2
	qemu-img convert -q -c -O qcow2 -o compression_type=$ct,extended_l2=on \
		src.raw "$img"
	io "$img" "write -P 0x42 4k 2k"
	same_img "compressed $ct extended_l2" "$img"
done
img=comp-v2.qcow2
qemu-img convert -q -c -O qcow2 -o compat=0.10 src.raw "$img"
same_img "compressed v2" "$img"

# 5. Zero clusters with and without unmap; preallocation modes.
img=zero.qcow2
qemu-img create -q -f qcow2 zero.qcow2 16M
io "$img" "write -P 0xaa 0 4M" "write -z 64k 256k" "write -z -u 1M 512k" \
	"write -z 3M 4k"
same_img "zero clusters" "$img"
for prealloc in metadata falloc full; do
	img=prealloc-$prealloc.qcow2
	qemu-img create -q -f qcow2 -o preallocation=$prealloc "$img" 8M
	io "$img" "write -P 0x31 100k 50k" "write -z 1M 1M"
	same_img "preallocation=$prealloc" "$img"
done

# 6. Discarded ranges over a fully written image.
img=discard.qcow2
qemu-img create -q -f qcow2 "$img" 8M
io "$img" "write -P 0x5a 0 8M" "discard 64k 192k" "discard 2M 1M" \
	"discard 7M 1M"
same_img "discards" "$img"

# 7. Three layers over a raw base, resolved automatically and given
#    explicitly.
pattern_raw base.raw 16
qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 16M
io mid.qcow2 "write -P 0x21 1M 1M" "write -z 5M 1M" "write -P 0x22 9M 4k"
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 16M
io top.qcow2 "write -P 0x23 1536k 64k" "discard 9M 64k" "write -P 0x24 12M 8k"
same_img "three layers, raw base" top.qcow2
same "three layers, explicit" top.qcow2 mid.qcow2 base.raw :: top.qcow2

# 8. Backing files smaller and larger than the overlay.
qemu-img create -q -f qcow2 small.qcow2 4M
io small.qcow2 "write -P 0x61 0 4M"
qemu-img create -q -f qcow2 -b small.qcow2 -F qcow2 over-big.qcow2 16M
io over-big.qcow2 "write -P 0x62 2M 4k" "write -P 0x63 6M 4k"
same_img "backing smaller than overlay" over-big.qcow2
qemu-img create -q -f raw small2.raw 3M
io_raw() { qemu-io -f raw -c "$2" "$1" >/dev/null; }
io_raw small2.raw "write -P 0x64 0 3M"
qemu-img create -q -f qcow2 -b small2.raw -F raw over-raw.qcow2 8M
same_img "raw backing smaller than overlay" over-raw.qcow2
qemu-img create -q -f qcow2 -b base.raw -F raw over-small.qcow2 4M
io over-small.qcow2 "write -P 0x65 1M 4k"
same_img "backing larger than overlay" over-small.qcow2

# 9. Internal snapshots, active state and each snapshot by name and id.
img=snap.qcow2
qemu-img create -q -f qcow2 "$img" 16M
scatter "$img" 65536
qemu-img snapshot -c first "$img"
io "$img" "write -P 0xe1 0 1M" "write -z 3M 64k" "discard 8M 1M"
qemu-img snapshot -c second "$img"
io "$img" "write -P 0xe2 512k 1M"
same_img "snapshots: active state" "$img"
same "snapshot by name (first)" --snapshot first "$img" :: -l snapshot.name=first "$img"
same "snapshot by id (2)" --snapshot 2 "$img" :: -l snapshot.id=2 "$img"
same "snapshot id-or-name (second)" --snapshot second "$img" :: -l second "$img"
# Id matched before name: snapshot "2" has id 1, snapshot "1" has id 2.
img=ambig.qcow2
qemu-img create -q -f qcow2 "$img" 4M
io "$img" "write -P 0xd1 0 1M"
qemu-img snapshot -c 2 "$img"
io "$img" "write -P 0xd2 0 1M"
qemu-img snapshot -c 1 "$img"
io "$img" "write -P 0xd3 0 1M"
same "snapshot selector: id before name" --snapshot 1 "$img" :: -l 1 "$img"
# A snapshot over a backing file, and a snapshot of a compressed image.
qemu-img snapshot -c s top.qcow2
io top.qcow2 "write -P 0xe3 0 2M"
same "snapshot over backing chain" --snapshot s top.qcow2 :: -l snapshot.name=s top.qcow2
img=comp-zstd-65536.qcow2
qemu-img snapshot -c c "$img"
io "$img" "write -P 0xe4 0 1M"
same "snapshot of compressed image" --snapshot c "$img" :: -l c "$img"
# A snapshot taken before the image grew: the snapshot keeps its size.
img=grow.qcow2
qemu-img create -q -f qcow2 "$img" 4M
io "$img" "write -P 0xf1 0 4M"
qemu-img snapshot -c small "$img"
qemu-img resize -q "$img" 12M
io "$img" "write -P 0xf2 6M 1M"
same_img "grown image: active state" "$img"
a=$("$Q2CAT" --snapshot small "$img" | sha256sum)
qemu-img convert -O raw -l small "$img" grow-snap.raw
b=$(head -c 4M grow-snap.raw | sha256sum)
rm -f grow-snap.raw
[ "$a" = "$b" ] && report ok "grown image: snapshot keeps its size" ||
	report not-ok "grown image: snapshot keeps its size"

# 10. Relative backing names in subdirectories, read from elsewhere.
mkdir -p d/sub d/other
pattern_raw d/other/base.raw 4
qemu-img create -q -f qcow2 -b ../other/base.raw -F raw d/sub/mid.qcow2 4M
io d/sub/mid.qcow2 "write -P 0x71 64k 64k"
(cd d/sub && qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 4M)
io d/sub/top.qcow2 "write -P 0x72 128k 4k"
same_img "relative backing names" d/sub/top.qcow2

# 11. Many L2 tables through a cache of four: eviction under a long walk.
img=evict.qcow2
qemu-img create -q -f qcow2 -o cluster_size=512 "$img" 32M
for i in $(seq 0 31); do echo "write -P $((i + 1)) $((i * 1024 * 1024 + i * 512)) 1024"; done |
	qemu-io -f qcow2 "$img" >/dev/null
same "small L2 cache, 32 tables" --cache 1 "$img" :: "$img"

# 12. Lazy refcounts and a dirty image left by a simulated crash.
img=lazy.qcow2
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$img" 8M
(ulimit -c 0; qemu-io -f qcow2 -c "write -P 0x81 0 1M" -c "write -P 0x82 3M 64k" \
	-c abort "$img" >/dev/null 2>&1) 2>/dev/null
if "$here/q2info" "$img" 2>/dev/null | grep -q 'dirty: true'; then
	same "lazy refcounts, dirty" "$img" :: "$img"
else
	report not-ok "lazy refcounts, dirty" "image is not dirty"
fi

# 13. A 64 MiB image with writes at both ends.
img=big.qcow2
qemu-img create -q -f qcow2 "$img" 64M
io "$img" "write -P 0x91 0 64k" "write -P 0x92 63M 1M" "write -P 0x93 32M 1536k"
same_img "64 MiB" "$img"

echo "KTAP version 1"
echo "1..${#results[@]}"
printf '%s\n' "${results[@]}"
echo "# oracle: $((${#results[@]} - failed)) passed, $failed failed" >&2
exit $((failed > 0))
