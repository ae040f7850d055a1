#!/usr/bin/env bash
# fetch-kernel.sh DIR: Debian's current x86_64 kernel (the package linux-image-amd64 depends on) as DIR/vmlinuz
# with its version in DIR/kernel-version; prints the vmlinuz path. Fetched once: later runs reuse DIR, which
# is what keeps image builds reproducible (pin a kernel with KERNEL=path instead to be independent of Debian).
set -euo pipefail
dir=$1
mkdir -p "$dir"
if [[ ! -s $dir/vmlinuz || ! -s $dir/kernel-version ]]; then
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[[ -n $pkg ]] || { echo "fetch-kernel: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
	(cd "$dir" && rm -f ./*.deb && apt-get download -q "$pkg" >/dev/null 2>&1) ||
		{ echo "fetch-kernel: apt-get download $pkg failed" >&2; exit 1; }
	deb=$(ls "$dir"/*.deb)
	dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards './boot/vmlinuz-*' >"$dir/vmlinuz.tmp"
	[[ -s $dir/vmlinuz.tmp ]] || { echo "fetch-kernel: no vmlinuz in $deb" >&2; exit 1; }
	sha256sum "$deb" | awk '{print $1}' >"$dir/deb-sha256"
	mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
	echo "${pkg#linux-image-}" >"$dir/kernel-version"
	rm -f "$deb"
fi
echo "$dir/vmlinuz"
