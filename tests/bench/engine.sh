# The encoder at the shapes, 2 threads, on the MiniLM-shaped random model (eml bench lines).
set -euo pipefail
eml=${EML_BUILD:?}/bin/eml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$EML_SRCDIR"/tests/vectors/models/all-MiniLM-L6-v2/{config.json,vocab.txt} "$tmp/"
"$eml" model random --config "$tmp/config.json" --seed 1 -o "$tmp/model.safetensors"
for s in ${SHAPES:-1x16 1x32 1x128 8x32 32x32}; do
	"$eml" bench --model "$tmp" --shape "$s" --threads "${THREADS:-2}" 2>/dev/null
done
