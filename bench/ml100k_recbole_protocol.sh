#!/usr/bin/env bash
# Pop and BPR-MF on MovieLens-100K under RecBole's default protocol (see
# configs/experiments/ml100k-recbole.yaml), with wall time, seconds per epoch and peak memory, for
# comparison with RecBole's figures measured on this machine kind in ../shared/peers/README.md.
# Usage: bash bench/ml100k_recbole_protocol.sh [extra rzoo args, e.g. --set threads=1]
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
cd "$(dirname "$0")/.."
data=${RZOO_DATA:-../shared/data}
if [ ! -f "$data/ml-100k/u.data" ]; then
  echo "skipped: no data ($data/ml-100k/u.data)"
  exit 0
fi
[ -x build/rzoo ] || bash scripts/build.sh
out=$(mktemp -d)
/usr/bin/time -v ./build/rzoo compare configs/experiments/ml100k-recbole.yaml \
  --set dataset.path="$data/ml-100k" --set output_dir="$out" "$@" >"$out/stdout.txt" 2>"$out/time.txt"
grep -E "^(dataset|split|early stop|best epoch)" "$out/stdout.txt"
sed -n '/^comparison/,$p' "$out/stdout.txt"
# Median seconds per training epoch of BPR-MF, from its train.log.
log=$(ls "$out"/*/bpr/train.log)
python3 - "$log" <<'PY'
import re, statistics, sys
secs = [float(m.group(1)) for m in re.finditer(r"^epoch .*?\| ([0-9.]+) s \|", open(sys.argv[1]).read(), re.M)]
print(f"bpr: {len(secs)} epochs, median {statistics.median(secs):.3f} s/epoch")
PY
grep -E "Elapsed|Maximum resident" "$out/time.txt"
echo "run folders: $out"
}; exit
