#!/usr/bin/env bash
# build.sh OUTDIR: the enclave image, deterministically.
#   OUTDIR/bootstrap.cpio  /init (eml-init), /lib/modules/eml/*.ko (virtio-mmio, vsock), /nsm.ko if given
#                                                                   -> measured into PCR1 with kernel and cmdline
#   OUTDIR/app.cpio        /etc/eml/init.conf, /usr/bin/eml-inferenced (stripped) and its shared-library
#                          closure (closure.sh: ld.so and every DT_NEEDED library, from the build host's Debian
#                          packages), /etc/eml/model-signers/                                -> PCR2
#   OUTDIR/enclave.eif     kernel + cmdline + both ramdisks          -> PCR0
#   OUTDIR/pcrs.json       PCR0/1/2 in nitro-cli's shape; OUTDIR/vmlinuz the kernel used, OUTDIR/kernel.txt
#                          where it came from (SHA-256, Debian package) and the cmdline, OUTDIR/libs.txt the
#                          libraries in app.cpio ("lib PATH SHA256 PACKAGE VERSION", one a line)
# Environment: EML (eml binary), STATIC_DIR (static enclave binaries), INFERENCED (the eml-inferenced binary,
# dynamically linked; default STATIC_DIR/eml-inferenced when that exists), KERNEL (bzImage; default Debian's,
# fetched once into build/kernel), KERNEL_VERSION (metadata only, with KERNEL), MODULES_DIR (that kernel's
# module tree; default the fetched one, none with KERNEL), ENCLAVE_MODULES (default: virtio_mmio vmw_vsock_virtio_transport), NSM_KO (the NSM driver for that
# kernel: Debian 12's 6.1 has none), CMDLINE, INIT_CONF (default enclave-image/init.conf), SOURCE_DATE_EPOCH
# (metadata build time, default 0). Same inputs, same bytes: nothing depends on time, owner or file order.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
eml=${EML:?EML must name the eml binary}
static=${STATIC_DIR:?STATIC_DIR must name the static binaries}
src=$(cd "$(dirname "$0")" && pwd)
kernel=${KERNEL:-}
# AWS's x86_64 enclave cmdline (virtio-mmio vsock, no PCI, serial console), without "nomodules": we load nsm.ko.
cmdline=${CMDLINE:-"reboot=k panic=30 pci=off console=ttyS0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd random.trust_cpu=on virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6"}
conf=${INIT_CONF:-$src/init.conf}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}

kver=${KERNEL_VERSION:-Unknown}
moddir=${MODULES_DIR:-}
if [[ -z $kernel ]]; then
	kernel=$("$src/fetch-kernel.sh" "$(dirname "$out")/kernel")
	kver=$(cat "$(dirname "$kernel")/kernel-version")
	moddir=${moddir:-$(dirname "$kernel")/modules}
fi
[[ -s $kernel ]] || { echo "build.sh: no kernel at $kernel" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/stage/bootstrap" "$out/stage/app/etc/eml/model-signers" "$out/stage/app/usr/bin"
install -m 0755 "$static/eml-init" "$out/stage/bootstrap/init"
if [[ -n $moddir ]]; then
	# shellcheck disable=SC2086
	"$src/kmods.sh" "$moddir" "$out/stage/bootstrap/lib/modules/eml" ${ENCLAVE_MODULES:-virtio_mmio vmw_vsock_virtio_transport}
fi
[[ -n ${NSM_KO:-} ]] && install -m 0644 "$NSM_KO" "$out/stage/bootstrap/nsm.ko"
inferenced=${INFERENCED:-}
[[ -z $inferenced && -e $static/eml-inferenced ]] && inferenced=$static/eml-inferenced
: >"$out/libs.txt"
if [[ -n $inferenced ]]; then
	# Debian 12 has neither libsystemd.a nor libcbor.a: the daemon is dynamic and brings its exact closure.
	strip --strip-all -o "$out/stage/app/usr/bin/eml-inferenced" "$inferenced"
	chmod 0755 "$out/stage/app/usr/bin/eml-inferenced"
	"$src/closure.sh" "$out/stage/app" "$out/stage/app/usr/bin/eml-inferenced" >"$out/libs.txt"
fi
install -m 0644 "$conf" "$out/stage/app/etc/eml/init.conf"
for k in "$src"/model-signers/*.pub; do
	[[ -e $k ]] && install -m 0644 "$k" "$out/stage/app/etc/eml/model-signers/"
done

"$eml" eif ramdisk -o "$out/bootstrap.cpio" "$out/stage/bootstrap"
"$eml" eif ramdisk -o "$out/app.cpio" "$out/stage/app"
install -m 0644 "$kernel" "$out/vmlinuz"
"$eml" eif build --kernel "$out/vmlinuz" --cmdline "$cmdline" --ramdisk "$out/bootstrap.cpio" \
	--ramdisk "$out/app.cpio" -o "$out/enclave.eif" --pcrs "$out/pcrs.json" --name eml-enclave \
	--image-version "$("$eml" version | awk '{print $2}')" --kernel-version "$kver" >/dev/null
rm -rf "$out/stage"
# Provenance of what PCR0 measures beyond our own bytes.
{
	echo "kernel $(sha256sum "$out/vmlinuz" | awk '{print $1}') $kver"
	[[ -n ${moddir:-} && -e $(dirname "$moddir")/source ]] && echo "kernel-package $(cat "$(dirname "$moddir")/source")"
	echo "cmdline $cmdline"
} >"$out/kernel.txt"
echo "enclave image: $out/enclave.eif ($(stat -c %s "$out/enclave.eif") bytes)"
cat "$out/pcrs.json"
