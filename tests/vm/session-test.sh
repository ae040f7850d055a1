#!/usr/bin/env bash
# session-test.sh IMAGE_DIR: the enclave image under qemu (software emulation) serving a real session to the host.
#   guest: the image's kernel, eml-init as PID 1 and the image's own eml-inferenced and libraries (bootstrap.cpio
#          and app.cpio as built), plus a test ramdisk with eml-nsm-sim, a dev CA and the image's PCRs (so the
#          simulator presents the image's PCR0), the model owner's public key, and a command that starts the
#          simulator on a unix socket and eml-inferenced with sessions on guest tcp port 5000, control on 5001,
#          and KMS through eml-kms-relay on the host, reached as 10.0.2.2 (user-mode networking's view of the
#          host's loopback);
#   host:  eml-kms-local with a key whose policy names the image's PCR0 (as `eml eif pcr` computes it from
#          enclave.eif), eml-kms-relay on tcp:127.0.0.1, a small random model sealed with `eml model seal`;
#          once eml-inferenced says it is ready: `eml ctl load` over forwarded port 5001 (KMS round trip from
#          inside the VM), then `eml embed --endpoint tcp:127.0.0.1:PORT --policy` (signed dev policy trusting
#          the dev root and the image's PCR0) must return a verified, bound receipt and the embedding that
#          `eml embed --model` computes locally; then a clean power-off (vm-test.sh). Prints the timings.
# Environment: EML_BIN (directory of the host binaries; default IMAGE_DIR/../release/bin), VM_TIMEOUT (default
# 85 s), as vm-test.sh.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)

if [[ ${1:-} == --host-check ]]; then
	# Runs on the host once the guest's eml-inferenced is ready; S, BIN exported by the outer run.
	t0=$(date +%s%N)
	ms() { echo $((($(date +%s%N) - t0) / 1000000)); }
	ctl=tcp:127.0.0.1:$VM_CTL_PORT
	# A model sealed for another image (its key's policy names another PCR0): KMS refuses this enclave.
	rc=0
	"$BIN/eml" ctl load "$S/other.emodel" --control "$ctl" >/dev/null 2>"$S/other.err" || rc=$?
	((rc == 1)) && grep -q '^error: AccessDenied: ' "$S/other.err" ||
		{ echo "session-test: load under another PCR0: rc $rc: $(cat "$S/other.err")" >&2; exit 1; }
	t0=$(date +%s%N)
	"$BIN/eml" ctl load "$S/model.emodel" --control "$ctl" >"$S/load.json" 2>"$S/load.err" ||
		{ echo "session-test: eml ctl load: $(cat "$S/load.err")" >&2; exit 1; }
	load_ms=$(ms)
	"$BIN/eml" ctl status --control "$ctl" >"$S/status.json"
	jq -e '.model.model_id == "vm-small" and .security_mode == "evaluation"' "$S/status.json" >/dev/null ||
		{ echo "session-test: status: $(cat "$S/status.json")" >&2; exit 1; }
	t1=$(date +%s%N)
	"$BIN/eml" embed --endpoint "tcp:127.0.0.1:$VM_PORT" --policy "$S/dev/policy.cose" \
		--policy-key "$S/dev/policy-key.pub" --timeout 30 "$TEXT" >"$S/embed.json" 2>"$S/embed.err" ||
		{ echo "session-test: eml embed --endpoint: $(cat "$S/embed.err")" >&2; exit 1; }
	embed_ms=$((($(date +%s%N) - t1) / 1000000))
	boot_ms=$((($(date +%s%N) - VM_START_NS) / 1000000))
	jq -e --arg pcr0 "$PCR0" '.receipt_verified == true and .receipt_bound == true and .model_id == "vm-small"
		and .attestation.pcrs."0" == $pcr0 and (.embeddings | length) == 1 and .dim == 64' "$S/embed.json" \
		>/dev/null || { echo "session-test: unexpected answer: $(head -c 2000 "$S/embed.json")" >&2; exit 1; }
	# The enclave's vector is the one the same model gives locally.
	diff=$(jq -n --slurpfile a "$S/embed.json" --slurpfile b "$S/local.json" \
		'[$a[0].embeddings[0], $b[0].embeddings[0]] | transpose | map(.[0] - .[1] | fabs) | max')
	jq -e -n --argjson d "$diff" '$d < 1e-4' >/dev/null ||
		{ echo "session-test: the VM's embedding differs from the local one by $diff" >&2; exit 1; }
	echo "session-test: sealed model loaded in the VM (KMS through the host relay) in ${load_ms} ms (one for" \
		"another PCR0 refused: AccessDenied); attested session with a verified receipt in ${embed_ms} ms; first" \
		"verified embedding ${boot_ms} ms after qemu started; max |difference| to the local embedding $diff"
	exit 0
fi

img=$(cd "${1:?usage: session-test.sh IMAGE_DIR}" && pwd)
BIN=${EML_BIN:-$(dirname "$img")/release/bin}
S=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$S"
}
trap cleanup EXIT
fail() {
	[[ -n ${EML_TALLY:-} ]] && echo "vm-session 0 1" >>"$EML_TALLY"
	echo "session-test: $*" >&2
	local f
	for f in "$S"/*.log; do [[ -e $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
	exit 1
}
wait_for() { # FILE REGEX
	local i
	for i in $(seq 200); do grep -qE -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	fail "timed out waiting for '$2' in $1"
}
export EML_LOG_TARGET=stderr
unset AWS_SESSION_TOKEN AWS_PROFILE
setup_start=$(date +%s%N)

# The PCRs the image really has, measured from the EIF by the host's eml (not taken from pcrs.json).
"$BIN/eml" eif pcr "$img/enclave.eif" >"$S/pcrs.json" || fail "eml eif pcr"
PCR0=$(jq -r .Measurements.PCR0 "$S/pcrs.json")
"$BIN/eml" dev init "$S/dev" --pcrs "$S/pcrs.json" >/dev/null || fail "eml dev init"

# KMS on the host: eml-kms-local trusting the dev root, a key only an enclave with the image's PCR0 may use.
printf '# access key id, secret\nAKIDVMTEST  vmsecret/example\n' >"$S/creds"
"$BIN/eml-kms-local" --keys "$S/keys" --credentials "$S/creds" --attestation-root "$S/dev/ca/root.pem" \
	--print-address >"$S/kms-local.addr" 2>"$S/kms-local.log" &
pids+=($!)
wait_for "$S/kms-local.addr" '^tcp:'
KMS_URL="http://$(sed 's/^tcp://' "$S/kms-local.addr")/"
export AWS_ACCESS_KEY_ID=AKIDVMTEST AWS_SECRET_ACCESS_KEY=vmsecret/example AWS_REGION=us-east-1
policy=$(jq -nc --arg pcr "$PCR0" '{Version: "2012-10-17", Statement: [
	{Sid: "owner", Effect: "Allow", Principal: {AWS: "arn:aws:iam::111122223333:root"},
	 Action: ["kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"], Resource: "*"},
	{Sid: "enclave", Effect: "Allow", Principal: {AWS: "arn:aws:iam::111122223333:root"},
	 Action: ["kms:Decrypt"], Resource: "*",
	 Condition: {StringEqualsIgnoreCase: {"kms:RecipientAttestation:PCR0": $pcr}}}]}')
KEY=$("$BIN/eml" kms call --endpoint "$KMS_URL" CreateKey "$(jq -nc --arg p "$policy" '{Policy: $p}')" |
	jq -r .KeyMetadata.KeyId) || fail "CreateKey"
# eml-kms-relay on the host's loopback; the guest reaches it as 10.0.2.2 through user-mode networking.
for _ in 1 2 3 4 5; do
	kms_port=$((20000 + RANDOM % 30000))
	"$BIN/eml-kms-relay" --listen "tcp:127.0.0.1:$kms_port" --endpoint "$KMS_URL" --region us-east-1 \
		--retries 1 --timeout 20000 2>"$S/kms-relay.log" &
	relay_pid=$!
	for _ in $(seq 100); do grep -q 'eml-kms-relay listening' "$S/kms-relay.log" 2>/dev/null && break; sleep 0.05; done
	kill -0 "$relay_pid" 2>/dev/null && break
	wait "$relay_pid" 2>/dev/null || true
	relay_pid=
done
[[ -n $relay_pid ]] || fail "eml-kms-relay did not start"
pids+=("$relay_pid")
wait_for "$S/kms-relay.log" 'eml-kms-relay listening'

# A small BERT (1 layer, hidden size 64), sealed by its owner under that key.
mkdir -p "$S/model"
V=$src/tests/vectors/models/all-MiniLM-L6-v2
jq '.num_hidden_layers = 1 | .hidden_size = 64 | .intermediate_size = 128 | .num_attention_heads = 2' \
	"$V/config.json" >"$S/model/config.json"
cp "$V/vocab.txt" "$S/model/"
"$BIN/eml" model random --config "$S/model/config.json" --seed 8 -o "$S/model/model.safetensors"
"$BIN/eml" model seal --model "$S/model" --key-id "$KEY" --signing-key "$S/dev/owner.pem" -o "$S/model.emodel" \
	--kms-endpoint "$KMS_URL" --model-id vm-small --version 1 >/dev/null || fail "eml model seal"
# The same model sealed under a key whose policy names another PCR0.
other_policy=$(jq -c --arg pcr "$(head -c 48 /dev/urandom | od -An -v -tx1 | tr -d ' \n')" \
	'.Statement[1].Condition.StringEqualsIgnoreCase."kms:RecipientAttestation:PCR0" = $pcr' <<<"$policy")
OTHER_KEY=$("$BIN/eml" kms call --endpoint "$KMS_URL" CreateKey "$(jq -nc --arg p "$other_policy" '{Policy: $p}')" |
	jq -r .KeyMetadata.KeyId) || fail "CreateKey (other PCR0)"
"$BIN/eml" model seal --model "$S/model" --key-id "$OTHER_KEY" --signing-key "$S/dev/owner.pem" \
	-o "$S/other.emodel" --kms-endpoint "$KMS_URL" --model-id vm-other --version 1 >/dev/null || fail "eml model seal (other)"
TEXT="a session into a virtual machine"
"$BIN/eml" embed --model "$S/model" "$TEXT" >"$S/local.json" || fail "local embed"

# The test ramdisk: the simulator and its libraries, the dev CA, the PCRs, the owner's key, the command.
root=$S/vmroot
mkdir -p "$root/usr/bin" "$root/etc/eml/dev-ca" "$root/etc/eml/model-signers"
install -m 0755 "$BIN/eml-nsm-sim" "$root/usr/bin/eml-nsm-sim"
"$src/enclave-image/closure.sh" "$root" "$root/usr/bin/eml-nsm-sim" >/dev/null || fail "closure of eml-nsm-sim"
install -m 0644 "$S/dev/ca/root.pem" "$S/dev/ca/bundle.pem" "$S/dev/ca/issuer.key" "$root/etc/eml/dev-ca/"
install -m 0644 "$S/pcrs.json" "$root/etc/eml/pcrs.json"
install -m 0644 "$S/dev/signers/owner.pub" "$root/etc/eml/model-signers/owner.pub"
setup_ms=$((($(date +%s%N) - setup_start) / 1000000))

# busybox sh inside the VM: network, simulator, daemon; SIGTERM (from eml-init) stops both, daemon first. The
# daemon finishes the RSA key it makes ahead for the next load before it exits: seconds under emulation, hence
# the longer stop timeout (the image's own init.conf allows 10 s, for real CPUs).
command="ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 || exit 1
/usr/bin/eml-nsm-sim --ca /etc/eml/dev-ca --pcrs /etc/eml/pcrs.json --listen unix:/run/nsm.sock &
sim=\$!
i=0
while [ ! -S /run/nsm.sock ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i + 1)); done
/usr/bin/eml-inferenced --listen tcp:0.0.0.0:5000 --listen-control tcp:0.0.0.0:5001 --nsm unix:/run/nsm.sock --kms-relay tcp:10.0.2.2:$kms_port --signers /etc/eml/model-signers &
inf=\$!
trap 'kill -TERM \$inf; wait \$inf; kill -TERM \$sim; wait \$sim; echo EML-VM-SERVICES-STOPPED; exit 0' TERM INT
wait \$inf
echo \"eml-inferenced exited with status \$?\"
exit 1"

out=$S/vm.out
VM_COMMAND=$command VM_MARKER='ready: sessions on' VM_EXTRA_DIR=$root \
	VM_EXPECT='EML-VM-SERVICES-STOPPED' VM_STOP_TIMEOUT_MS=30000 \
	VM_HOST_CHECK="S=$S BIN=$BIN PCR0=$PCR0 TEXT='$TEXT' '$0' --host-check" EML_TALLY= \
	"$src/tests/vm/vm-test.sh" "$img" 2>&1 | tee "$out" || fail "the VM run failed"
grep -q '^session-test: sealed model loaded' "$out" || fail "no session result"
echo "session-test: ok: host setup (KMS, relay, sealing) ${setup_ms} ms; $(grep -o 'marker after [0-9]* ms, powered off after [0-9]* ms' "$out" | sed 's/marker/eml-inferenced ready/')"
[[ -n ${EML_TALLY:-} ]] && echo "vm-session 1 0" >>"$EML_TALLY"
exit 0
