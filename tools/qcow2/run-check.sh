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
smoke_out=$(mktemp)
trap 'rm -f "$errf" "$smoke_out"' EXIT
echo "KTAP version 1"
echo "1..5"

# sub NAME KTAP|DIAG COMMAND...: run, indent its output as a subtest.
sub() {
	# SUB_T0: when a subtest that ran in the background started.
	local name=$1 kind=$2 out rc t0=${SUB_T0:-$SECONDS}
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
		echo "ok $n $name # time=$((SECONDS - t0))s"
	else
		echo "not ok $n $name # time=$((SECONDS - t0))s"
		failed=$((failed + 1))
	fi
}

# The fuzz smoke run is 30 s of wall time on one core: it runs beside the
# other subtests, which mostly wait for qemu-img on the other.
smoke_t0=$SECONDS
make -s --no-print-directory fuzz-smoke >"$smoke_out" 2>&1 &
smoke_pid=$!
smoke_result() {
	cat "$smoke_out"
	return "$smoke_rc"
}

sub q2test KTAP ./q2test
sub q2write KTAP ./q2write
sub fuzz-regress KTAP ./fuzz_replay corpus-regress
sub oracle KTAP ./oracle.sh
wait "$smoke_pid"
smoke_rc=$?
SUB_T0=$smoke_t0 sub fuzz-smoke DIAG smoke_result
echo "# qcow2 check: $((n - failed)) passed, $failed failed"
exit $((failed > 0))
