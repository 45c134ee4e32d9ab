#!/usr/bin/env bash
# Runs `rzoo data stats` on every dataset in ../shared/data and compares the counts with the
# published ones (../shared/data/README.md). Skips cleanly when the folder is absent.
# Usage: bash bench/shared_data_stats.sh   (needs the build: bash scripts/build.sh)
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
cd "$(dirname "$0")/.."
data=${RZOO_SHARED_DATA:-../shared/data}
if [ ! -d "$data" ]; then
  echo "skipped: no data ($data)"
  exit 0
fi
out=build/shared-data-stats
mkdir -p "$out"
# config | expected "key=value ..." (published counts; `given_split.train` counts the given
# training rows before validation is carved, `negatives.per_user.min/max` the given negatives)
checks=(
  "ml-latest-small|users=610 interactions=100836"
  "ml-100k|users=943 items=1682 interactions=100000"
  "ncf-ml-1m|users=6040 items=3706 interactions=1000209 given_split.train=994169 given_split.test=6040 negatives.users=6040 negatives.per_user.min=99 negatives.per_user.max=99"
  "deepcf-lastfm|users=1741 given_split.train=67408 given_split.test=1741 negatives.users=1741 negatives.per_user.min=99 negatives.per_user.max=99"
  "s3rec-beauty|users=22363 items=12101 interactions=198502"
  "s3rec-lastfm|users=1090 items=3646 interactions=52551 negatives.users=1090 negatives.per_user.min=99"
  "ml-100k-u1|users=943 items=1682 interactions=100000 given_split.train=80000 given_split.test=20000"
)
fail=0
for c in "${checks[@]}"; do
  name=${c%%|*}
  expect=${c#*|}
  cfg=configs/datasets/$name.yaml
  if ! ./build/rzoo data stats "$cfg" --json --set dataset.cache.enabled=false >"$out/$name.json" 2>"$out/$name.err"; then
    echo "FAIL $name: $(cat "$out/$name.err")"
    fail=1
    continue
  fi
  ./build/rzoo data stats "$cfg" --set dataset.cache.enabled=false >"$out/$name.txt" 2>&1 || true
  result=$(/usr/bin/python3 - "$out/$name.json" $expect <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
bad = []
for kv in sys.argv[2:]:
    key, want = kv.split("=")
    v = s
    for part in key.split("."):
        v = v[part]
    if str(v) != want:
        bad.append(f"{key} = {v}, published {want}")
print("; ".join(bad) if bad else "ok")
PY
)
  summary=$(/usr/bin/python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(f\"{s['users']} users, {s['items']} items, {s['interactions']} interactions, density {s['density']:.5f}, Gini {s['popularity_gini']:.3f}\")" "$out/$name.json")
  if [ "$result" = ok ]; then echo "ok   $name: $summary"; else echo "FAIL $name: $result"; fail=1; fi
done
echo "(full reports in $out/)"
exit $fail
}; exit
