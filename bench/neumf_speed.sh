#!/usr/bin/env bash
# NeuMF training speed on the NCF ML-1M train (994,169 positives, 4 sampled negatives each:
# 4.97 M rows per epoch), batch 256 and 2048, 64 predictive factors (GMF 64, MLP 512-256-128-64),
# lazy_adam (Adam updating the embedding rows a batch uses; OPTIMIZERS="adam lazy_adam" to also
# time dense Adam, which updates every row of every table at every step), all cores (THREADS="1 2"
# to compare thread counts, BATCHES=256 for one batch size). Prints seconds per epoch, samples/s
# and the share of the epoch
# spent building batches (shuffling, sampling negatives, filling tensors), from one epoch of
# `rzoo train` each (validation is not part of the epoch time). The reference is the same model in
# plain PyTorch (bench/neumf_torch_ref.py, Debian's /usr/bin/python3 with torch 1.13.1 = the same
# LibTorch) trained on pre-generated batches: the model's arithmetic without any data pipeline.
# Usage: bash bench/neumf_speed.sh   (needs the build and ../shared/data/ncf-ml-1m)
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
cd "$(dirname "$0")/.."
data=${RZOO_SHARED_DATA:-../shared/data}
out=build/neumf-speed
rm -rf "$out"
for threads in ${THREADS:-$(nproc)}; do
for optimizer in ${OPTIMIZERS:-lazy_adam}; do
for bs in ${BATCHES:-256 2048}; do
  run=$optimizer-b$bs-t$threads
  ./build/rzoo train configs/experiments/ncf-ml-1m.yaml --quiet --set "dataset.path=$data/ncf-ml-1m/ml-1m" \
    --set model=neumf --set model.embedding_size=64 --set "model.layers=[512,256,128,64]" \
    --set train.epochs=1 --set train.batch_size=$bs --set train.optimizer=$optimizer --set train.progress=false \
    --set threads=$threads --set output_dir=$out --set run_name=$run >/dev/null
  line=$(grep -E "^epoch +1/1" $out/$run/train.log)
  secs=$(echo "$line" | sed -E 's/.*\| ([0-9.]+) s \(([0-9.]+)% batching\) \| ([0-9,]+) samples\/s.*/\1/')
  share=$(echo "$line" | sed -E 's/.*\| ([0-9.]+) s \(([0-9.]+)% batching\) \| ([0-9,]+) samples\/s.*/\2/')
  sps=$(echo "$line" | sed -E 's/.*\| ([0-9.]+) s \(([0-9.]+)% batching\) \| ([0-9,]+) samples\/s.*/\3/' | tr -d ,)
  steps=$(( 4000000 / bs / 4 ))
  case $optimizer in
    lazy_adam) ref_opt=sparse; ref_name="SparseAdam + Adam" ;;
    sgd) ref_opt=sgd; ref_name=SGD ;;
    *) ref_opt=dense; ref_name=Adam ;;
  esac
  ref=$(/usr/bin/python3 bench/neumf_torch_ref.py 6040 3706 64 512,256,128,64 $bs $steps $threads $ref_opt 2>/dev/null || echo "")
  if [ -n "$ref" ]; then
    ratio=$(python3 -c "print(f'{$sps / $ref:.2f}')")
    echo "neumf $optimizer batch $bs, $threads threads: $secs s/epoch, $sps samples/s, batching $share% of the epoch; plain PyTorch ($ref_name), same model, no data pipeline: $ref samples/s (rzoo / that = $ratio)"
  else
    echo "neumf $optimizer batch $bs, $threads threads: $secs s/epoch, $sps samples/s, batching $share% of the epoch (no /usr/bin/python3 torch for the reference)"
  fi
done
done
done
}; exit
