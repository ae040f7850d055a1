#!/usr/bin/env bash
# Runs each libFuzzer target for FUZZ_SECONDS on its seed corpus (tests/fuzz/corpus/NAME, copied to a scratch
# directory so runs never write into the tree). Any crash, leak or sanitizer report fails the run.
set -uo pipefail
secs=${FUZZ_SECONDS:-60}
export EML_SRCDIR=${EML_SRCDIR:-$(pwd)}
failed=(); pass=0
for f in "$@"; do
	name=$(basename "$f")
	work=$(mktemp -d)
	[[ -d tests/fuzz/corpus/$name ]] && cp -r tests/fuzz/corpus/$name/. "$work/"
	if "$f" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=0 \
		-artifact_prefix="$work/" "$work" >"$work.log" 2>&1; then
		pass=$((pass + 1)); echo "[ PASS ] $name ($(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$work.log" | tail -1 | sed 's/ second/s/'))"
	else
		failed+=("$name"); echo "[ FAIL ] $name"; tail -40 "$work.log"
		ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null | head
	fi
	rm -rf "$work" "$work.log"
done
echo "fuzz: $pass passed, ${#failed[@]} failed"
[[ -n ${EML_TALLY:-} ]] && echo "fuzz $pass ${#failed[@]}" >>"$EML_TALLY"
((${#failed[@]} == 0))
