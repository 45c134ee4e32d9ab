#!/usr/bin/env bash
# The ML-100K CTR benchmark of issue 25: rzoo's LR (fm, pairwise false), FM, Wide & Deep, DeepFM
# and DCN-v2 beside RecBole 1.2.1's LR, FM, WideDeep, DeepFM, DCNV2 on the same atomic files
# (bench/context/prep_ctr.py: every rated pair, label = rating >= 4, a random 80/10/10 split of
# the rows; user fields age (float), gender, occupation, zip_code; item fields release_year, genre).
# Matched settings: embedding 16, Adam lr 1e-3, batch 2048, no weight decay, at most 50 epochs with
# early stopping on validation AUC (patience 5; the best-validation model is tested), MLP [64, 64],
# dropout as RecBole's defaults (WideDeep 0.1, DeepFM 0.2, DCNV2 0.2), DCN-v2 with 3 full-rank
# cross layers, stacked; RecBole's DCNV2 reg_weight set to 0 (rzoo has no such penalty). Runs are
# interleaved (for each seed, each model: rzoo, then RecBole) with the same thread count.
#
#   bash bench/context/run.sh                 # SEEDS="2020 2021 2022" THREADS=2 by default
# Needs: build/rzoo; the peers venv (bash bench/peers/setup_venv.sh); ../shared/data/ml-100k.
# Writes build/ctr-bench/{rzoo,recbole}.jsonl and prints the table (medians over seeds).
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data/ml-100k}
OUT=${OUT:-build/ctr-bench}
SEEDS=${SEEDS:-"2020 2021 2022"}
THREADS=${THREADS:-2}
MODELS=${MODELS:-"LR FM WideDeep DeepFM DCNV2"}
PY=${PY:-build/peers-venv/bin/python}
[ -x "$PY" ] || { echo "no peers venv at $PY (bash bench/peers/setup_venv.sh)"; exit 1; }
mkdir -p "$OUT"
/usr/bin/python3 bench/context/prep_ctr.py --data "$DATA" --out "$OUT/ml100k-ctr" --seed 2020
# A copy of the binary, so that a rebuild during the run changes nothing.
cp build/rzoo "$OUT/rzoo.bin"
: > "$OUT/rzoo.jsonl.tmp"
: > "$OUT/recbole.jsonl.tmp"
for seed in $SEEDS; do
  for m in $MODELS; do
    case $m in
      LR) sets=(--set model.name=fm --set model.pairwise=false) ;;
      FM) sets=(--set model.name=fm) ;;
      WideDeep) sets=(--set model.name=widedeep --set model.dropout=0.1) ;;
      DeepFM) sets=(--set model.name=deepfm --set model.dropout=0.2) ;;
      DCNV2) sets=(--set model.name=dcnv2 --set model.dropout=0.2 --set model.cross_layers=3) ;;
    esac
    run="ctr-$m-s$seed"
    "$OUT/rzoo.bin" train configs/experiments/ctr-ml100k.yaml --set dataset.path="$OUT/ml100k-ctr" \
      --set seed="$seed" --set threads="$THREADS" --set output_dir="$OUT/runs" --set run_name="$run" \
      --set train.progress=false "${sets[@]}" > "$OUT/$run.log" 2>&1 || { echo "rzoo $m failed: $OUT/$run.log"; exit 1; }
    /usr/bin/python3 - "$OUT/runs/$run" "$m" "$seed" >> "$OUT/rzoo.jsonl.tmp" <<'PY'
import csv, json, statistics, sys
d, m, seed = sys.argv[1:4]
j = json.load(open(d + "/metrics.json"))
h = list(csv.DictReader(open(d + "/history.csv")))
sec = [float(r["seconds"]) for r in h]
print(json.dumps({"system": "rzoo", "model": m, "seed": int(seed), "best_valid_auc": j["valid"]["metrics"]["auc"],
                  "test_auc": j["test"]["metrics"]["auc"], "test_logloss": j["test"]["metrics"]["logloss"],
                  "epochs_trained": j["epochs_run"], "best_epoch": j["best_epoch"],
                  "median_epoch_s": statistics.median(sec), "train_s": j["train_seconds"]}))
PY
    tail -1 "$OUT/rzoo.jsonl.tmp"
    extra=()
    [ "$m" = DCNV2 ] && extra=(--set reg_weight=0)
    nice -n 0 "$PY" bench/context/recbole_ctr.py --data "$OUT/ml100k-ctr" --models "$m" --seeds "$seed" --epochs 50 \
      --threads "$THREADS" --out "$OUT/recbole-$m-$seed.jsonl" "${extra[@]}" > /dev/null 2> "$OUT/recbole-$m-$seed.log" \
      || { echo "RecBole $m failed: $OUT/recbole-$m-$seed.log"; exit 1; }
    cat "$OUT/recbole-$m-$seed.jsonl" >> "$OUT/recbole.jsonl.tmp"
    tail -1 "$OUT/recbole.jsonl.tmp" | cut -c1-300
  done
done
mv "$OUT/rzoo.jsonl.tmp" "$OUT/rzoo.jsonl"
mv "$OUT/recbole.jsonl.tmp" "$OUT/recbole.jsonl"
/usr/bin/python3 - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
rows = [json.loads(l) for f in ("rzoo", "recbole") for l in open(f"{out}/{f}.jsonl")]
models = list(dict.fromkeys(r["model"] for r in rows))
med = lambda xs: statistics.median(xs) if xs else float("nan")
print(f"{'model':9} {'rzoo AUC':>9} {'RecBole':>8} {'dAUC':>7} {'rzoo LL':>8} {'RecBole':>8} {'rzoo s/ep':>9} {'RecBole':>8} {'speed-up':>8}  seeds")
for m in models:
    a = [r for r in rows if r["model"] == m and r["system"] == "rzoo"]
    b = [r for r in rows if r["model"] == m and r["system"] == "recbole"]
    ra, ba = med([r["test_auc"] for r in a]), med([r["test_auc"] for r in b])
    rl, bl = med([r["test_logloss"] for r in a]), med([r["test_logloss"] for r in b])
    rs, bs = med([r["median_epoch_s"] for r in a]), med([r["median_epoch_s"] for r in b])
    print(f"{m:9} {ra:9.4f} {ba:8.4f} {ra - ba:+7.4f} {rl:8.4f} {bl:8.4f} {rs:9.3f} {bs:8.3f} {bs / rs:7.1f}x  {len(a)}/{len(b)}")
PY
}; exit
