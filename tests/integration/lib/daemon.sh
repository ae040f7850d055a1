# Shared helpers of the daemon integration tests (sourced, not run): temporary directory and process cleanup,
# free ports, a notify listener, and waiting for lines in files.
set -euo pipefail
PEER=$EML_BUILD/testbin/relay-peer
tmp=$(mktemp -d "${TMPDIR:-/tmp}/eml-daemon-test.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
# Sessions need file descriptors: two sockets per connection and pipes for large frames.
ulimit -n "$(ulimit -Hn)"

fail() { echo "FAIL: $*"; for f in "$tmp"/*.log; do [[ -e $f ]] && { echo "--- $f"; tail -n 30 "$f"; }; done; exit 1; }

free_port() { "$PEER" free-port; }

# wait_for FILE REGEX [SECONDS]
wait_for() {
	local i
	for i in $(seq $((${3:-5} * 20))); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "timed out waiting for '$2' in $1"
}

start_notify() { # start_notify NAME -> $tmp/NAME.sock, lines in $tmp/NAME.notify
	"$PEER" notify "$tmp/$1.sock" "$tmp/$1.notify" & pids+=($!)
	for _ in $(seq 100); do [[ -S $tmp/$1.sock ]] && return; sleep 0.02; done
	fail "notify listener did not start"
}

# systemd-socket-activate only starts the service at the first connection, like a .socket unit: poke it.
poke() {
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done
	fail "nothing listens on port $1"
}
