#!/usr/bin/env bash
# closure.sh ROOT BINARY...: copies into the tree ROOT the exact shared-library closure of each dynamically linked
# BINARY, taken from the build host: its program interpreter (PT_INTERP, /lib64/ld-linux-x86-64.so.2 on x86_64)
# at that path, and every DT_NEEDED library resolved recursively the way the dynamic loader resolves it in an
# image that has no /etc/ld.so.cache: the first file of that name, of the same ELF class and machine, in glibc's
# built-in directories (/lib/TRIPLET, /usr/lib/TRIPLET, /lib, /usr/lib), copied to the same path under ROOT.
# Statically linked binaries need nothing. Objects with RPATH/RUNPATH are refused (their search order is not this
# one). Prints one provenance line per copied file, sorted by path: "lib PATH SHA256 PACKAGE VERSION", the Debian
# package that owns the file on the build host (dpkg) and its version, so that PCR2 (and PCR0) can be explained
# by package versions; "unpackaged -" for a file no package owns.
# Deterministic: file contents and paths only (build.sh archives ROOT with `eml eif ramdisk`).
set -euo pipefail
root=${1:?usage: closure.sh ROOT BINARY...}
shift
declare -A done=() pkg_of=() ver_of=()
copied=()

die() { echo "closure: $*" >&2; exit 1; }
interp_of() { readelf -lW "$1" 2>/dev/null | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]$/\1/p'; }
elf_kind() { readelf -hW "$1" 2>/dev/null | awk -F: '/^ *(Class|Machine):/ {gsub(/^ +/, "", $2); printf "%s/", $2}'; }

# The Debian package owning PATH, trying the path as found, its target and the other side of the /usr merge.
owner() {
	local p=$1 c real
	real=$(readlink -f "$p")
	for c in "$p" "$real" "${p#/usr}" "/usr$p" "${real#/usr}" "/usr$real"; do
		dpkg-query -S "$c" 2>/dev/null | awk -F': ' 'NR == 1 {print $1}' | grep . && return 0
	done
	return 1
}

copy() { # HOST_PATH MODE
	local p=$1
	[[ -n ${done[$p]:-} ]] && return 0
	done[$p]=1
	install -D -m "$2" "$(readlink -f "$p")" "$root$p"
	copied+=("$p")
}

resolve() { # OBJECT KIND DIRS...
	local obj=$1 kind=$2 n d f found dyn
	shift 2
	dyn=$(readelf -dW "$obj")
	grep -qE '\((RPATH|RUNPATH)\)' <<<"$dyn" && die "$obj has an RPATH/RUNPATH"
	while IFS= read -r n; do
		[[ $n == */* ]] && die "$obj needs a library by path ($n)"
		# libc names the loader too; the loader already is in memory under that soname and never opens a copy
		[[ $n == "$interp_name" ]] && continue
		found=
		for d in "$@"; do
			f=$d/$n
			[[ -f $f && $(elf_kind "$f") == "$kind" ]] || continue
			found=$f
			break
		done
		[[ -n $found ]] || die "$obj needs $n, found in none of $*"
		if [[ -z ${done[$found]:-} ]]; then
			copy "$found" 0644
			resolve "$found" "$kind" "$@"
		fi
	done < <(sed -n 's/.*(NEEDED) *Shared library: \[\(.*\)\]$/\1/p' <<<"$dyn")
}

for bin in "$@"; do
	[[ -f $bin ]] || die "no file $bin"
	interp=$(interp_of "$bin")
	[[ -n $interp ]] || continue # static
	[[ -f $interp ]] || die "$bin wants the interpreter $interp, which this host lacks"
	kind=$(elf_kind "$bin")
	# The multiarch triplet is the directory the interpreter really lives in (x86_64-linux-gnu).
	triplet=$(basename "$(dirname "$(readlink -f "$interp")")")
	interp_name=$(basename "$interp")
	copy "$interp" 0755
	resolve "$bin" "$kind" "/lib/$triplet" "/usr/lib/$triplet" /lib /usr/lib
done
((${#copied[@]} > 0)) || exit 0
# Provenance, with one dpkg-query for all paths (each call reads the whole database): "PKG[, PKG]: PATH" lines;
# the few paths dpkg knows under another spelling (usrmerge) one by one.
while IFS= read -r line; do
	[[ $line == *": /"* ]] || continue
	pkg_of[/${line#*: /}]=${line%%[,:] *}
done < <(dpkg-query -S "${copied[@]}" 2>/dev/null || true)
for p in "${copied[@]}"; do
	[[ -n ${pkg_of[$p]:-} ]] || pkg_of[$p]=$(owner "$p") || pkg_of[$p]=unpackaged
done
while read -r pkg ver; do ver_of[$pkg]=$ver; done < <(printf '%s\n' "${pkg_of[@]}" | sort -u | grep -vx unpackaged |
	xargs -r dpkg-query -W -f='${binary:Package} ${Version}\n')
for p in "${copied[@]}"; do
	pkg=${pkg_of[$p]}
	printf 'lib %s %s %s %s\n' "$p" "$(sha256sum "$root$p" | awk '{print $1}')" "$pkg" "${ver_of[$pkg]:--}"
done | LC_ALL=C sort -k2,2
