#!/usr/bin/env bash
# image-repro.sh IMAGE_DIR: rebuilds the enclave image from the same inputs into a fresh directory (another
# path, another umask, the static binaries copied with new timestamps) and requires byte-identical ramdisks, EIF
# and pcrs.json; `eml eif pcr` on the rebuilt EIF must print the same PCRs. The acceptance check "two
# `make enclave-image` runs give the same EIF and PCRs", with the real kernel.
set -euo pipefail
img=$(cd "${1:?usage: image-repro.sh IMAGE_DIR}" && pwd)
build=$(dirname "$img")
src=$(cd "$(dirname "$0")/../.." && pwd)
eml=${EML:-$build/release/bin/eml}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tally() { [[ -n ${EML_TALLY:-} ]] && echo "image-repro $1" >>"$EML_TALLY"; return 0; }
fail() { tally "0 1"; echo "image-repro: $*" >&2; exit 1; }

mkdir -p "$work/static"
cp "$build/release/static/"* "$work/static/"
# eml-inferenced is dynamic (build/release/bin); build.sh takes it from STATIC_DIR when INFERENCED is not given.
cp "$build/release/bin/eml-inferenced" "$work/static/"
touch -d '2020-02-02' "$work/static/"*
# The same kernel the first build fetched (build/kernel), named explicitly so nothing is fetched again.
kdir=$build/kernel
(umask 077; EML=$eml STATIC_DIR=$work/static KERNEL=$kdir/vmlinuz MODULES_DIR=$kdir/modules \
	KERNEL_VERSION=$(cat "$kdir/kernel-version") "$src/enclave-image/build.sh" "$work/image" >/dev/null) ||
	fail "rebuild failed"
for f in bootstrap.cpio app.cpio enclave.eif pcrs.json libs.txt; do
	cmp -s "$img/$f" "$work/image/$f" || fail "$f differs between two builds"
done
"$eml" eif pcr "$work/image/enclave.eif" | cmp -s - "$img/pcrs.json" || fail "eml eif pcr disagrees with pcrs.json"
tally "1 0"
echo "image-repro: ok: two builds, identical $(stat -c %s "$img/enclave.eif")-byte EIF, PCR0 $(jq -r .Measurements.PCR0 "$img/pcrs.json" | cut -c1-16)..."
