# End-to-end `eml embed` of one short sentence through eml-blind-relay and eml-inferenced (simulated NSM,
# loopback) against local `eml embed --model` of the same sentence, both as a user runs them: whole processes,
# wall time. Runs alternate between the two so background load hits both alike; p50 and best over the runs,
# and the difference of the p50s (target: at most 2 ms). Until eml-inferenced serves sessions and
# `eml embed --endpoint` exists, only the local figure is printed, with a note saying so.
set -euo pipefail
export EML_BUILD=${EML_BUILD:-$PWD/build/release}
EML_SRCDIR=${EML_SRCDIR:-$PWD}
source "$EML_SRCDIR/tests/integration/lib/stack.sh"
RUNS=${BENCH_RUNS:-41}
TEXT="A short sentence about confidential inference."

mkdir -p "$S/model"
V=$EML_SRCDIR/tests/vectors/models/all-MiniLM-L6-v2
cp "$V/config.json" "$V/vocab.txt" "$S/model/"
"$B/eml" model random --config "$S/model/config.json" --seed 1 -o "$S/model/model.safetensors"

e2e=false
if [[ -x $B/eml-inferenced ]] && "$B/eml" embed --help 2>&1 | grep -q -- --endpoint &&
	"$B/eml" --help | grep -q '^  eml policy sign '; then
	e2e=true
fi

wall_us() { local t=$(date +%s%N); "$@" >/dev/null; echo $((($(date +%s%N) - t) / 1000)); }
stats() { sort -n | awk '{a[NR]=$1} END {printf "p50 %.2f ms, best %.2f ms", a[int((NR+1)/2)]/1000, a[1]/1000}'; }

local_cmd=("$B/eml" embed --model "$S/model" "$TEXT")
"${local_cmd[@]}" >/dev/null # warm the page cache
: >"$S/local.us"
: >"$S/e2e.us"
if $e2e; then
	# The stack of make demo, on loopback: see tools/demo/demo.sh for the same steps with commentary.
	stack_ca
	stack_nsm
	stack_kms_local
	stack_kms_key "$PCR0"
	stack_kms_relay
	# shellcheck disable=SC2154
	"$B/eml" dev init "$S/dev" >/dev/null
	"$B/eml-inferenced" --listen "unix:$S/enclave.sock" --listen-control "unix:$S/ctl.sock" --nsm "$NSM" \
		--kms-relay "$KMS_RELAY" --signers "$S/dev/signers" 2>"$S/inferenced.log" &
	stack_track $!
	stack_wait_socket "$S/ctl.sock"
	"$B/eml" model seal --model "$S/model" --key-id "$KEY" --signing-key "$S/dev/owner.pem" -o "$S/model.emodel" \
		--kms-endpoint "$KMS_URL" --model-id bench --version 1 >/dev/null
	EML_CONTROL=unix:$S/ctl.sock "$B/eml" ctl load "$S/model.emodel" >/dev/null
	stack_blind_relay "unix:$S/enclave.sock"
	e2e_cmd=("$B/eml" embed --endpoint "$RELAY" --policy "$S/dev/policy.json" --dev-root "$S/ca/root.pem" "$TEXT")
	"${e2e_cmd[@]}" >/dev/null
fi
for _ in $(seq "$RUNS"); do
	wall_us "${local_cmd[@]}" >>"$S/local.us"
	if $e2e; then wall_us "${e2e_cmd[@]}" >>"$S/e2e.us"; fi
done
printf 'local eml embed --model (one sentence, %d runs):      %s\n' "$RUNS" "$(stats <"$S/local.us")"
if $e2e; then
	printf 'end-to-end eml embed --endpoint (relay + enclave):    %s\n' "$(stats <"$S/e2e.us")"
	l=$(sort -n "$S/local.us" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	e=$(sort -n "$S/e2e.us" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	awk -v l="$l" -v e="$e" 'BEGIN {printf "added at p50: %.2f ms (target <= 2 ms)\n", (e - l) / 1000}'
else
	echo "end-to-end: not measured yet (needs eml-inferenced sessions, eml policy and eml embed --endpoint)"
fi
