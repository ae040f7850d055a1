# The whole system on loopback, for the whole-system tests and the end-to-end benchmark (sourced, not run).
# Every process started here is recorded and stopped by the EXIT trap, whatever happens; every wait has a
# deadline. Addresses are unix sockets in a private temporary directory and free tcp ports on 127.0.0.1.
#
#   stack_ca                         eml dev init in $S/dev with a random PCR0 ($S/pcrs.json, $PCR0): dev CA
#                                    ($S/ca), owner key, policy key, signed policy ($S/dev/policy.cose)
#   stack_nsm [PCRS_JSON]            eml-nsm-sim on unix:$S/nsm.sock (PCRs of stack_ca) -> $NSM
#   stack_kms_local                  eml-kms-local, credentials exported         -> $KMS_URL
#   stack_kms_key PCR0 [seal]        a KMS key whose policy names PCR0 (seal: the owner may GenerateDataKey) -> $KEY
#   stack_kms_relay [URL] [PORT]     eml-kms-relay socket-activated on tcp       -> $KMS_RELAY, $KMS_RELAY_PORT, $KMS_RELAY_PID
#   stack_blind_relay ENCLAVE_ADDR   eml-blind-relay socket-activated on tcp     -> $RELAY, $RELAY_PORT
#   stack_spy NAME TARGET            recording proxy in front of TARGET          -> $SPY (address), $S/spy-NAME/
#   stack_spy_find NAME HEX          succeeds if the bytes HEX appear in any recording of NAME (raw, or as
#                                    hex or base64 text)
#   stack_model [SEED]               MiniLM-shaped random model in $S/model
#   stack_service                    the session service on $SERVICE (eml-inferenced with the model sealed
#                                    and loaded, or eml dev serve) -> $SERVICE_BY, $SERVICE_PID
#   stack_wait_socket PATH, stack_poke PORT, stack_wait_for FILE REGEX [SECONDS]
set -euo pipefail
B=$EML_BUILD/bin
HELPER=$EML_BUILD/testbin/stack-helper
S=$(mktemp -d "${TMPDIR:-/tmp}/eml-stack.XXXXXX")
stack_pids=()
stack_n=0
stack_cleanup() {
	local p
	for p in "${stack_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${stack_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$S"
}
trap stack_cleanup EXIT
ulimit -n "$(ulimit -Hn)"
export EML_LOG_TARGET=stderr
unset AWS_SESSION_TOKEN AWS_PROFILE

fail() {
	local f
	echo "FAIL: $*"
	for f in "$S"/*.log; do [[ -e $f ]] && { echo "--- $f"; tail -n 30 "$f"; }; done
	exit 1
}
stack_track() { stack_pids+=("$1"); }

stack_free_port() { "$EML_BUILD/testbin/relay-peer" free-port; }

stack_wait_socket() { # PATH [SECONDS]
	local i
	for i in $(seq $((${2:-10} * 20))); do [[ -S $1 ]] && return 0; sleep 0.05; done
	fail "no socket at $1"
}
stack_wait_for() { # FILE REGEX [SECONDS]
	local i
	for i in $(seq $((${3:-10} * 20))); do grep -qE -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	fail "timed out waiting for '$2' in $1"
}
# systemd-socket-activate starts the service at the first connection, as a .socket unit would: poke it.
stack_poke() { # PORT
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
	fail "nothing listens on port $1"
}

stack_ca() {
	printf '{"0": "%s"}\n' "$(head -c 48 /dev/urandom | xxd -p -c 48)" >"$S/pcrs.json"
	PCR0=$(jq -r '."0"' "$S/pcrs.json")
	"$B/eml" dev init "$S/dev" --pcrs "$S/pcrs.json" >/dev/null || fail "eml dev init"
	ln -s dev/ca "$S/ca"
}

stack_nsm() { # [PCRS_JSON]
	local pcrs=${1:-$S/pcrs.json}
	"$B/eml-nsm-sim" --ca "$S/ca" --listen "unix:$S/nsm.sock" --pcrs "$pcrs" 2>"$S/nsm-sim.log" &
	stack_track $!
	stack_wait_socket "$S/nsm.sock"
	NSM=unix:$S/nsm.sock
	PCR0=$(jq -r '."0"' "$pcrs")
}

stack_kms_local() {
	printf '# access key id, secret\nAKIDSTACKTEST  stacksecret/example\n' >"$S/creds"
	"$B/eml-kms-local" --keys "$S/keys" --credentials "$S/creds" --attestation-root "$S/ca/root.pem" \
		--print-address >"$S/kms-local.addr" 2>"$S/kms-local.log" &
	stack_track $!
	stack_wait_for "$S/kms-local.addr" '^tcp:'
	KMS_URL="http://$(sed 's/^tcp://' "$S/kms-local.addr")/"
	export AWS_ACCESS_KEY_ID=AKIDSTACKTEST AWS_SECRET_ACCESS_KEY=stacksecret/example AWS_REGION=us-east-1
}

stack_kms_key() { # PCR0 [seal]
	local policy out owner='["kms:DescribeKey", "kms:Encrypt"]'
	# eml-kms-local has one principal for every credential: the owner's unconditioned GenerateDataKey (to seal)
	# is granted only when asked, since it would also let an unattested caller have data keys.
	[[ ${2:-} == seal ]] && owner='["kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]'
	policy=$(jq -nc --arg pcr "$1" --argjson owner "$owner" '{Version: "2012-10-17", Statement: [
		{Sid: "owner", Effect: "Allow", Principal: {AWS: "arn:aws:iam::111122223333:root"},
		 Action: $owner, Resource: "*"},
		{Sid: "enclave", Effect: "Allow", Principal: {AWS: "arn:aws:iam::111122223333:root"},
		 Action: ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateRandom"], Resource: "*",
		 Condition: {StringEqualsIgnoreCase: {"kms:RecipientAttestation:PCR0": $pcr}}}]}')
	out=$("$B/eml" kms call --endpoint "$KMS_URL" CreateKey "$(jq -nc --arg p "$policy" '{Policy: $p}')") ||
		fail "CreateKey: $out"
	KEY=$(jq -r .KeyMetadata.KeyId <<<"$out")
}

stack_kms_relay() { # [UPSTREAM_URL] [PORT]
	KMS_RELAY_PORT=${2:-$(stack_free_port)}
	KMS_RELAY_LOG=$S/kms-relay-$((++stack_n)).log
	systemd-socket-activate -l "127.0.0.1:$KMS_RELAY_PORT" --fdname=kms -E EML_LOG_TARGET=stderr \
		-E AWS_ACCESS_KEY_ID -E AWS_SECRET_ACCESS_KEY -E AWS_REGION -E ASAN_OPTIONS="${ASAN_OPTIONS:-}" \
		"$B/eml-kms-relay" --endpoint "${1:-$KMS_URL}" --region us-east-1 --retries 1 --timeout 10000 \
		2>"$KMS_RELAY_LOG" &
	KMS_RELAY_PID=$!
	stack_track $!
	KMS_RELAY=tcp:127.0.0.1:$KMS_RELAY_PORT
	stack_poke "$KMS_RELAY_PORT"
	stack_wait_for "$KMS_RELAY_LOG" "eml-kms-relay listening"
}

stack_blind_relay() { # ENCLAVE_ADDR
	RELAY_PORT=$(stack_free_port)
	systemd-socket-activate -l "127.0.0.1:$RELAY_PORT" --fdname=client -E EML_LOG_TARGET=stderr \
		-E ASAN_OPTIONS="${ASAN_OPTIONS:-}" \
		"$B/eml-blind-relay" --enclave "$1" --connect-timeout 2 --shutdown-timeout 5 2>>"$S/blind-relay.log" &
	stack_track $!
	RELAY=tcp:127.0.0.1:$RELAY_PORT
	stack_poke "$RELAY_PORT"
}

stack_spy() { # NAME TARGET
	mkdir -p "$S/spy-$1"
	"$HELPER" spy "unix:$S/spy-$1.sock" "$2" "$S/spy-$1" >"$S/spy-$1.ready" 2>"$S/spy-$1.log" &
	stack_track $!
	stack_wait_for "$S/spy-$1.ready" '^ready'
	SPY=unix:$S/spy-$1.sock
}

# The recordings are binary; perl's index() looks for the secret as raw bytes, lower/upper hex and base64 (plain,
# and with JSON's escaped solidus): the forms a leak through a JSON or text protocol would take.
stack_spy_find() { # NAME HEX
	perl -e '
		use MIME::Base64;
		my ($dir, $hex) = @ARGV;
		my $raw = pack("H*", $hex);
		my $b64 = encode_base64($raw, "");
		(my $b64j = $b64) =~ s{/}{\\/}g; # as JSON writers that escape the solidus put it
		my @forms = ($raw, lc $hex, uc $hex, $b64, $b64j);
		for my $f (glob("$dir/*.up"), glob("$dir/*.down")) {
			open(my $fh, "<:raw", $f) or die "$f: $!";
			local $/; my $data = <$fh>; close $fh;
			for my $p (@forms) { if (index($data, $p) >= 0) { print "$f\n"; exit 0 } }
		}
		exit 1;' "$S/spy-$1" "$2"
}
stack_spy_bytes() { cat "$S/spy-$1"/*.up "$S/spy-$1"/*.down 2>/dev/null | wc -c; }

# stack_model [SEED]: the MiniLM-shaped random model in $S/model.
stack_model() {
	mkdir -p "$S/model"
	cp "$EML_SRCDIR/tests/vectors/models/all-MiniLM-L6-v2/config.json" \
		"$EML_SRCDIR/tests/vectors/models/all-MiniLM-L6-v2/vocab.txt" "$S/model/"
	"$B/eml" model random --config "$S/model/config.json" --seed "${1:-1}" -o "$S/model/model.safetensors"
}

# stack_service: the session service on unix:$S/enclave.sock (-> $SERVICE, $SERVICE_BY, $SERVICE_PID), after
# stack_ca, stack_nsm and stack_model. eml-inferenced when it serves sessions (then with the model sealed under
# a PCR0-bound KMS key and loaded through eml-kms-relay, as in production), else `eml dev serve`, the same
# session code in front of the plain model. stack_service_start restarts it after a kill.
stack_service_start() {
	rm -f "$S/enclave.sock"
	if [[ $SERVICE_BY == eml-inferenced ]]; then
		"$B/eml-inferenced" --listen "unix:$S/enclave.sock" --listen-control "unix:$S/ctl.sock" --nsm "$NSM" \
			--kms-relay "$KMS_RELAY" --signers "$S/dev/signers" 2>>"$S/service.log" &
	else
		"$B/eml" dev serve --listen "unix:$S/enclave.sock" --nsm "$NSM" --model "$S/model" 2>>"$S/service.log" &
	fi
	SERVICE_PID=$!
	stack_track $!
	stack_wait_socket "$S/enclave.sock"
	if [[ $SERVICE_BY == eml-inferenced ]]; then
		EML_CONTROL=unix:$S/ctl.sock "$B/eml" ctl load "$S/model.emodel" >/dev/null || fail "eml ctl load"
	fi
}
stack_service() {
	local h
	h=$("$B/eml-inferenced" --help 2>&1 || true)
	SERVICE=unix:$S/enclave.sock
	if [[ $h == *"--listen ADDR"* ]]; then
		SERVICE_BY=eml-inferenced
		[[ -n ${KMS_RELAY:-} ]] || { stack_kms_local; stack_kms_key "$PCR0" seal; stack_kms_relay; }
		"$B/eml" model seal --model "$S/model" --key-id "$KEY" --signing-key "$S/dev/owner.pem" \
			-o "$S/model.emodel" --kms-endpoint "$KMS_URL" --model-id stack --version 1 >/dev/null ||
			fail "eml model seal"
	else
		SERVICE_BY="eml dev serve"
	fi
	stack_service_start
}
