#!/bin/bash
# fio with crc32c verification, several jobs of random writes of mixed
# sizes, on every cache mode.
. ./lib.sh
command -v fio >/dev/null || skip "fio not installed"

size=256M
[ "$VD_PROFILE" = quick ] && size=96M
for cache in none writeback writethrough; do
	img=$VD_DIR/$cache.img
	truncate -s $size "$img"
	attach --cache $cache "$img"
	run fio --name=verify --filename="$DEV" --ioengine=libaio --direct=1 \
		--rw=randwrite --bsrange=4k-1m --numjobs=4 --iodepth=8 \
		--offset_increment=$(( ${size%M} / 4 ))M --size=$(( ${size%M} / 4 ))M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --group_reporting \
		--output="$VD_DIR/fio.log" >/dev/null
	grep -q "err= 0" "$VD_DIR/fio.log" || { cat "$VD_DIR/fio.log"; fail "fio reported errors ($cache)"; }
	# The same data must be in the file: verify again through the file.
	detach "$DEV"
	run fio --name=verify --filename="$img" --ioengine=psync --rw=randwrite \
		--bsrange=4k-1m --numjobs=4 --offset_increment=$(( ${size%M} / 4 ))M \
		--size=$(( ${size%M} / 4 ))M --verify=crc32c --verify_only=1 \
		--verify_fatal=1 --group_reporting --output="$VD_DIR/fio2.log" >/dev/null
done
exit 0
