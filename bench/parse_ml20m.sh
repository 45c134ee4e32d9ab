#!/usr/bin/env bash
# Parsing benchmark: a generated ratings.csv shaped like MovieLens 20M's (20,000,263 lines,
# 138,493 users, 26,744 movies) is parsed and id-mapped by the movielens reader, three times
# without the cache, then once to write the cache and three times from it.
# Usage: bash bench/parse_ml20m.sh [LINES]   (needs the build: bash scripts/build.sh)
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
cd "$(dirname "$0")/.."
lines=${1:-20000263}
data=build/bench-data/ml20m-like
cache=build/bench-data/cache
cmake --build build --target rzoo_gen_ratings >/dev/null
mkdir -p "$data"
if [ ! -f "$data/ratings.csv" ] || [ "$(cat "$data/.lines" 2>/dev/null)" != "$lines" ]; then
  echo "generating $data/ratings.csv ($lines lines)"
  ./build/rzoo_gen_ratings "$data/ratings.csv" "$lines"
  echo "$lines" >"$data/.lines"
fi
ls -l "$data/ratings.csv"
cat "$data/ratings.csv" >/dev/null  # page cache warm: we measure parsing, not the disk
common=(data stats configs/datasets/ml-latest-small.yaml --no-split --set dataset.name=ml20m-like
        --set "dataset.path=$data" --set "dataset.cache.dir=$cache" --set dataset.cache.min_mb=0 --set threads=2)
run() {  # prints the load lines of the log and the process' wall time and peak memory
  /usr/bin/time -f "  process: %e s wall, %M KB peak RSS" ./build/rzoo "${common[@]}" "$@" 2>&1 |
    grep -E "^dataset|parsed|peak memory|process:" | sed 's/^dataset [^:]*: /  /'
}
echo "== parse (cache off), 3 runs"
for i in 1 2 3; do run --set dataset.cache.enabled=false; done
rm -rf "$cache"
echo "== first run with the cache (parses and writes it)"
run
echo "== cached reload (stat fingerprint), 3 runs"
for i in 1 2 3; do run; done
echo "== cached reload with dataset.cache.verify=checksum (re-reads the file to compare content)"
run --set dataset.cache.verify=checksum
}; exit
