# Peak RSS of `eml embed` on the MiniLM-shaped random model against the budget 1.3 x weight bytes + 30 MB.
set -euo pipefail
eml=${EML_BUILD:?}/bin/eml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$EML_SRCDIR"/tests/vectors/models/all-MiniLM-L6-v2/{config.json,vocab.txt} "$tmp/"
"$eml" model random --config "$tmp/config.json" --seed 1 -o "$tmp/model.safetensors"
weights=$(stat -c %s "$tmp/model.safetensors")
mapfile -t texts < <(jq -r '.cases[].text' "$EML_SRCDIR/tests/oracle/fixture.json")
kb=$( { /usr/bin/time -f %M "$eml" embed --model "$tmp" --threads 2 "${texts[@]}" >/dev/null; } 2>&1 | tail -1)
budget=$((weights * 13 / 10 / 1024 + 30 * 1024))
echo "embed-rss peak_rss_mb=$((kb / 1024)) budget_mb=$((budget / 1024)) weights_mb=$((weights / 1048576))"
((kb <= budget))
