#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the vdisk selftests inside a guest and print KTAP.
#
#   run_tests.sh [--profile quick|full] [--shard I/N] [TEST...]
#
# --shard I/N: this kernel is the I-th of N in one run; tests split their
# kernel-independent variants among them (lib.sh, mine).
#
# Installs the vdisk.ko built for the running kernel into /lib/modules
# (the guest's root is a writable overlay) so that `modprobe vdisk` and the
# genetlink autoload work as on a real host.  Each test runs with a timeout;
# after each one the runner checks the kernel log for BUG/WARNING reports
# and for devices the test left attached, and fails the test if it finds
# either.  Exit status: 0 when no test failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
profile=quick
tests=()
while [ $# -gt 0 ]; do
	case "$1" in
	--profile) profile=$2; shift 2 ;;
	--shard) export VD_SHARD=$2; shift 2 ;;
	*) tests+=("$1"); shift ;;
	esac
done
export VD_PROFILE=$profile

timeout_s=$(sed -n 's/^timeout=//p' "$here/settings" 2>/dev/null)
timeout_s=${VD_TEST_TIMEOUT:-${timeout_s:-300}}

kver=$(uname -r)
ko=${VDISK_KO:-$top/build/$kver/kmod/vdisk.ko}
if [ ! -r "$ko" ]; then
	echo "run_tests: no vdisk.ko for $kver at $ko (make modules-all)" >&2
	exit 2
fi
"$top/tools/testing/guest-install-module" "$ko" || exit 2
export VDISKCTL=${VDISKCTL:-$top/tools/vdiskctl/vdiskctl}
export PATH=$top/tools/vdiskctl:$PATH

if [ ${#tests[@]} -eq 0 ]; then
	for t in "$here"/test_*.sh; do tests+=("$(basename "$t")"); done
fi

report_pat='BUG:|Oops|WARNING:|KFENCE|lockdep|possible circular locking|UBSAN|general protection fault|INFO: task .* blocked|unreferenced object|list_(add|del) corruption|Poison overwritten|Redzone|Object padding'

echo "KTAP version 1"
echo "# kernel $kver, profile $profile"
echo "1..${#tests[@]}"
n=0 pass=0 failc=0 skipc=0
# The kernel log since the current test started.
test_dmesg() { dmesg | tail -n +$((before + 1)); }
for t in "${tests[@]}"; do
	n=$((n + 1))
	name=${t%.sh}
	log=$(mktemp)
	before=$(dmesg | wc -l)
	start=$(date +%s.%N)
	(cd "$here" && timeout -k 10 "$timeout_s" bash "./$t") >"$log" 2>&1
	rc=$?
	secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
	reason=""
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		reason="timed out after ${timeout_s}s"
		rc=1
		# A hang: every blocked task's stack, workers included, says
		# more than the first hung-task report does.
		if [ -w /proc/sysrq-trigger ]; then
			echo w >/proc/sysrq-trigger
			sleep 1
			echo "# blocked tasks at the timeout:" >>"$log"
			test_dmesg | sed -n '/Show Blocked State/,$p' |
				head -n 150 | sed 's/^/# /' >>"$log"
		fi
	fi

	if test_dmesg | grep -Eq "$report_pat"; then
		echo "# kernel reports during $name:" >>"$log"
		test_dmesg | grep -E -A20 "$report_pat" | head -60 | sed 's/^/# /' >>"$log"
		reason="kernel reported a problem"
		rc=1
	fi

	# A test must leave no device behind.  Clean up after it (a killed
	# test may leave mounts), so the next test starts from nothing.
	left=$(ls -d /sys/block/vdisk* 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')
	if [ -n "$left" ]; then
		echo "# devices left attached: $left" >>"$log"
		awk '$1 ~ "^/dev/vdisk" { print $2 }' /proc/mounts | sort -r |
			while read -r m; do umount -l "$m"; done
		"$VDISKCTL" detach --all >/dev/null 2>&1
		[ $rc -eq 0 ] && { reason="left devices attached"; rc=1; }
	fi

	case $rc in
	0)
		# The test's own summary lines (counts) stay in the record.
		grep '^# ' "$log" | tail -n 20
		echo "ok $n $name # time=${secs}s"
		pass=$((pass + 1)) ;;
	4)
		why=$(sed -n 's/^# SKIP: //p' "$log" | tail -n1)
		echo "ok $n $name # SKIP ${why:-skipped}"
		skipc=$((skipc + 1)) ;;
	*)
		sed 's/^/# /; s/^# # /# /' "$log" | tail -n 200
		echo "not ok $n $name # ${reason:-exit $rc} time=${secs}s"
		failc=$((failc + 1)) ;;
	esac
	rm -f "$log"
done
echo "# Totals: pass:$pass fail:$failc xfail:0 xpass:0 skip:$skipc error:0"
[ $failc -eq 0 ]
