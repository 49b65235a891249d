# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the vdisk selftests (sourced by every test_*.sh).
#
# A test exits 0 on pass, 1 on failure, 4 (kselftest's skip code) to skip.
# Devices attached through vd_attach are detached on exit, whatever happens,
# and every test runs in its own scratch directory.

set -u

KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4

VD_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VDISKCTL=${VDISKCTL:-$VD_TOP/tools/vdiskctl/vdiskctl}
VD_GENL=$VD_TOP/selftests/vdisk/vdisk_genl.py
VD_TEST=$(basename "$0" .sh)
# Real ext4 on a virtio disk (O_DIRECT, punch hole); tmpfs otherwise.
VD_SCRATCH_BASE=${VD_SCRATCH_BASE:-/scratch}
[ -d "$VD_SCRATCH_BASE" ] || VD_SCRATCH_BASE=/tmp
VD_DIR=$VD_SCRATCH_BASE/$VD_TEST
VD_DEVICES=()
VD_MOUNTS=()
VD_CLEANUP_CMDS=()

rm -rf "$VD_DIR"
mkdir -p "$VD_DIR"

log() { echo "# $*"; }

# Kernel-independent variants (image shapes of the qcow2 core) are split
# among the kernels of one `make check` (VD_SHARD=i/n from run_tests.sh
# --shard): every kernel runs the device paths, together they run every
# shape.  The full profile and a plain run take every variant.
VD_SHARD=${VD_SHARD:-0/1}
vd_variant=0
# mine NAME: true if this run takes the next variant; logs the others.
mine() {
	local i=${VD_SHARD%/*} n=${VD_SHARD#*/} k=$vd_variant
	vd_variant=$((vd_variant + 1))
	[ "${VD_PROFILE:-quick}" = full ] && return 0
	[ $((k % n)) -eq "$i" ] && return 0
	log "$1: left to the other kernels of this run (shard $VD_SHARD)"
	return 1
}

fail() {
	echo "# FAIL: $*"
	exit $KSFT_FAIL
}

skip() {
	echo "# SKIP: $*"
	exit $KSFT_SKIP
}

# Run a command; on failure report it with its output and fail the test.
run() {
	local out
	if ! out=$("$@" 2>&1); then
		echo "$out" | sed 's/^/#   /'
		fail "command failed: $*"
	fi
	[ -n "$out" ] && echo "$out"
	return 0
}

# The command must fail; its stderr must match the extended regex $1.
expect_fail() {
	local pattern=$1 out rc
	shift
	out=$("$@" 2>&1) && fail "expected failure but succeeded: $* (output: $out)"
	if ! grep -Eq -- "$pattern" <<<"$out"; then
		fail "'$*' failed with unexpected message: $out (wanted /$pattern/)"
	fi
	return 0
}

assert_eq() {
	[ "$1" = "$2" ] || fail "${3:-values differ}: got '$1', expected '$2'"
}

assert_file_exists() {
	[ -e "$1" ] || fail "$1 does not exist"
}

# The block device node of partition $2 of device $1 exists and has $3 bytes.
assert_blk_size() {
	local dev=$1 want=$2 got
	[ -b "$dev" ] || fail "$dev is not a block device"
	got=$(blockdev --getsize64 "$dev") || fail "blockdev $dev failed"
	assert_eq "$got" "$want" "size of $dev"
}

vd_cleanup() {
	local rc=$? i
	set +e
	for ((i = ${#VD_CLEANUP_CMDS[@]} - 1; i >= 0; i--)); do
		eval "${VD_CLEANUP_CMDS[$i]}" >/dev/null 2>&1
	done
	for ((i = ${#VD_MOUNTS[@]} - 1; i >= 0; i--)); do
		umount "${VD_MOUNTS[$i]}" >/dev/null 2>&1
	done
	for dev in "${VD_DEVICES[@]}"; do
		[ -b "$dev" ] && "$VDISKCTL" detach "$dev" >/dev/null 2>&1
	done
	rm -rf "$VD_DIR"
	exit $rc
}
trap vd_cleanup EXIT

# Register a shell command to run at exit (last registered runs first).
at_exit() { VD_CLEANUP_CMDS+=("$*"); }

# Until task $1 waits (state D: on a disk, or on a lock held across a wait
# on one) inside system call number $2 (x86-64, the only guest the suite
# runs in), not in a page-in of its program; false after 10 s.
poll_in_syscall() {
	local i nr=
	for ((i = 0; i < 100; i++)); do
		{ read -r nr _ <"/proc/$1/syscall"; } 2>/dev/null
		[ "$nr" = "$2" ] &&
			[ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = D ] &&
			return 0
		sleep 0.1
	done
	return 1
}

# The same inside a netlink command (sendmsg(2)).
poll_nl_waiting() { poll_in_syscall "$1" 46; }

# What other users of vdisk do while a test holds one device up, in the
# background: `vdiskctl list` (into $VD_DIR/list.out), then an attach and
# a detach of a new image in $VD_DIR.  Its pid is left in OTHER_PID; it
# exits 1, 2 or 3 at the step that failed, its output in other.out.
start_other_commands() {
	truncate -s 8M "$VD_DIR/other.img"
	{
		"$VDISKCTL" list >"$VD_DIR/list.out" 2>&1 || exit 1
		t=$("$VDISKCTL" attach "$VD_DIR/other.img" 2>&1) || { echo "$t"; exit 2; }
		echo "$t"
		"$VDISKCTL" detach "$t" || exit 3
	} >"$VD_DIR/other.out" 2>&1 &
	OTHER_PID=$!
}

# Until every PID ($2...) has exited, at most $1 seconds; false if one has
# not.  A task waiting on a mutex cannot be killed: tests that may leave
# one behind poll it, undo what it waits for, and only then wait on it.
poll_exited() {
	local tenths=$(($1 * 10)) i p alive
	shift
	for ((i = 0; i < tenths; i++)); do
		alive=
		for p; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ -z "$alive" ] && return 0
		sleep 0.1
	done
	return 1
}

vd_need_module() {
	if [ ! -d /sys/module/vdisk ]; then
		modprobe vdisk || fail "modprobe vdisk failed"
	fi
}

# Attach with vdiskctl; prints the device path and records it for cleanup.
# Usage: dev=$(vd_attach [options] FILE) || exit 1
vd_attach() {
	local dev
	dev=$("$VDISKCTL" attach "$@") || { echo "# FAIL: vdiskctl attach $* failed" >&2; return 1; }
	case "$dev" in
	/dev/vdisk[0-9]*) ;;
	*) echo "# FAIL: vdiskctl attach printed '$dev'" >&2; return 1 ;;
	esac
	echo "$dev"
}

# Same, but as a statement: sets $DEV and records it.
attach() {
	DEV=$("$VDISKCTL" attach "$@") || fail "vdiskctl attach $* failed"
	case "$DEV" in
	/dev/vdisk[0-9]*) ;;
	*) fail "vdiskctl attach printed '$DEV'" ;;
	esac
	VD_DEVICES+=("$DEV")
}

detach() {
	run "$VDISKCTL" detach "$@" >/dev/null
}

# Raw netlink ADD of FILE ($1) opened with the os.open() flags $2
# ("O_RDWR|O_APPEND") as FD=3, plus attributes ($3...: FORMAT=2 ...):
# prints vdisk_genl.py's reply ({'INDEX': n, ...} or "error N: message")
# and fails as it does.  For descriptors vdiskctl would never pass, and
# to reach the kernel's checks without vdiskctl's own in front of them.
genl_add_open() {
	python3 -c '
import os, sys
flags = 0
for f in sys.argv[2].split("|"):
    flags |= getattr(os, f)
fd = os.open(sys.argv[1], flags)
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.set_inheritable(3, True)
os.execvp("python3", ["python3", sys.argv[3], "add", "FD=3"] + sys.argv[4:])' \
		"$1" "$2" "$VD_GENL" "${@:3}"
}

vd_mount() {
	mkdir -p "$2"
	run mount "${@:3}" "$1" "$2" >/dev/null
	VD_MOUNTS+=("$2")
}

vd_umount() {
	run umount "$1"
	local i
	for i in "${!VD_MOUNTS[@]}"; do
		[ "${VD_MOUNTS[$i]}" = "$1" ] && unset 'VD_MOUNTS[i]'
	done
	VD_MOUNTS=("${VD_MOUNTS[@]}")
}

# Memory figures: settle_memory [SECS] writes back and drops the caches,
# then waits SECS (1) for deferred frees; meminfo_kib FIELD prints one
# /proc/meminfo field in KiB.
settle_memory() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	sleep "${1:-1}"
}
meminfo_kib() { awk -v f="$1:" '$1 == f { print $2 }' /proc/meminfo; }

# Bytes of the file actually allocated on disk.
allocated_bytes() {
	echo $(($(stat -c %b "$1") * $(stat -c %B "$1")))
}

# Deterministic pseudo-random data: make_pattern FILE BYTES SEED
make_pattern() {
	python3 - "$1" "$2" "$3" <<'EOF'
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
with open(path, "wb") as f:
    left = size
    while left:
        n = min(left, 1 << 20)
        f.write(r.randbytes(n))
        left -= n
EOF
}

# Data that compresses (each 4 KiB: 256 random bytes, then one byte
# repeated), so that `qemu-img convert -c` really stores compressed
# clusters (it stores incompressible ones as plain data):
# make_compressible FILE BYTES SEED
make_compressible() {
	python3 - "$1" "$2" "$3" <<'EOF'
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
with open(path, "wb") as f:
    for _ in range(size // 4096):
        f.write(r.randbytes(256) + bytes([r.randrange(256)]) * 3840)
EOF
}

# The qcow2 image $1 holds compressed clusters (qemu-img check's summary).
assert_compressed() {
	local out
	out=$(qemu-img check "$1" 2>&1)
	grep -Eq '([1-9][0-9]*\.[0-9]+|0\.[0-9]*[1-9][0-9]*)% compressed clusters' <<<"$out" ||
		fail "$1 holds no compressed clusters: $(grep compressed <<<"$out")"
}

# Field $2 of device $1 from `vdiskctl list --json`.
vd_json_field() {
	"$VDISKCTL" list --json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)["vdisks"][0]
v = d[sys.argv[1]]
print(str(v).lower() if isinstance(v, bool) else v)' "$2"
}

vd_need_module

# sha256 of what qemu-img says IMAGE contains, cut to the device's size
# (and failing if qemu-img's is shorter).  Extra arguments go to qemu-img
# convert (e.g. -l snapshot.name=s1).
qemu_raw_sha() {
	local img=$1 bytes=$2 have
	shift 2
	qemu-img convert "$@" -O raw "$img" "$VD_DIR/.oracle.raw" || return 1
	have=$(stat -c %s "$VD_DIR/.oracle.raw")
	if [ "$have" -lt "$bytes" ]; then
		echo "# qemu-img's $img has $have bytes, not $bytes" >&2
		return 1
	fi
	head -c "$bytes" "$VD_DIR/.oracle.raw" | sha256sum | cut -d' ' -f1
	rm -f "$VD_DIR/.oracle.raw"
}

# Attach IMAGE (with extra attach args) and check the whole device equals
# qemu-img's raw conversion, its size that rounded down to the device's
# sectors.  Usage: oracle_check IMAGE [ATTACH ARGS...]
# Set ORACLE_ARGS for qemu-img convert (snapshots).
oracle_check() {
	local img=$1 size want got ss
	shift
	attach "$@" "$img"
	size=$(blockdev --getsize64 "$DEV")
	ss=$(blockdev --getss "$DEV")
	qemu-img convert ${ORACLE_ARGS:-} -O raw "$img" "$VD_DIR/.oracle.raw" || fail "qemu-img convert $img failed"
	assert_eq "$size" $(($(stat -c %s "$VD_DIR/.oracle.raw") / ss * ss)) "$img: device size"
	want=$(head -c "$size" "$VD_DIR/.oracle.raw" | sha256sum | cut -d' ' -f1)
	rm -f "$VD_DIR/.oracle.raw"
	got=$(sha256sum <"$DEV" | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "$img: device content differs from qemu-img convert ($*)"
	detach "$DEV"
}
