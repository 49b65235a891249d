#!/bin/bash
# An idle writable qcow2 device takes little more kernel memory than a raw
# one.  Its refcount table is a cluster or more on disk (64 KiB covers
# 16 TiB at 64 KiB clusters) and nearly all zeros; only the entries up to
# the last refcount block in use are held in memory.
. ./lib.sh

n=24
# Slab and vmalloc, in KiB, once the caches are dropped: where the image's
# tables live (kvmalloc; kmalloc blocks over 8 KiB count as slab too).  Not
# the page allocator's total, which moves by megabytes with the per-CPU
# free page lists.
kernel_kib() {
	settle_memory
	awk '{ m[$1] = $2 }
	     END { print m["Slab:"] + m["VmallocUsed:"] }' /proc/meminfo
}

# per_device IMAGE...: attach them all, set $per_dev to the slab and vmalloc
# each took (KiB), detach them all.
per_device() {
	local before after img

	before=$(kernel_kib)
	for img in "$@"; do
		attach "$img"
	done
	after=$(kernel_kib)
	detach --all
	per_dev=$(( (after - before) / $# ))
}

# Empty images, so that the partition scan finds no L2 table to cache.
qemu-img create -q -f qcow2 -o cluster_size=64k "$VD_DIR/tmpl.qcow2" 1G
# One process makes all images: forking dozens of tools is slow under TCG.
python3 - "$VD_DIR" $n <<'PY'
import shutil, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    with open(f"{d}/{i}.img", "wb") as f:
        f.truncate(1 << 30)
    shutil.copyfile(f"{d}/tmpl.qcow2", f"{d}/{i}.qcow2")
PY
raws=() q2s=()
for i in $(seq 1 $n); do
	raws+=("$VD_DIR/$i.img") q2s+=("$VD_DIR/$i.qcow2")
done
# The first devices attached since boot also grow the kernel's caches for
# good (megabytes in all): pay that before measuring.
per_device "${raws[@]:0:8}" "${q2s[@]:0:8}"
per_device "${raws[@]}"; raw=$per_dev
per_device "${q2s[@]}"; q2=$per_dev
log "per idle device: raw $raw KiB, qcow2 $q2 KiB (refcount table on disk: 64 KiB)"
# Measured (slub_debug): 77-78 KiB more than raw while the whole table was
# held, 12-16 KiB since (6.1, 6.12; 24 and 64 devices).
[ $((q2 - raw)) -le 40 ] ||
	fail "an idle qcow2 device takes $((q2 - raw)) KiB more than a raw one (limit 40)"

# A small-cluster image outgrows the part of its table held in memory,
# then the table itself (64 entries a cluster, 128 KiB of file per refcount
# block at 512-byte clusters; both step every 8 MiB of file): 16 MiB
# written leave an image that qemu-img finds clean and that holds what
# was written.
qemu-img create -q -f qcow2 -o cluster_size=512 "$VD_DIR/small.qcow2" 32M
make_pattern "$VD_DIR/pattern" $((16 << 20)) 7
attach "$VD_DIR/small.qcow2"
run dd if="$VD_DIR/pattern" of="$DEV" bs=1M oflag=direct status=none
detach "$DEV"
run qemu-img check -q "$VD_DIR/small.qcow2"
run qemu-img convert -O raw "$VD_DIR/small.qcow2" "$VD_DIR/small.raw"
cmp -n $((16 << 20)) "$VD_DIR/pattern" "$VD_DIR/small.raw" ||
	fail "the image does not hold what was written"
exit 0
