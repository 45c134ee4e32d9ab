#!/usr/bin/env bash
# Successive halving against grid search, through `rzoo tune`, on ml-latest-small (bundled):
# BPR (halving over train.epochs, pausing and resuming trials) and iALS (halving over its
# alternations, search.resource model.epochs). Both search the same 27-point grid
# (bench/tune/halving-*.yaml); prints each method's best validation value and the epochs it
# spent (trained epochs, or alternations for iALS), and halving's share of grid's epochs.
# Goal (issue 21): halving within 1% of grid's best validation value in <= 40% of its epochs.
#
#   bash bench/tune_halving.sh [OUT]      (default build/tune-halving; studies are resumable)
# Environment: RZOO (build/rzoo), THREADS (1), JOBS (1), MODELS ("bpr ials").
# Columns: the best validation value, the epochs spent (all trials), the trials' training seconds
# (as recorded in study.json, so a study continued from an earlier run counts the same).
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
root=$(cd "$(dirname "$0")/.." && pwd)
rzoo=${RZOO:-$root/build/rzoo}
out=${1:-$root/build/tune-halving}
threads=${THREADS:-1}
jobs=${JOBS:-1}
mkdir -p "$out"
printf '%-6s %-8s %10s %8s %8s %s\n' model method best epochs "train s" "best setting"
for m in ${MODELS:-bpr ials}; do
  for method in grid halving; do
    study=$out/$m-$method
    "$rzoo" tune "$root/bench/tune/halving-$m.yaml" --quiet --out "$study" --set search.method=$method \
      --set threads="$threads" --set search.jobs="$jobs" --set output_dir="$out"
    /usr/bin/python3 - "$study/study.json" "$m" "$method" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
b = st["best"]
setting = next(t["setting"] for t in st["trials"] if t["trial"] == b["trial"])
secs = sum(t["seconds"] or 0 for t in st["trials"])
failed = [t["trial"] for t in st["trials"] if t["status"] == "failed"]
if failed:  # e.g. the rzoo program was rebuilt under a running study: rerun to retry them
    sys.exit(f"{sys.argv[1]}: trials {failed} failed (see logs/); run the benchmark again to retry them")
print(f'{sys.argv[2]:<6} {sys.argv[3]:<8} {b["value"]:10.5f} {st["total_epochs"]:8d} {secs:8.1f} '
      + " ".join(f"{k}={v}" for k, v in setting.items()))
PY
  done
  /usr/bin/python3 - "$out/$m-grid/study.json" "$out/$m-halving/study.json" "$m" <<'PY'
import json, sys
g, h = (json.load(open(p)) for p in sys.argv[1:3])
gv, hv = g["best"]["value"], h["best"]["value"]
share = h["total_epochs"] / g["total_epochs"]
gap = (gv - hv) / gv if g["higher_is_better"] else (hv - gv) / gv
ok = gap <= 0.01 and share <= 0.40
print(f'{sys.argv[3]:<6} halving/grid: best {hv:.5f} vs {gv:.5f} ({-100 * gap:+.2f}%), epochs {h["total_epochs"]} / '
      f'{g["total_epochs"]} = {100 * share:.0f}%  {"meets" if ok else "MISSES"} the goal (within 1%, <= 40%)')
PY
done
}; exit
