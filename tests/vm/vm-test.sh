#!/usr/bin/env bash
# vm-test.sh IMAGE_DIR: boots the enclave image's kernel with its bootstrap ramdisk (eml-init as PID 1), its
# application ramdisk (eml-inferenced and its libraries) and a test ramdisk on top under qemu-system-x86_64 (software emulation, -nographic, user-mode networking), waits for the
# configured command's marker on the serial console, asks for a shutdown (Ctrl-Alt-Del, which eml-init receives
# as SIGINT and turns into SIGTERM for the command) and expects a clean power-off. Prints the timings.
# The default command also brings up virtio-net (modules from the image's kernel) and serves one line on guest
# port 5000, which the host reads through qemu's user-mode networking (hostfwd): the path a client session
# will take once eml-inferenced runs in the VM.
# Environment: VM_COMMAND (shell text run by busybox sh inside the VM instead of the default; it should print
# VM_MARKER), VM_MARKER (default EML-VM-MARKER), VM_EXTRA_DIR (a tree copied into the VM's root, e.g. the
# daemon and its configuration), VM_HOST_CHECK (shell text run on the host once the marker is seen, with
# VM_PORT = the host port forwarded to guest port 5000, VM_CTL_PORT the one forwarded to guest port 5001 and
# VM_START_NS the time qemu started (date +%s%N); failing it fails the test), VM_EXPECT (an extended regex the
# console must match after the power-off), VM_STOP_TIMEOUT_MS (eml-init's stop-timeout-ms, default 5000),
# VM_ACCEL (default tcg),
# VM_TIMEOUT (seconds, default 85), VM_KEEP=1 keeps the work directory.
set -euo pipefail
img=${1:?usage: vm-test.sh IMAGE_DIR}
img=$(cd "$img" && pwd)
eml=${EML:-$(dirname "$img")/release/bin/eml}
marker=${VM_MARKER:-EML-VM-MARKER}
hello=EML-VM-HELLO-$RANDOM$RANDOM
net_check=1
[[ -n ${VM_COMMAND:-} ]] && net_check=0
command=${VM_COMMAND:-"ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 && echo EML-VM-NET-UP
echo $hello | nc -l -p 5000
echo $marker
exec sleep 600"}
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

# The test ramdisk goes on top of the image's two: same eml-init and eml-inferenced, a test configuration.
mkdir -p "$work/root/etc/eml" "$work/root/bin"
install -m 0755 "$cache/busybox" "$work/root/bin/busybox"
for applet in sh ip nc sleep; do ln -s busybox "$work/root/bin/$applet"; done
# Network driver for the VM; eml-init loads /lib/modules/eml/*.ko (merged with the image's own modules).
moddir=${MODULES_DIR:-$(dirname "$img")/kernel/modules}
"$(dirname "$0")/../../enclave-image/kmods.sh" "$moddir" "$work/root/lib/modules/eml" virtio_pci virtio_net
[[ -n ${VM_EXTRA_DIR:-} ]] && cp -a "$VM_EXTRA_DIR/." "$work/root/"
printf '%s\n' "$command" >"$work/root/etc/eml/vm-command.sh"
cat >"$work/root/etc/eml/init.conf" <<CONF
command=/bin/busybox sh /etc/eml/vm-command.sh
env=PATH=/bin
restart=no
stop-timeout-ms=${VM_STOP_TIMEOUT_MS:-5000}
heartbeat=no
CONF
"$eml" eif ramdisk -o "$work/vm.cpio" "$work/root"
cat "$img/bootstrap.cpio" "$img/app.cpio" "$work/vm.cpio" >"$work/initrd"

mkfifo "$work/mon.in" "$work/mon.out"
port=$((20000 + RANDOM % 30000))
ctl_port=$((port + 1))
start=$(date +%s%N)
ms() { echo $((($(date +%s%N) - start) / 1000000)); }
qemu-system-x86_64 -accel "$accel" -m 512 -smp 1 -nographic -no-reboot \
	-kernel "$img/vmlinuz" -initrd "$work/initrd" \
	-append "console=ttyS0 panic=-1 loglevel=4" \
	-monitor "pipe:$work/mon" \
	-nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$port-10.0.2.15:5000,hostfwd=tcp:127.0.0.1:$ctl_port-10.0.2.15:5001" \
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
net_ms=
if ((net_check)); then
	until grep -q EML-VM-NET-UP "$work/console.log"; do
		kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited before the network came up"
		(($(ms) < timeout * 1000)) || fail "no network within ${timeout}s"
		sleep 0.2
	done
	up_ms=$(ms)
	# The guest may not listen yet: retry until its line comes back through hostfwd.
	got=
	while [[ $got != "$hello" ]]; do
		(($(ms) < timeout * 1000)) || fail "nothing from guest port 5000 through 127.0.0.1:$port"
		got=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && read -r line <&3 && echo \$line" 2>/dev/null || true)
		[[ $got == "$hello" ]] || sleep 0.3
	done
	net_ms=$(ms)
fi
until grep -q "$marker" "$work/console.log"; do
	kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited before the marker"
	(($(ms) < timeout * 1000)) || fail "no marker within ${timeout}s"
	sleep 0.2
done
marker_ms=$(ms)
if [[ -n ${VM_HOST_CHECK:-} ]]; then
	VM_PORT=$port VM_CTL_PORT=$ctl_port VM_START_NS=$start bash -c "$VM_HOST_CHECK" || fail "host check failed: $VM_HOST_CHECK"
fi
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
grep -q 'eml-init: loaded [0-9]* of [0-9]* modules from /lib/modules/eml' <<<"$console" || fail "no modules loaded"
if [[ -n ${VM_EXPECT:-} ]]; then grep -qE -- "$VM_EXPECT" <<<"$console" || fail "the console does not match $VM_EXPECT"; fi
echo "vm-test: ok: ${net_ms:+guest network up after ${up_ms} ms, host read the guest line over user-mode networking after ${net_ms} ms, }marker after ${marker_ms} ms, powered off after ${total_ms} ms (accel $accel)"
[[ -n ${EML_TALLY:-} ]] && echo "vm 1 0" >>"$EML_TALLY"
echo "vm-test: 1 passed, 0 failed"
