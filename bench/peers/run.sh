#!/usr/bin/env bash
# rzoo vs its Python peers (RecBole 1.2.1, implicit 0.7.3), side by side in ONE run, interleaved:
# in every round each workload runs rzoo first, then each peer, so machine drift hits both sides alike.
# Every process runs under /usr/bin/time -v (peak RSS); in-process timers give the per-epoch, fit and
# evaluation seconds. Writes $OUT/logs/*, $OUT/table.md (summarize.py).
#
#   bash run.sh                      # THREADS=2 ROUNDS=2 ACC=1 NEUMF_ACC=0, workloads w1-w6
#   THREADS=1 ROUNDS=3 bash run.sh
#   ONLY="s1 s2 s3" THREADS=1 ROUNDS=1 bash bench/peers/run.sh   # sequential models (~35 min at 1 thread)
# The sequential workloads s1-s3 run only when ONLY names them (each RecBole epoch takes minutes).
#
# Needs: rzoo built at $RZOO_DIR/build/rzoo; the peers venv (setup_venv.sh); the data folder.
# README.md beside this file has the figures measured with THREADS=1.
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
HERE=$(cd "$(dirname "$0")" && pwd)
RZOO_DIR=${RZOO_DIR:-$(pwd)}             # run from the project root
RZOO=$RZOO_DIR/build/rzoo
DATA=${DATA:-$(cd "$RZOO_DIR/../shared/data" && pwd)}   # the project copy: ../shared/data beside the project
VENV=${VENV:-$RZOO_DIR/build/peers-venv}
OUT=${OUT:-$RZOO_DIR/build/peers-bench}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
ONLY=${ONLY:-}            # e.g. ONLY="w1 w3": timing workloads to run (default w1-w6; s1-s3 only when named)
[ -z "$ONLY" ] && ACC_DEFAULT=1 || ACC_DEFAULT=0
ACC=${ACC:-$ACC_DEFAULT}  # run the accuracy part (W3 accuracy, W7); default 1 without ONLY, 0 with it
NEUMF_ACC=${NEUMF_ACC:-0} # W7 with NeuMF too (several minutes per side)
T2=${T2:-0}               # 1: each rzoo timing job of w1, w3, w4, w5, w6 also runs with threads=2, right after (before, in even rounds)
                          # its threads=$THREADS run (the threads table of summarize.py)
# Sequential workloads S1 SASRec, S2 BERT4Rec, S3 GRU4Rec (RecBole's sequential defaults on u.data):
SEQ_EPOCHS_RZ=${SEQ_EPOCHS_RZ:-3}      # rzoo epochs, augment prefix (RecBole's rows; ~100 s each at 1 thread)
SEQ_EPOCHS_NONE=${SEQ_EPOCHS_NONE:-10} # rzoo epochs, augment none (one row per user; ~1 s each)
SEQ_EPOCHS_RB=${SEQ_EPOCHS_RB:-2}      # RecBole epochs (~150-300 s each at 1 thread)
SEQ_MICRO=${SEQ_MICRO:-512}           # rzoo augment prefix again with train.micro_batch_size=N (same step, less memory); empty: not run
SEQ_BUCKET=${SEQ_BUCKET:-1}           # 1: and again with micro-batches and train.sequence.bucket (batches of similar lengths)
RB_SEQ_BUDGET_S=${RB_SEQ_BUDGET_S:-}   # S2, S3: RecBole starts no epoch that would take its training past this
PY=$VENV/bin/python
D=$OUT/data
export THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
export NCF_DIR=$DATA/ncf-ml-1m PYTHONWARNINGS=ignore
mkdir -p "$OUT/logs" "$OUT/runs"
[ -x "$RZOO" ] || { echo "no rzoo binary at $RZOO"; exit 1; }
# The same OpenBLAS kernels on every side: where OpenBLAS would fall back to its Prescott kernels on
# a CPU model newer than its release, rzoo runs with the set the CPU's features allow
# (core/threads.h); the peers (Python, the same Debian OpenBLAS) get it through the environment.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  ct=$("$RZOO" --version | sed -n 's/.*OPENBLAS_CORETYPE=\([A-Za-z0-9]*\).*/\1/p')
  if [ -n "$ct" ]; then export OPENBLAS_CORETYPE=$ct; fi
fi
[ -x "$PY" ] || { echo "no venv at $VENV (run setup_venv.sh)"; exit 1; }

echo "== $(date -u) threads=$THREADS rounds=$ROUNDS${OPENBLAS_CORETYPE:+ OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE}; load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/logs/run.txt"
want_w() { [ -z "$ONLY" ] || [[ " $ONLY " == *" w"* ]] || [ "$ACC" = 1 ] || [ "$NEUMF_ACC" = 1 ]; }
if want_w; then [ -f "$D/ncf1m/ncf1m.test.inter" ] || /usr/bin/python3 "$HERE/prep_data.py" "$DATA" "$D" ml100k ncf1m; fi
[ -f "$D/ml100kseq/ml100kseq.inter" ] || /usr/bin/python3 "$HERE/prep_data.py" "$DATA" "$D" ml100kseq

# job NAME CMD...: one process under /usr/bin/time -v; stdout+stderr in logs/NAME.log.
job() {
  local name=$1; shift
  printf '%-28s' "$name"
  # bash -c runs the helper functions below; GNU time's peak RSS is the largest single process.
  if /usr/bin/time -v -o "$OUT/logs/$name.time" bash -c '"$@"' _ "$@" >"$OUT/logs/$name.log" 2>&1; then
    echo " $(grep -E 'Elapsed' "$OUT/logs/$name.time" | sed 's/.*: //') wall, $(grep -E 'Maximum resident' "$OUT/logs/$name.time" | sed 's/.*: //') KB peak; load $(cut -d' ' -f1 /proc/loadavg)"
  else
    echo " FAILED (see $OUT/logs/$name.log)"
  fi
}
# rzoo runs from its own folder (its configs/ layers); experiment files are given by absolute path.
rz() { env -C "$RZOO_DIR" "$RZOO" "$@"; }
rzt() { local exp=$1; shift; rz train "$HERE/rzoo/$exp" --quiet --set threads="$THREADS" --set output_dir="$OUT/runs" "$@"; }
rzt2() { local exp=$1; shift; rz train "$HERE/rzoo/$exp" --quiet --set threads=2 --set output_dir="$OUT/runs" "$@"; }
# tjob NAME RUN EXP ARGS...: an rzoo training job (run folder RUN), and with T2=1 the same with 2 threads (RUN-t2),
# the 2-thread job first in even rounds ($r), so that neither setting always runs second.
tjob() {
  local name=$1 run=$2 exp=$3; shift 3
  if [ "$T2" = 1 ] && (( r % 2 == 0 )); then job "${name/.r/.t2.r}" rzt2 "$exp" "$@" --set run_name="$run-t2"; fi
  job "$name" rzt "$exp" "$@" --set run_name="$run"
  if [ "$T2" = 1 ] && (( r % 2 == 1 )); then job "${name/.r/.t2.r}" rzt2 "$exp" "$@" --set run_name="$run-t2"; fi
}
rb() { "$PY" "$HERE/rb.py" "$@"; }
imp() { OPENBLAS_NUM_THREADS=1 "$PY" "$HERE/imp.py" "$@"; }
export -f rz rzt rzt2 rb imp
export HERE RZOO_DIR RZOO OUT PY
want() { if [[ $1 == s* ]]; then [[ " $ONLY " == *" $1 "* ]]; else [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; fi; }
# seqjob W EXP MODEL ROUND [BUDGET]: one sequential workload, rzoo (augment prefix, then none) first, then RecBole.
seqjob() {
  local w=$1 exp=$2 model=$3 r=$4 budget=${5:-}
  local SQ=(--set dataset.path="$D/ml100kseq")
  job $w.rzoo-prefix.r$r rzt "$exp" "${SQ[@]}" --set train.sequence.augment=prefix --set train.epochs="$SEQ_EPOCHS_RZ" \
      --set train.valid_every="$SEQ_EPOCHS_RZ" --set run_name=$w-prefix-r$r
  if [ -n "$SEQ_MICRO" ]; then
    job $w.rzoo-prefixmicro.r$r rzt "$exp" "${SQ[@]}" --set train.sequence.augment=prefix --set train.micro_batch_size="$SEQ_MICRO" \
        --set train.epochs="$SEQ_EPOCHS_RZ" --set train.valid_every="$SEQ_EPOCHS_RZ" --set run_name=$w-prefixmicro-r$r
  fi
  if [ "$SEQ_BUCKET" = 1 ]; then
    job $w.rzoo-prefixbucket.r$r rzt "$exp" "${SQ[@]}" --set train.sequence.augment=prefix --set train.micro_batch_size="${SEQ_MICRO:-0}" \
        --set train.sequence.bucket=true --set train.epochs="$SEQ_EPOCHS_RZ" --set train.valid_every="$SEQ_EPOCHS_RZ" \
        --set run_name=$w-prefixbucket-r$r
  fi
  job $w.rzoo-none.r$r rzt "$exp" "${SQ[@]}" --set train.sequence.augment=none --set train.epochs="$SEQ_EPOCHS_NONE" \
      --set train.valid_every="$SEQ_EPOCHS_NONE" --set run_name=$w-none-r$r
  job $w.recbole.r$r env RB_BUDGET_S="${budget:-inf}" "$PY" "$HERE/rb.py" seqepochs "$D" "$model" "$SEQ_EPOCHS_RB"
}
NCFSET=(--set dataset.path="$DATA/ncf-ml-1m/ml-1m")

# W2 needs a model to evaluate: one BPR epoch on the NCF train (set-up, not timed).
if want w2 && [ ! -f "$OUT/runs/w2-bpr/best.pt" ]; then
  job setup.w2-bpr rzt ncf1m_bpr_eval.yaml --set dataset.path="$D/ncf1m" --set run_name=w2-bpr
fi

for r in $(seq 1 "$ROUNDS"); do
  echo "-- round $r"
  if want w1; then   # BPR-MF seconds per epoch, ML-100K shared split
    tjob w1.rzoo.r$r w1-r$r ml100k_bpr_epochs.yaml --set dataset.path="$D/ml100k"
    # The per-sample path (sgd, batch_size 1; Hogwild across threads) on implicit's objective:
    # lr 0.01, and implicit's regularization 0.01 (a step decays by lr * reg) is l2 = 0.005 here.
    tjob w1.rzoosgd.r$r w1sgd-r$r ml100k_bpr_epochs.yaml --set dataset.path="$D/ml100k" --set train.optimizer=sgd \
        --set train.batch_size=1 --set train.lr=0.01 --set model.l2=0.005
    job w1.recbole.r$r rb epochs "$D" BPR 12
    job w1.implicit.r$r imp bpr "$D" 12
  fi
  if want w2; then   # full-ranking evaluation, NCF ML-1M shape
    job w2.rzoo.r$r rz evaluate "$OUT/runs/w2-bpr" --set eval.protocol=full
    cp "$OUT/runs/w2-bpr"/eval-protocol-full*/eval.json "$OUT/logs/w2.rzoo.r$r.eval.json" || true
    job w2.recbole.r$r rb evaltime "$D" 3
  fi
  if want w3; then   # iALS: rzoo one iteration, and 15 iterations (CG, Cholesky) / implicit 15 iterations timed one by one
    job w3.rzoo.r$r rzt ncf_closed.yaml "${NCFSET[@]}" --set model.name=ials --set model.epochs=1 --set run_name=w3-r$r
    tjob w3.rzoo15.r$r w3x15-r$r ncf_closed.yaml "${NCFSET[@]}" --set model.name=ials
    job w3.rzoo15chol.r$r rzt ncf_closed.yaml "${NCFSET[@]}" --set model.name=ials --set model.solver=cholesky --set run_name=w3x15chol-r$r
    job w3.implicit-cg.r$r imp als "$D" 15 1 1.0 0.01
    job w3.implicit-chol.r$r imp als "$D" 15 0 1.0 0.01
  fi
  if want w4; then   # ItemKNN fit, K = 50, cosine, no shrinkage
    tjob w4.rzoo.r$r w4-r$r ncf_closed.yaml "${NCFSET[@]}" --set model.name=itemknn --set model.neighbors=50 --set model.shrinkage=0.0 \
      --set model.similarity=cosine --set model.idf=false
    job w4.recbole.r$r rb fit "$D" ItemKNN k=50 shrink=0.0
    job w4.implicit-cosine.r$r imp knn "$D" cosine 50
    job w4.implicit-itemitem.r$r imp knn "$D" itemitem 50
  fi
  if want w5; then   # EASE fit, l2 250
    tjob w5.rzoo.r$r w5-r$r ncf_closed.yaml "${NCFSET[@]}" --set model.name=ease --set model.l2=250.0
    job w5.recbole.r$r rb fit "$D" EASE reg_weight=250.0
  fi
  if want w6; then   # NeuMF seconds per epoch, ML-100K shared split
    tjob w6.rzoo.r$r w6-r$r ml100k_neumf_epochs.yaml --set dataset.path="$D/ml100k"
    job w6.recbole.r$r rb epochs "$D" NeuMF 5
  fi
  if want s1; then seqjob s1 s1_sasrec.yaml SASRec "$r"; fi
  if want s2; then seqjob s2 s2_bert4rec.yaml BERT4Rec "$r" "$RB_SEQ_BUDGET_S"; fi
  if want s3; then seqjob s3 s3_gru4rec.yaml GRU4Rec "$r" "$RB_SEQ_BUDGET_S"; fi
done

if [ "$ACC" = 1 ]; then
  echo "-- accuracy"
  # W3: iALS 15 iterations, NCF test with its 99 negatives. Each system's defaults, then one matched
  # objective: implicit (alpha A, reg R) = rzoo (alpha A-2, unobserved_weight 1, nu 0, l2 R(A-1)/A).
  job acc3.rzoo-default rzt ncf_closed.yaml "${NCFSET[@]}" --set model.name=ials --set run_name=acc3-default
  job acc3.rzoo-matched rzt ncf_closed.yaml "${NCFSET[@]}" --set model.name=ials --set model.alpha=3.0 \
      --set model.unobserved_weight=1.0 --set model.nu=0.0 --set model.l2=16.0 --set run_name=acc3-matched
  job acc3.rzoo-default-chol rzt ncf_closed.yaml "${NCFSET[@]}" --set model.name=ials --set model.solver=cholesky --set run_name=acc3-default-chol
  job acc3.rzoo-matched-chol rzt ncf_closed.yaml "${NCFSET[@]}" --set model.name=ials --set model.alpha=3.0 \
      --set model.unobserved_weight=1.0 --set model.nu=0.0 --set model.l2=16.0 --set model.solver=cholesky --set run_name=acc3-matched-chol
  job acc3.implicit-cg-matched imp als "$D" 15 1 5.0 20.0
  job acc3.implicit-chol-matched imp als "$D" 15 0 5.0 20.0
  # W7: the shared ML-100K split, full ranking.
  job acc7.rzoo rz compare "$HERE/rzoo/ml100k_compare.yaml" --set dataset.path="$D/ml100k" \
      --set threads="$THREADS" --set output_dir="$OUT/runs" --set run_name=acc7
  for m in Pop ItemKNN BPR EASE; do job acc7.recbole-$m rb accuracy "$D" "$OUT/recbole" $m; done
  job acc7.recbole-EASE-l2-500 rb accuracy "$D" "$OUT/recbole" EASE reg_weight=500.0
fi
if [ "$NEUMF_ACC" = 1 ]; then
  echo "-- accuracy, NeuMF"
  job acc7.rzoo-neumf rz compare "$HERE/rzoo/ml100k_compare_neumf.yaml" --set dataset.path="$D/ml100k" \
      --set threads="$THREADS" --set output_dir="$OUT/runs" --set run_name=acc7-neumf
  job acc7.recbole-NeuMF rb accuracy "$D" "$OUT/recbole" NeuMF
fi
echo "== $(date -u) done; load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/logs/run.txt"
"$PY" "$HERE/summarize.py" "$OUT" | tee "$OUT/table.md"
}; exit
