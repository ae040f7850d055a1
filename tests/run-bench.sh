#!/usr/bin/env bash
# Runs every benchmark binary given, then tests/bench/*.sh (whole-process benchmarks). Prints figures only.
set -uo pipefail
export EML_SRCDIR=${EML_SRCDIR:-$(pwd)}
rc=0
for b in "$@"; do
	echo "== $(basename "$b")"; "$b" || rc=1
done
for s in tests/bench/*.sh; do
	[[ -e $s ]] || continue
	echo "== $(basename "$s" .sh)"; bash "$s" || rc=1
done
exit $rc
