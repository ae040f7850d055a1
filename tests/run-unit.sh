#!/usr/bin/env bash
# Runs every cmocka binary given; prints each summary and a closing tally. Fails if any test fails.
set -uo pipefail
export EML_SRCDIR=${EML_SRCDIR:-$(pwd)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "$@"; do
	echo "== $(basename "$t")"
	if ! "$t"; then failed+=("$(basename "$t")"); fi
done
n=$#; f=${#failed[@]}
echo "unit suites: $((n - f)) passed, $f failed"
[[ -n ${EML_TALLY:-} ]] && echo "unit $((n - f)) $f" >>"$EML_TALLY"
((f == 0)) || { echo "failed suites: ${failed[*]}"; exit 1; }
