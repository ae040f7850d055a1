#!/usr/bin/env bash
# Runs every integration script given (bash, real processes). A script exits 0 (pass) or non-zero (fail);
# there is no skip. Output of a failing script is shown in full.
set -uo pipefail
export EML_SRCDIR=${EML_SRCDIR:-$(pwd)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
pass=0; failed=()
logdir=${EML_SRCDIR}/build/test-logs
mkdir -p "$logdir"
for t in "$@"; do
	name=$(basename "$t" .test)
	log=$logdir/$name.log
	start=$(date +%s%N)
	if timeout 600 bash "$t" >"$log" 2>&1; then
		pass=$((pass + 1))
		ms=$((($(date +%s%N) - start) / 1000000))
		printf '[ PASS ] %s (%d.%03ds)\n' "$name" $((ms / 1000)) $((ms % 1000))
	else
		failed+=("$name")
		echo "[ FAIL ] $name"; sed 's/^/    /' "$log"
	fi
done
echo "integration: $pass passed, ${#failed[@]} failed"
[[ -n ${EML_TALLY:-} ]] && echo "integration $pass ${#failed[@]}" >>"$EML_TALLY"
((${#failed[@]} == 0))
