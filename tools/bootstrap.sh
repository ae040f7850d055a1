#!/usr/bin/env bash
# Fresh-machine bootstrap: find which pkg-config modules and tools are missing and install exactly the Debian
# packages that provide them. As root it runs apt-get; otherwise it prints the command and fails.
# Usage: tools/bootstrap.sh [fuzz|demo|oracle|vm]   (no argument: what building and `make check` need)
set -euo pipefail

# pkg-config module -> Debian package
declare -A PKG=(
	[libsystemd]=libsystemd-dev [openssl]=libssl-dev [libcurl]=libcurl4-openssl-dev [libcbor]=libcbor-dev [libmicrohttpd]=libmicrohttpd-dev
	[json-c]=libjson-c-dev [libutf8proc]=libutf8proc-dev [yaml-0.1]=libyaml-dev [cmocka]=libcmocka-dev
	[hogweed]=nettle-dev [nettle]=nettle-dev [gmp]=libgmp-dev
)
# command -> Debian package
declare -A TOOL=(
	[cc]=gcc [pkg-config]=pkg-config [ar]=binutils [systemd-socket-activate]=systemd [jq]=jq
	[setsid]=util-linux [ss]=iproute2 [timeout]=coreutils
	[cpio]=cpio [openssl]=openssl [gzip]=gzip [unshare]=util-linux [mountpoint]=util-linux [ps]=procps [xxd]=xxd
	[systemd-analyze]=systemd [man]=man-db [python3]=python3 [curl]=curl
)
# file -> Debian package (things without a command or module)
declare -A FILE=()

case "${1:-}" in
fuzz)
	TOOL=([clang]=clang)
	FILE=([/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a]=libclang-rt-14-dev)
	PKG=()
	;;
oracle)
	TOOL=([python3]=python3 [node]=nodejs [npm]=npm)
	FILE=([/usr/lib/python3/dist-packages/torch/__init__.py]=python3-torch
		[/usr/lib/python3/dist-packages/numpy/__init__.py]=python3-numpy
		[/usr/lib/python3/dist-packages/onnx/__init__.py]=python3-onnx)
	PKG=()
	;;
vm)
	TOOL=([qemu-system-x86_64]=qemu-system-x86 [dpkg-deb]=dpkg [apt-get]=apt [cpio]=cpio)
	PKG=()
	;;
esac

missing=()
for m in "${!PKG[@]}"; do
	pkg-config --exists "$m" 2>/dev/null || missing+=("${PKG[$m]}")
done
for t in "${!TOOL[@]}"; do
	command -v "$t" >/dev/null 2>&1 || missing+=("${TOOL[$t]}")
done
for f in "${!FILE[@]}"; do
	compgen -G "${f%%/14.0.6/*}/*/lib/linux/$(basename "$f")" >/dev/null || [[ -e $f ]] || missing+=("${FILE[$f]}")
done
# pkg-config itself is needed to answer the module questions above.
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)

((${#missing[@]} == 0)) && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if ((EUID != 0)); then
	echo "bootstrap: missing Debian packages: ${missing[*]}" >&2
	echo "bootstrap: run as root:  apt-get update && $cmd" >&2
	exit 1
fi
echo "bootstrap: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
