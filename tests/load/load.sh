#!/usr/bin/env bash
# make load: CLIENTS clients (default 64) each running `eml embed --endpoint` back to back for LOAD_SECONDS
# (default 60) against the whole stack on loopback (simulated NSM, eml-blind-relay socket-activated, the
# session service: eml-inferenced with a sealed MiniLM-shaped model, or eml dev serve until it serves
# sessions). Prints requests, errors (with the distinct error lines), throughput and latency percentiles of whole client runs (session setup, attestation
# check, one embedding, receipt) and the number of AUDIT entries the relay logged. Not part of `make check`.
set -euo pipefail
export EML_BUILD=${EML_BUILD:-$PWD/build/release}
export EML_SRCDIR=${EML_SRCDIR:-$PWD}
source "$EML_SRCDIR/tests/integration/lib/stack.sh"
CLIENTS=${CLIENTS:-64}
SECONDS_=${LOAD_SECONDS:-60}

stack_ca
stack_nsm
stack_model 1
stack_service
stack_blind_relay "$SERVICE"
embed=("$B/eml" embed --endpoint "$RELAY" --policy "$S/dev/policy.cose" --policy-key "$S/dev/policy-key.pub")
"${embed[@]}" "warm up" >/dev/null || fail "first request"

echo "load: $CLIENTS clients for $SECONDS_ s against $RELAY (session service: $SERVICE_BY)"
end=$(($(date +%s) + SECONDS_))
clients=()
for c in $(seq "$CLIENTS"); do
	(
		i=0
		while (($(date +%s) < end)); do
			i=$((i + 1))
			t=$(date +%s%N)
			if "${embed[@]}" "client $c request $i: a short sentence to embed" >/dev/null 2>"$S/c$c.err1"; then
				echo $((($(date +%s%N) - t) / 1000)) >>"$S/c$c.ok"
			else
				head -n1 "$S/c$c.err1" >>"$S/c$c.err"
			fi
		done
	) &
	clients+=($!)
done
for p in "${clients[@]}"; do wait "$p" || true; done

ok=$({ cat "$S"/c*.ok 2>/dev/null || true; } | wc -l)
errors=$({ cat "$S"/c*.err 2>/dev/null || true; } | wc -l)
echo "requests: $((ok + errors)), errors: $errors, throughput: $(awk -v n="$ok" -v s="$SECONDS_" 'BEGIN {printf "%.1f", n / s}') req/s"
if ((errors)); then cat "$S"/c*.err | sed 's/[0-9]\+/N/g' | sort | uniq -c | sort -rn | head -n 5; fi
{ cat "$S"/c*.ok 2>/dev/null || true; } | sort -n | awk '
	function pct(p,  i) { i = int(NR * p) + 1; if (i > NR) i = NR; return a[i] / 1000 }
	{a[NR] = $1}
	END { if (NR) printf "latency ms: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", pct(0.5), pct(0.9), pct(0.99), pct(0.999), a[NR] / 1000 }'
echo "AUDIT entries: $(grep -c 'MESSAGE_ID=7e9d793478084f2483be8faa2728887d' "$S/blind-relay.log" || true)"
((errors == 0))
