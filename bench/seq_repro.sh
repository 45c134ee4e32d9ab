#!/usr/bin/env bash
# Reproduction runs of the sequential models (issue "Sequential recommenders") on S3-Rec's files
# (Zhou et al., CIKM 2020), from ../shared/data/s3rec. Every setting is chosen on the validation
# split (`rzoo tune` through bench/tune_lib.sh: a small grid, best validation NDCG@10 wins; test is read only for the
# chosen setting), then re-run with seeds 1, 2, 3: test HR@10 / NDCG@10 as mean ± sd.
#   lastfm  LastFM with its 99 given negatives per user (test), uni99 on validation
#           (configs/experiments/s3rec-lastfm.yaml)
#   beauty  Beauty ranking all items, the user's history masked (configs/experiments/s3rec-beauty.yaml);
#           BEAUTY_UNI=1 also re-evaluates the final runs with eval.protocol=uni99
# Baselines on the same protocol: Pop, ItemKNN (the user's whole history), EASE and the
# first-order Markov / last-item baseline (markov). Each part ends with one table of all its
# models (rzoo compare --runs, intervals and paired tests against EASE) in build/seq-repro/PART/table
# (and table-eval-protocol-uni99 with BEAUTY_UNI=1).
# Usage: bash bench/seq_repro.sh [lastfm|beauty]...   (default: lastfm; needs the build)
#        MODELS="sasrec pop" bash bench/seq_repro.sh beauty   (a subset)
#        JOBS=2 runs two trainings at once, one thread each.
# Outputs under build/seq-repro, one `rzoo tune` study per model (a rerun continues the studies and
# reuses their finished runs: delete the folder after changing the code).
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
cd "$(dirname "$0")/.."
data=${RZOO_SHARED_DATA:-../shared/data}
out=build/seq-repro
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(lastfm)
jobs=${JOBS:-1}
# shellcheck source=bench/tune_lib.sh
source bench/tune_lib.sh

# table DIR EVAL: rzoo compare --runs of the studies in DIR whose chosen setting has test runs
# (EVAL: that evaluation folder of each, e.g. eval-protocol-uni99), into DIR/table[-EVAL].
table() {
  local dir=$1 eval=$2 entries=() s name
  for s in pop itemknn ease markov gru4rec caser sasrec bert4rec; do
    [ -f "$dir/$s/study.json" ] || continue
    /usr/bin/python3 -c 'import json,sys; t=json.load(open(sys.argv[1])).get("test") or {}; sys.exit(0 if t.get("runs") else 1)' \
      "$dir/$s/study.json" || continue
    entries+=("$dir/$s${eval:+/$eval}")
  done
  [ ${#entries[@]} -ge 2 ] || return 0
  name=table${eval:+-$eval}
  rm -rf "${dir:?}/$name"
  local base=()
  [ -f "$dir/ease/study.json" ] && base=(--set compare_stats.baseline=ease)
  "${RZOO:-build/rzoo}" compare --runs "${entries[@]}" "${base[@]}" --out "$dir/$name" --quiet ||
    echo "table $dir/$name: rzoo compare --runs failed (see above)"
}

for part in "${parts[@]}"; do
  case $part in
  lastfm)
    [ -f "$data/s3rec/LastFM.txt" ] || { echo "lastfm: skipped: no $data/s3rec/LastFM.txt"; continue; }
    cfg=configs/experiments/s3rec-lastfm.yaml
    sets=(--set "dataset.path=$data/s3rec/LastFM.txt" --set "dataset.negatives_path=$data/s3rec/LastFM_sample.txt"
          --set "dataset.items.attributes_path=$data/s3rec/LastFM_item2attributes.json")
    echo "== S3-Rec LastFM, 99 given negatives (test HR@10 / NDCG@10, chosen on valid NDCG@10, uni99 on valid)" ;;
  beauty)
    [ -f "$data/s3rec/Beauty.txt" ] || { echo "beauty: skipped: no $data/s3rec/Beauty.txt"; continue; }
    cfg=configs/experiments/s3rec-beauty.yaml
    # Length-bucketed batches (train.sequence.bucket): Beauty's sequences are short (8.9 items on
    # average, max_len 50), so bucketing cuts the padded positions; 2.8x faster per SASRec epoch.
    sets=(--set "dataset.path=$data/s3rec/Beauty.txt" --set "dataset.items.attributes_path=$data/s3rec/Beauty_item2attributes.json"
          --set train.sequence.bucket=true)
    [ "${BEAUTY_UNI:-0}" = 1 ] && sets+=(--also-eval eval.protocol=uni99)
    echo "== S3-Rec Beauty, all items ranked, history masked (test HR@10 / NDCG@10, chosen on valid NDCG@10)" ;;
  *) echo "unknown part '$part' (lastfm, beauty)"; exit 2 ;;
  esac
  mkdir -p $out/$part
  c=("$cfg" "${sets[@]}" --set train.progress=false --set threads=1 --jobs "$jobs" --metric ndcg@10
     --report hr@10,ndcg@10 --grid-with-first-seed)
  # The neural models' learning-rate grid; on Beauty (20x LastFM's training cost) no grid: the
  # experiment file's lr 0.001, S3-Rec's own.
  lrs="[0.001,0.003]"
  masks="[0.2,0.6]"
  [ "$part" = beauty ] && { lrs="[0.001]"; masks="[0.6]"; }  # BERT4Rec paper: 0.6 on Beauty
  for model in ${MODELS:-pop itemknn ease markov gru4rec caser sasrec bert4rec}; do
    o=$out/$part/$model
    case $model in
    # Closed-form baselines are deterministic: one seed.
    pop) tune "${c[@]}" --out $o --summary $o.json --label Pop --set model=pop --seeds 1 ;;
    itemknn) tune "${c[@]}" --out $o --summary $o.json --label ItemKNN --set model=itemknn --set model.similarity=cosine --set model.idf=false --seeds 1 \
               --grid "model.neighbors=[100,20,500]" --grid "model.shrinkage=[100.0,10.0]" ;;
    ease) tune "${c[@]}" --out $o --summary $o.json --label EASE --set model=ease --seeds 1 \
            --grid "model.l2=[500.0,100.0,2000.0]" ;;
    markov) tune "${c[@]}" --out $o --summary $o.json --label Markov --set model=markov --seeds 1 \
              --grid "model.history_items=[1,3]" --grid "model.window=[1,3]" ;;
    # Neural models: a small grid on the first seed, then seeds 1, 2, 3 of the chosen setting.
    gru4rec) tune "${c[@]}" --out $o --summary $o.json --label GRU4Rec --set model=gru4rec --seeds 1,2,3 \
               --grid "train.lr=$lrs" ;;
    caser) tune "${c[@]}" --out $o --summary $o.json --label Caser --set model=caser --seeds 1,2,3 \
             --grid "train.lr=$lrs" ;;
    sasrec) tune "${c[@]}" --out $o --summary $o.json --label "SASRec (ce)" --set model=sasrec --seeds 1,2,3 \
              --set model.dropout=0.5 --set model.attn_dropout=0.5 --grid "train.lr=$lrs" ;;
    bert4rec) tune "${c[@]}" --out $o --summary $o.json --label BERT4Rec --set model=bert4rec --seeds 1,2,3 \
                --grid "train.lr=$lrs" --grid "model.mask_prob=$masks" ;;
    *) echo "unknown model '$model'"; exit 2 ;;
    esac
  done
  # One table of every model of this part that has its test runs, with intervals and paired tests
  # against EASE (rzoo compare --runs: from the stored results, nothing trained again).
  table "$out/$part" ""
  [ "$part" = beauty ] && [ "${BEAUTY_UNI:-0}" = 1 ] && table "$out/$part" eval-protocol-uni99
done
}; exit
