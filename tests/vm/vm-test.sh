#!/usr/bin/env bash
# vm-test.sh IMAGE_DIR: boots the enclave image's kernel with its bootstrap ramdisk (eml-init as PID 1) plus a
# test ramdisk under qemu-system-x86_64 (software emulation, -nographic, user-mode networking), waits for the
# configured command's marker on the serial console, asks for a shutdown (Ctrl-Alt-Del, which eml-init receives
# as SIGINT and turns into SIGTERM for the command) and expects a clean power-off. Prints the timings.
# Environment: VM_COMMAND (shell text run by busybox sh inside the VM; default prints EML-VM-MARKER and sleeps),
# VM_MARKER (what to wait for), VM_ACCEL (default tcg), VM_TIMEOUT (seconds, default 85), VM_KEEP=1 keeps the
# work directory.
set -euo pipefail
img=${1:?usage: vm-test.sh IMAGE_DIR}
img=$(cd "$img" && pwd)
eml=${EML:-$(dirname "$img")/release/bin/eml}
marker=${VM_MARKER:-EML-VM-MARKER}
command=${VM_COMMAND:-"echo $marker; exec /bin/busybox sleep 600"}
accel=${VM_ACCEL:-tcg}
timeout=${VM_TIMEOUT:-85}
cache=$(dirname "$img")/vm
work=$(mktemp -d)
qemu_pid=
cleanup() {
	[[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null || true
	if [[ ${VM_KEEP:-} == 1 ]]; then echo "vm-test: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# A static busybox for the test command (Debian's busybox-static, fetched once).
if [[ ! -x $cache/busybox ]]; then
	mkdir -p "$cache"
	(cd "$cache" && rm -f ./*.deb && apt-get download -q busybox-static >/dev/null 2>&1) ||
		{ echo "vm-test: apt-get download busybox-static failed" >&2; exit 1; }
	dpkg-deb --fsys-tarfile "$cache"/busybox-static_*.deb | tar -xO ./bin/busybox >"$cache/busybox.tmp"
	chmod 0755 "$cache/busybox.tmp" && mv "$cache/busybox.tmp" "$cache/busybox" && rm -f "$cache"/*.deb
fi

# The test ramdisk replaces the image's application ramdisk: same eml-init, a test configuration.
mkdir -p "$work/root/etc/eml" "$work/root/bin"
install -m 0755 "$cache/busybox" "$work/root/bin/busybox"
printf '%s\n' "$command" >"$work/root/etc/eml/vm-command.sh"
cat >"$work/root/etc/eml/init.conf" <<CONF
command=/bin/busybox sh /etc/eml/vm-command.sh
env=PATH=/bin
restart=no
stop-timeout-ms=5000
heartbeat=no
CONF
"$eml" eif ramdisk -o "$work/vm.cpio" "$work/root"
cat "$img/bootstrap.cpio" "$work/vm.cpio" >"$work/initrd"

mkfifo "$work/mon.in" "$work/mon.out"
start=$(date +%s%N)
ms() { echo $((($(date +%s%N) - start) / 1000000)); }
qemu-system-x86_64 -accel "$accel" -m 512 -smp 1 -nographic -no-reboot \
	-kernel "$img/vmlinuz" -initrd "$work/initrd" \
	-append "console=ttyS0 panic=-1 loglevel=4" \
	-monitor "pipe:$work/mon" \
	-nic user,model=virtio-net-pci \
	</dev/null >"$work/console.log" 2>&1 &
qemu_pid=$!
# Drain the monitor's output so it can never block on a full pipe.
cat "$work/mon.out" >/dev/null &

fail() {
	[[ -n ${EML_TALLY:-} ]] && echo "vm 0 1" >>"$EML_TALLY"
	echo "vm-test: $*" >&2
	echo "---- console ----" >&2
	tr -d '\r' <"$work/console.log" | tail -60 >&2
	exit 1
}
until grep -q "$marker" "$work/console.log"; do
	kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited before the marker"
	(($(ms) < timeout * 1000)) || fail "no marker within ${timeout}s"
	sleep 0.2
done
marker_ms=$(ms)
echo "sendkey ctrl-alt-delete" >"$work/mon.in"
while kill -0 "$qemu_pid" 2>/dev/null; do
	(($(ms) < timeout * 1000)) || fail "no power-off within ${timeout}s"
	sleep 0.2
done
rc=0; wait "$qemu_pid" || rc=$?
qemu_pid=
total_ms=$(ms)
((rc == 0)) || fail "qemu exit status $rc"
console=$(tr -d '\r' <"$work/console.log")
grep -q 'eml-init: started /bin/busybox' <<<"$console" || fail "eml-init did not start the command"
grep -q 'eml-init: received Interrupt: stopping' <<<"$console" || fail "no shutdown request reached eml-init"
grep -q 'eml-init: powering off' <<<"$console" || fail "eml-init did not power off"
grep -q 'reboot: Power down' <<<"$console" || fail "the kernel did not power down"
echo "vm-test: ok: marker after ${marker_ms} ms, powered off after ${total_ms} ms (accel $accel)"
[[ -n ${EML_TALLY:-} ]] && echo "vm 1 0" >>"$EML_TALLY"
echo "vm-test: 1 passed, 0 failed"
