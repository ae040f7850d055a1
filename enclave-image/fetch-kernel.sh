#!/usr/bin/env bash
# fetch-kernel.sh DIR: Debian's current x86_64 kernel (the package linux-image-amd64 depends on) as DIR/vmlinuz
# with its version in DIR/kernel-version, and the module subtrees the image may need (virtio, vsock, virtio-net)
# under DIR/modules; prints the vmlinuz path. Fetched once: later runs reuse DIR, which is what keeps image
# builds reproducible (pin a kernel with KERNEL=path instead to be independent of Debian's updates). DIR/source
# names the .deb and its SHA-256.
set -euo pipefail
dir=$1
mkdir -p "$dir"
if [[ ! -s $dir/vmlinuz || ! -s $dir/kernel-version || ! -d $dir/modules ]]; then
	# KERNEL_PACKAGE pins one (e.g. linux-image-6.1.0-56-amd64 or linux-image-6.1.0-56-amd64=6.1.192-2).
	pkg=${KERNEL_PACKAGE:-$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ {print $2; exit}')}
	[[ -n $pkg ]] || { echo "fetch-kernel: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
	rm -rf "$dir/dl" "$dir/modules" "$dir/modules.tmp"
	mkdir -p "$dir/dl" "$dir/modules.tmp"
	(cd "$dir/dl" && apt-get download -q "$pkg" >/dev/null 2>&1) ||
		{ echo "fetch-kernel: apt-get download $pkg failed" >&2; exit 1; }
	deb=$(ls "$dir"/dl/*.deb)
	dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards './boot/vmlinuz-*' >"$dir/vmlinuz.tmp"
	[[ -s $dir/vmlinuz.tmp ]] || { echo "fetch-kernel: no vmlinuz in $deb" >&2; exit 1; }
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir/modules.tmp" --strip-components=5 --wildcards \
		'./lib/modules/*/kernel/drivers/virtio/*.ko' './lib/modules/*/kernel/net/vmw_vsock/*.ko' \
		'./lib/modules/*/kernel/drivers/net/virtio_net.ko' './lib/modules/*/kernel/drivers/net/net_failover.ko' \
		'./lib/modules/*/kernel/net/core/failover.ko'
	printf '%s %s\n' "$(basename "$deb")" "$(sha256sum "$deb" | awk '{print $1}')" >"$dir/source"
	mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
	mv "$dir/modules.tmp" "$dir/modules"
	pkg=${pkg%%=*}
	echo "${pkg#linux-image-}" >"$dir/kernel-version"
	rm -rf "$dir/dl"
fi
echo "$dir/vmlinuz"
