#!/usr/bin/env bash
# make demo: the whole system on one machine in dev mode. The simulated NSM (eml-nsm-sim, a development CA)
# stands in for /dev/nsm, eml-kms-local for AWS KMS, unix sockets and loopback tcp for vsock.
#
#   host side                                  "enclave" side (private mount + pid namespace when possible)
#   eml-kms-local  <- eml-kms-relay  <----------  eml-inferenced (under eml-init as PID 1)
#   client -> tcp -> eml-blind-relay ---------->  eml-inferenced           eml-nsm-sim: attestation
#
# Stages run when what they need has been built; each says what it did. Every process started here is
# stopped on exit (trap), whatever happens. MODEL=DIR uses real weights (config.json, vocab.txt,
# model.safetensors) instead of the MiniLM-shaped random model. KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=$(cd "${EML_BUILD:-build/release}/bin" && pwd)
EML=$BIN/eml
# Not under /tmp or /run: eml-init as PID 1 of its namespace mounts fresh tmpfs there.
D=$ROOT/build/demo
START=$(date +%s%N)
pids=()
ns_inits=() # unshare processes: their child is the enclave's PID 1, which alone can stop it
stop_all() {
	local p c
	for p in "${ns_inits[@]}"; do
		c=$(pgrep -P "$p" || true)
		[[ -z $c ]] || kill -TERM "$c" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		[[ -z $c ]] || kill -KILL "$c" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[[ -n ${KEEP:-} ]] || rm -rf "$D"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }
die() {
	local f
	printf '\ndemo: FAILED: %s\n' "$*" >&2
	for f in "$D"/*.log; do [[ -s $f ]] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
	exit 1
}
have() { [[ -x $BIN/$1 ]]; }
has_cmd() { local h; h=$("$EML" --help); grep -q "^  eml $1 " <<<"$h"; }
wait_file() { # FILE [REGEX] [SECONDS]
	local i
	for i in $(seq $((${3:-10} * 20))); do
		if [[ -n ${2:-} ]]; then grep -qE -- "$2" "$1" 2>/dev/null && return 0; else [[ -e $1 ]] && return 0; fi
		sleep 0.05
	done
	die "timed out waiting for ${2:-it} in $1"
}
free_port() { # a tcp port nothing listens on, from a range the kernel does not hand out for outgoing connects
	local p
	for p in $(seq 15000 15999); do
		ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
	die "no free port in 15000-15999"
}
# systemd-socket-activate starts the service at the first connection, as a .socket unit would.
poke_tcp() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; die "nothing on port $1"; }
poke_unix() { for _ in $(seq 100); do [[ -S $1 ]] && return 0; sleep 0.05; done; die "no socket $1"; }

export EML_LOG_TARGET=stderr
unset AWS_SESSION_TOKEN AWS_PROFILE
rm -rf "$D"
mkdir -p "$D"

say "components"
for b in eml eml-nsm-sim eml-kms-local eml-kms-relay eml-blind-relay eml-init eml-inferenced; do
	if have "$b"; then note "$(printf '%-16s built' "$b")"; else note "$(printf '%-16s not built yet: stages that need it are skipped' "$b")"; fi
done
have eml && have eml-nsm-sim && have eml-kms-local && have eml-kms-relay || die "the host components are not built"

say "model"
mkdir -p "$D/model"
if [[ -n ${MODEL:-} ]]; then
	cp "$MODEL"/config.json "$MODEL"/vocab.txt "$MODEL"/model.safetensors "$D/model/" || die "MODEL=$MODEL"
	note "weights from $MODEL"
else
	V=$ROOT/tests/vectors/models/all-MiniLM-L6-v2
	cp "$V/config.json" "$V/vocab.txt" "$D/model/"
	"$EML" model random --config "$D/model/config.json" --seed 1 -o "$D/model/model.safetensors" || die "model random"
	note "MiniLM-shaped random weights (seed 1): embeddings are deterministic but carry no meaning"
fi
note "$(du -h "$D/model/model.safetensors" | cut -f1) model.safetensors, $(jq -r '"\(.num_hidden_layers) layers, hidden \(.hidden_size)"' "$D/model/config.json")"

TEXTS=("Confidential inference keeps the host blind." "The enclave signs a receipt for every request." "Hello, world!")
say "local embeddings (no enclave; the reference for the end-to-end results)"
"$EML" embed --model "$D/model" "${TEXTS[@]}" >"$D/local.json" || die "local embed"
note "dim $(jq .dim "$D/local.json"), ${#TEXTS[@]} texts"

say "enclave measurement"
if [[ -s build/enclave-image/pcrs.json ]]; then
	jq '(.Measurements // .) | {"0": .PCR0, "1": .PCR1, "2": .PCR2}' build/enclave-image/pcrs.json >"$D/pcrs.json"
	note "PCRs of build/enclave-image (make enclave-image)"
else
	# Without a built image: a stand-in PCR0 derived from the enclave's programs, so it changes when they do.
	progs=("$BIN/eml-init")
	have eml-inferenced && progs+=("$BIN/eml-inferenced")
	pcr0=$(cat "${progs[@]}" | openssl dgst -sha384 -r | cut -d" " -f1)
	printf '{"0": "%s"}\n' "$pcr0" >"$D/pcrs.json"
	note "no enclave image built: PCR0 stands in as SHA-384 of the enclave programs (make enclave-image for real PCRs)"
fi
PCR0=$(jq -r '."0"' "$D/pcrs.json")
note "PCR0 ${PCR0:0:32}..."

say "eml dev init: development CA, model-owner key, signed client policy"
if has_cmd "dev init"; then
	"$EML" dev init "$D/dev" --pcrs "$D/pcrs.json" >"$D/dev-init.json" || die "eml dev init"
else
	mkdir -p "$D/dev/signers"
	"$EML" dev ca init "$D/dev/ca" >/dev/null || die "eml dev ca init"
	openssl genpkey -algorithm ed25519 -out "$D/dev/owner.pem" 2>/dev/null
	openssl pkey -in "$D/dev/owner.pem" -pubout -out "$D/dev/signers/owner.pub"
	if has_cmd "policy sign"; then
		jq --arg pcr "$PCR0" -n '{name: "dev", pcrs: {"0": [$pcr]}, roots: ["@ca/root.pem"], max_age_s: 300}' \
			>"$D/dev/policy.json"
		chmod 600 "$D/dev/policy.json"
		"$EML" policy keygen -o "$D/dev/policy-key.pem" --pub "$D/dev/policy-key.pub" >/dev/null
		"$EML" policy sign --key "$D/dev/policy-key.pem" --in "$D/dev/policy.json" -o "$D/dev/policy.cose"
	fi
fi
CA=$D/dev/ca
note "CA root $(openssl x509 -in "$CA/root.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | cut -c1-16)... (verifies dev documents only)"
note "model-owner Ed25519 key dev/owner.pem; the enclave trusts dev/signers/owner.pub"
[[ -e $D/dev/policy.cose ]] && note "client policy dev/policy.cose (PCR0, dev root), signed by dev/policy-key.pem"

say "eml-nsm-sim (the enclave's /dev/nsm) and eml-kms-local (AWS KMS)"
"$BIN/eml-nsm-sim" --ca "$CA" --listen "unix:$D/nsm.sock" --pcrs "$D/pcrs.json" 2>"$D/nsm-sim.log" &
pids+=($!)
poke_unix "$D/nsm.sock"
export AWS_ACCESS_KEY_ID=AKIDDEMO AWS_SECRET_ACCESS_KEY=demosecret/example AWS_REGION=us-east-1
printf '# access key id, secret\n%s %s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$D/creds"
"$BIN/eml-kms-local" --keys "$D/keys" --credentials "$D/creds" --attestation-root "$CA/root.pem" \
	--print-address >"$D/kms-local.addr" 2>"$D/kms-local.log" &
pids+=($!)
wait_file "$D/kms-local.addr" '^tcp:'
KMS_URL="http://$(sed 's/^tcp://' "$D/kms-local.addr")/"
note "eml-nsm-sim on unix:$D/nsm.sock, eml-kms-local on $KMS_URL"
# The model owner's key: only an enclave with our PCR0 may decrypt (the policy eml-deploy(7) shows for AWS).
policy=$(jq -nc --arg pcr "$PCR0" '{Version: "2012-10-17", Statement: [
	{Sid: "owner", Effect: "Allow", Principal: {AWS: "arn:aws:iam::111122223333:root"},
	 Action: ["kms:DescribeKey", "kms:GenerateDataKey"], Resource: "*"},
	{Sid: "enclave", Effect: "Allow", Principal: {AWS: "arn:aws:iam::111122223333:root"},
	 Action: ["kms:Decrypt", "kms:GenerateDataKey"], Resource: "*",
	 Condition: {StringEqualsIgnoreCase: {"kms:RecipientAttestation:PCR0": $pcr}}}]}')
KEY=$("$EML" kms call --endpoint "$KMS_URL" CreateKey "$(jq -nc --arg p "$policy" '{Description: "demo model key", Policy: $p}')" |
	jq -r .KeyMetadata.KeyId) || die "CreateKey"
note "KMS key $KEY, Decrypt only for kms:RecipientAttestation:PCR0 = our PCR0"

say "eml-kms-relay, socket-activated (the enclave's vsock 3:8001)"
systemd-socket-activate -l "$D/kms-relay.sock" --fdname=kms -E EML_LOG_TARGET -E AWS_ACCESS_KEY_ID \
	-E AWS_SECRET_ACCESS_KEY -E AWS_REGION \
	"$BIN/eml-kms-relay" --endpoint "$KMS_URL" --region us-east-1 2>"$D/kms-relay.log" &
pids+=($!)
poke_unix "$D/kms-relay.sock"
KMS_RELAY=unix:$D/kms-relay.sock
note "listening on $KMS_RELAY"
# The enclave's key path, as the enclave runs it: an attested RSA recipient; the relay sees only ciphertext.
out=$("$EML" kms enclave generate-data-key --relay "$KMS_RELAY" --nsm "unix:$D/nsm.sock" --key-id "$KEY") ||
	die "GenerateDataKey with an attested recipient through the relay"
note "GenerateDataKey through the relay: a $(($(jq -r .Plaintext <<<"$out" | tr -d '\n' | wc -c) / 2))-byte data key unwrapped inside (never printed, never seen by the host)"
unset out

# The session service: eml-inferenced when it serves sessions (--listen), under eml-init as the enclave runs
# it; until then `eml dev serve`, the same session protocol and code in front of the local model.
enclave=false
session_by=
if have eml-inferenced && have eml-init; then
	say "eml-inferenced under eml-init"
	listen=
	if [[ $("$BIN/eml-inferenced" --help 2>&1 || true) == *"--listen ADDR"* ]]; then
		listen="--listen unix:$D/enclave.sock"
		session_by=eml-inferenced
	fi
	# The sockets live in the shared directory; in AWS these are vsock ports instead.
	cat >"$D/init.conf" <<-EOF2
		command=$BIN/eml-inferenced $listen --listen-control unix:$D/ctl.sock --nsm unix:$D/nsm.sock --kms-relay $KMS_RELAY --signers $D/dev/signers
		env=EML_LOG_TARGET=stderr
		env=PATH=/usr/sbin:/usr/bin:/sbin:/bin
		restart=no
		heartbeat=no
	EOF2
	if unshare -fpm --mount-proc true 2>/dev/null; then
		# --kill-child: if this script dies hard, the enclave's PID 1 still gets SIGTERM.
		unshare -fpm --mount-proc --kill-child=SIGTERM "$BIN/eml-init" --no-heartbeat --config "$D/init.conf" \
			2>"$D/enclave.log" &
		ns_inits+=($!)
		note "in private mount and pid namespaces (eml-init is PID 1 there)"
	else
		"$BIN/eml-init" --no-heartbeat --config "$D/init.conf" 2>"$D/enclave.log" &
		pids+=($!)
		note "unshare is not permitted here: eml-init supervises it in the host namespaces"
	fi
	poke_unix "$D/ctl.sock"
	enclave=true
fi
if [[ -z $session_by ]] && has_cmd "dev serve"; then
	say "eml dev serve: development stand-in for the enclave's session service"
	"$EML" dev serve --listen "unix:$D/enclave.sock" --nsm "unix:$D/nsm.sock" --model "$D/model" 2>"$D/serve.log" &
	pids+=($!)
	poke_unix "$D/enclave.sock"
	session_by="eml dev serve"
	note "attested by eml-nsm-sim (our PCR0), the local model, receipts signed with a key made at start"
fi

if [[ -n $session_by ]] && have eml-blind-relay; then
	say "eml-blind-relay, socket-activated (clients' tcp 5000)"
	RELAY_PORT=$(free_port)
	systemd-socket-activate -l "127.0.0.1:$RELAY_PORT" --fdname=client -E EML_LOG_TARGET \
		"$BIN/eml-blind-relay" --enclave "unix:$D/enclave.sock" 2>"$D/blind-relay.log" &
	pids+=($!)
	poke_tcp "$RELAY_PORT"
	note "clients connect to tcp:127.0.0.1:$RELAY_PORT; sessions go to $session_by"
fi

loaded=false
if $enclave && has_cmd "model seal" && has_cmd "ctl load"; then
	say "seal the model (owner) and load it into the enclave (operator)"
	"$EML" model seal --model "$D/model" --key-id "$KEY" --signing-key "$D/dev/owner.pem" -o "$D/model.emodel" \
		--kms-endpoint "$KMS_URL" --model-id minilm-demo --version 1 >"$D/seal.json" || die "model seal"
	note "sealed: $(du -h "$D/model.emodel" | cut -f1), manifest $(jq -r .manifest_sha256 "$D/seal.json" | cut -c1-16)..."
	EML_CONTROL=unix:$D/ctl.sock "$EML" ctl load "$D/model.emodel" >"$D/load.json" || die "ctl load"
	EML_CONTROL=unix:$D/ctl.sock "$EML" ctl status >"$D/status.json" || die "ctl status"
	note "loaded: $(jq -c '{model: .model.model_id, version: .model.version}' "$D/status.json")"
	loaded=true
fi

if [[ -n ${RELAY_PORT:-} && -e $D/dev/policy.cose ]] && has_cmd "attestation fetch"; then
	say "three embeddings through the blind relay, each attested, with a verified receipt"
	printf '   %-48s %-4s %-9s %-9s %s\n' text dim "max|diff|" receipt "receipt sha256"
	for i in "${!TEXTS[@]}"; do
		t=${TEXTS[$i]}
		"$EML" embed --endpoint "tcp:127.0.0.1:$RELAY_PORT" --policy "$D/dev/policy.cose" \
			--policy-key "$D/dev/policy-key.pub" "$t" >"$D/e2e.json" 2>"$D/e2e.err" ||
			die "eml embed --endpoint: $(cat "$D/e2e.err")"
		# The client checked the receipt already; check it again on its own, as anyone holding it can.
		jq -r .receipt "$D/e2e.json" >"$D/receipt.hex"
		"$EML" receipt verify "$D/receipt.hex" --key "$(jq -r .attestation.receipt_key "$D/e2e.json")" \
			--platform nitro-pcr >/dev/null 2>"$D/receipt.err" || die "receipt: $(cat "$D/receipt.err")"
		diff=$(jq -n --slurpfile a "$D/e2e.json" --slurpfile b "$D/local.json" --argjson i "$i" \
			'[$a[0].embeddings[0], $b[0].embeddings[$i]] | transpose | map(.[0] - .[1] | fabs) | max')
		sha=$(xxd -r -p "$D/receipt.hex" | sha256sum | cut -c1-16)
		printf '   %-48s %-4s %-9.2g %-9s %s...\n' "$t" "$(jq .dim "$D/e2e.json")" "$diff" verified "$sha"
	done
	note "attested PCR0 $(jq -r '.attestation.pcrs."0"' "$D/e2e.json" | cut -c1-32)..., policy $(jq -r .policy "$D/e2e.json") (signed: $(jq -r .policy_signed "$D/e2e.json"))"
	say "audit lines (eml-blind-relay: metadata only, no text, no vectors)"
	for _ in $(seq 40); do (($(grep -c 'MESSAGE_ID=7e9d793478084f2483be8faa2728887d' "$D/blind-relay.log" || true) >= ${#TEXTS[@]})) && break; sleep 0.05; done
	grep 'MESSAGE_ID=7e9d793478084f2483be8faa2728887d' "$D/blind-relay.log" |
		sed 's/^MESSAGE="[^"]*" //; s/^PRIORITY=[^ ]* SYSLOG_IDENTIFIER=[^ ]* MESSAGE_ID=[^ ]* //; s/^/   /'
else
	say "end-to-end embeddings: not yet (needs the session service, eml policy and eml embed --endpoint)"
fi

say "KMS audit lines (eml-kms-relay: target, key id, status; never a key)"
grep 'MESSAGE_ID=210388c64f954778b17156c0e3e5c2c7' "$D/kms-relay.log" | sed 's/ PRIORITY=.*EML_KMS_TARGET/ EML_KMS_TARGET/; s/^/   /'

ms=$((($(date +%s%N) - START) / 1000000))
say "demo finished in $((ms / 1000)).$((ms % 1000 / 100)) s; stopping everything it started"
