#!/usr/bin/env bash
# kmods.sh MODDIR OUTDIR MODULE...: copies MODULEs and everything they depend on (the "depends=" of each .ko's
# .modinfo section) from the tree MODDIR into OUTDIR as NNN-name.ko, numbered so that sorting the names gives a
# valid load order (dependencies first). eml-init loads /lib/modules/eml/*.ko in that order.
set -euo pipefail
moddir=$1 out=$2
shift 2
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
declare -A file=() seen=()
order=()
while IFS= read -r f; do
	n=$(basename "$f" .ko)
	file[${n//-/_}]=$f
done < <(find "$moddir" -name '*.ko')

visit() {
	local m=${1//-/_} deps d
	[[ -n ${seen[$m]:-} ]] && return 0
	seen[$m]=1
	[[ -n ${file[$m]:-} ]] || { echo "kmods: no module $m under $moddir" >&2; exit 1; }
	objcopy --dump-section .modinfo="$tmp" "${file[$m]}" /dev/null 2>/dev/null ||
		{ echo "kmods: no .modinfo in ${file[$m]}" >&2; exit 1; }
	deps=$(tr '\0' '\n' <"$tmp" | sed -n 's/^depends=//p')
	local -a ds=()
	IFS=, read -ra ds <<<"$deps"
	for d in "${ds[@]}"; do [[ -n $d ]] && visit "$d"; done
	order+=("$m")
}
for m in "$@"; do visit "$m"; done
mkdir -p "$out"
i=100
for m in "${order[@]}"; do
	install -m 0644 "${file[$m]}" "$out/$i-$m.ko"
	i=$((i + 1))
done
