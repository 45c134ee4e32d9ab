#!/usr/bin/env bash
# Reproduction runs of the classic models (issue "Classic algorithms"), from ../shared/data.
# Every hyperparameter is chosen on the validation split (`rzoo tune` through bench/tune_lib.sh: a
# small grid, the best validation value wins, test is only read for the chosen setting); models
# with random training are then re-run with seeds 1, 2, 3 and their test metrics averaged.
# Usage: bash bench/classic_repro.sh [ncf|ml100k|mlsmall|speed]...   (default: all; needs the build)
#        ML100K_MODELS="biasedmf itemknn" bash bench/classic_repro.sh ml100k   (a subset, in that order)
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
cd "$(dirname "$0")/.."
data=${RZOO_SHARED_DATA:-../shared/data}
out=build/classic-tune
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(ncf ml100k mlsmall speed)
source bench/tune_lib.sh

for part in "${parts[@]}"; do
case $part in
ncf)
  if [ ! -f "$data/ncf-ml-1m/ml-1m.test.negative" ]; then echo "ncf: skipped: no $data/ncf-ml-1m"; continue; fi
  echo "== NCF ML-1M split, 99 given negatives per test user (HR@10 / NDCG@10 on test; chosen on valid NDCG@10)"
  c=(configs/datasets/ncf-ml-1m.yaml --set "dataset.path=$data/ncf-ml-1m/ml-1m" --set eval.protocol=given
     --set "eval.metrics=[hr,ndcg]" --set "eval.ks=[10]" --set train.early_stop.metric=ndcg@10 --metric ndcg@10 --report hr@10,ndcg@10)
  # Closed-form models are then refit on train + valid for the test figures (Dacrema et al.'s
  # protocol for these re-runs): the setting is chosen on valid, the final model sees all training data.
  r=(--refit dataset.split.valid=none)
  tune "${c[@]}" "${r[@]}" --out $out/ncf/pop --set model=pop --label pop
  # ItemKNN as Dacrema et al. re-ran it (cosine or jaccard on binary data, no idf; rzoo's own
  # default is the asymmetric cosine with idf since 2026-12-05).
  tune "${c[@]}" "${r[@]}" --out $out/ncf/itemknn --set model=itemknn --set model.idf=false --label itemknn \
    --grid "model.neighbors=[20,50,100,200]" --grid "model.shrinkage=[0,20,100]" --grid "model.similarity=[cosine,jaccard]"
  tune "${c[@]}" "${r[@]}" --out $out/ncf/userknn --set model=userknn --label userknn \
    --set model.shrinkage=0 --grid "model.neighbors=[50,100,200,400,800]" --grid "model.similarity=[jaccard,asymmetric_cosine]" \
    --grid "model.asymmetric_alpha=[0.1,0.3,0.5,0.7,0.9]" --grid "model.prune=[row,column]"
  # (asymmetric_cosine with alpha 0.5 is cosine; alpha does not change jaccard. A wider grid with
  # shrinkage [0, 10] and idf [false, true] never chose shrinkage or idf on valid.)
  tune "${c[@]}" "${r[@]}" --out $out/ncf/ease --set model=ease --label ease --grid "model.l2=[100,250,500,1000]"
  tune "${c[@]}" --out $out/ncf/ials --set model=ials --label ials --seeds 1,2,3 \
    --grid "model.unobserved_weight=[0.1,0.3,1.0]" --grid "model.l2=[0.001,0.003,0.01]"
  tune "${c[@]}" --out $out/ncf/bpr --set model=bpr --label bpr-mf --seeds 1,2,3 \
    --set train.early_stop.patience=5 --grid "train.weight_decay=[0,0.00001]" --grid "train.lr=[0.001,0.005]"
  ;;
ml100k)
  if [ ! -f "$data/ml-100k/u1.base" ]; then echo "ml100k: skipped: no $data/ml-100k"; continue; fi
  echo "== ML-100K rating prediction, RMSE (5-fold u1..u5; per fold, settings chosen on a validation 5% of u*.base,"
  echo "   then refit on all of u*.base)"
  for model in ${ML100K_MODELS:-biasedmf svdpp itemknn}; do
    case $model in
      biasedmf) grid=(--grid "model.factors=[50,100]" --grid "model.reg=[0.05,0.1]" --grid "model.epochs=[20,50]" --grid "model.lr_decay=[1.0,0.95]" --seeds 1,2,3) ;;
      svdpp) grid=(--grid "model.factors=[50,100]" --grid "model.reg=[0.05,0.1]" --grid "model.epochs=[20,40]" --grid "model.lr_decay=[1.0,0.95]" --seeds 1,2,3) ;;
      itemknn) grid=(--set model.mode=rating --set model.similarity=pearson_baseline --grid "model.neighbors=[20,40,80]" --grid "model.shrinkage=[50,100]") ;;
    esac
    for f in 1 2 3 4 5; do
      tune configs/datasets/ml-100k-u1.yaml --set "dataset.split.train_path=$data/ml-100k/u$f.base" \
        --set "dataset.split.test_path=$data/ml-100k/u$f.test" --set "dataset.path=$data/ml-100k/u$f.base" \
        --set "eval.metrics=[rmse,mae]" --set train.early_stop.metric=rmse --metric rmse --lower --report rmse,mae \
        --refit dataset.split.valid=none \
        --out $out/ml100k/$model/u$f --set model=$model --label "$model u$f" "${grid[@]}"
    done
  done
  ;;
mlsmall)
  echo "== ml-latest-small, full ranking, per-user random 80/10/10 (NDCG@10 on test)"
  m=(configs/experiments/classic-mlsmall.yaml --metric ndcg@10 --report ndcg@10,hr@10)
  tune "${m[@]}" --out $out/mlsmall/pop --set model=pop --label pop
  tune "${m[@]}" --out $out/mlsmall/content --set model=content --label content --grid "model.features=[[genres],[genres,tags],[genres,tags,title]]"
  tune "${m[@]}" --out $out/mlsmall/itemknn --set model=itemknn --set model.similarity=cosine --set model.idf=false --label itemknn --grid "model.neighbors=[20,50,100]" --grid "model.shrinkage=[0,20]"
  # The hybrid blends the two parts as chosen above (content: all features; itemknn: cosine, 100, 0).
  tune "${m[@]}" --out $out/mlsmall/hybrid --set model=hybrid --label "hybrid(content, itemknn)" \
    --set "model.models=[{name: content, features: [genres, tags, title]}, {name: itemknn, similarity: cosine, idf: false, neighbors: 100, shrinkage: 0}]" \
    --grid "model.weights=[[0.05,0.95],[0.1,0.9],[0.2,0.8],[0.3,0.7]]"
  tune "${m[@]}" --out $out/mlsmall/hybrid-rrf --set model=hybrid --set model.method=rrf --label "hybrid rrf(content, itemknn)" \
    --set "model.models=[{name: content, features: [genres, tags, title]}, {name: itemknn, similarity: cosine, idf: false, neighbors: 100, shrinkage: 0}]" \
    --grid "model.weights=[[0.05,0.95],[0.1,0.9],[0.2,0.8],[0.3,0.7]]"
  echo "-- test items with fewer than 5 training interactions (eval.target_max_train 5)"
  tune "${m[@]}" --out $out/mlsmall/cold-pop --set model=pop --set eval.target_max_train=5 --label "pop (cold)"
  tune "${m[@]}" --out $out/mlsmall/cold-content --set model=content --set eval.target_max_train=5 --label "content (cold)" \
    --grid "model.features=[[genres],[genres,tags],[genres,tags,title]]"
  ;;
speed)
  cmake --build build --target rzoo_bench_classic >/dev/null
  ./build/rzoo_bench_classic configs "$data/ncf-ml-1m/ml-1m"
  ;;
esac
done
}; exit
