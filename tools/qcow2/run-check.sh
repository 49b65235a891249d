#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check` for the qcow2 core: unit tests, the write path against
# qemu-img (workloads and crash states), replay of the fuzzing regression
# corpus, the qemu-img oracle and a short fuzz run, as one KTAP document
# with a subtest each.
set -uo pipefail
cd "$(dirname "$0")" || exit 1

n=0
failed=0
errf=$(mktemp)
trap 'rm -f "$errf"' EXIT
echo "KTAP version 1"
echo "1..5"

# sub NAME KTAP|DIAG COMMAND...: run, indent its output as a subtest.
sub() {
	local name=$1 kind=$2 out rc
	shift 2
	n=$((n + 1))
	if [ "$kind" = KTAP ]; then
		out=$("$@" 2>"$errf")
		rc=$?
		printf '%s\n' "$out" | sed 's/^/    /'
		sed 's/^#* */    # /' "$errf"
	else
		out=$("$@" 2>&1)
		rc=$?
		printf '%s\n' "$out" | sed 's/^#* */# /'
	fi
	if [ $rc -eq 0 ]; then
		echo "ok $n $name"
	else
		echo "not ok $n $name"
		failed=$((failed + 1))
	fi
}

sub q2test KTAP ./q2test
sub q2write KTAP ./q2write
sub fuzz-regress KTAP ./fuzz_replay corpus-regress
sub oracle KTAP ./oracle.sh
sub fuzz-smoke DIAG make -s --no-print-directory fuzz-smoke
echo "# qcow2 check: $((n - failed)) passed, $failed failed"
exit $((failed > 0))
