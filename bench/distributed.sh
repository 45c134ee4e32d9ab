#!/usr/bin/env bash
# Data-parallel training speed: samples/s of 1 process against 2 processes (rzoo train --nproc 2,
# Gloo over loopback) with the same total threads and the same global batch, and the share of
# each step spent in the collectives (rank 0's wait in the gradient all-reduce), for BPR, NeuMF
# and SASRec. Medians over the epochs after the first, ROUNDS runs interleaved.
# Usage: bash bench/distributed.sh   (THREADS=2 total threads, EPOCHS=4, ROUNDS=2, DATA=ml-latest-small)
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
cd "$(dirname "$0")/.."
threads=${THREADS:-2}
epochs=${EPOCHS:-4}
rounds=${ROUNDS:-2}
out=${OUT:-build/bench-distributed}
rzoo=build/rzoo
[ -x "$rzoo" ] || bash scripts/build.sh
per=$((threads / 2))
[ "$per" -ge 1 ] || per=1
rm -rf "$out"
mkdir -p "$out"
common=(--set "output_dir=$out" --set "train.epochs=$epochs" --set train.valid_every=1000 --set train.early_stop.patience=0
        --set train.progress=false --quiet)
declare -A cfg bs
cfg[bpr]="--set model=bpr"
bs[bpr]=2048
cfg[neumf]="--set model=neumf"
bs[neumf]=256
cfg[sasrec]="--set model=sasrec --set dataset.split.method=leave_last"
bs[sasrec]=128
exp=$out/exp.yaml
printf 'dataset: %s\n' "${DATA:-ml-latest-small}" > "$exp"
for r in $(seq 1 "$rounds"); do
  for m in bpr neumf sasrec; do
    # shellcheck disable=SC2086
    "$rzoo" train "$exp" ${cfg[$m]} --set train.batch_size="${bs[$m]}" "${common[@]}" --set threads="$threads" \
      --set run_name="$m-1-$r" > /dev/null
    # shellcheck disable=SC2086
    "$rzoo" train "$exp" ${cfg[$m]} --set train.batch_size="$((bs[$m] / 2))" "${common[@]}" --set threads="$per" \
      --set run_name="$m-2-$r" --nproc 2 > /dev/null
  done
done
python3 - "$out" "$rounds" <<'EOF'
import re, statistics, sys, pathlib
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
print(f"{'model':8} {'processes':>9} {'samples/s':>12} {'comm share':>11} {'speed-up':>9}")
for m in ["bpr", "neumf", "sasrec"]:
    base = None
    for ws in (1, 2):
        sps, comm = [], []
        for r in range(1, rounds + 1):
            log = (out / f"{m}-{ws}-{r}" / "train.log").read_text()
            for line in log.splitlines():
                e = re.match(r"epoch\s+(\d+)/\d+ \|.*\| ([\d,]+) samples/s", line)
                if not e or int(e.group(1)) == 1:
                    continue
                sps.append(float(e.group(2).replace(",", "")))
                c = re.search(r"([\d.]+)% communication", line)
                if c:
                    comm.append(float(c.group(1)))
        med = statistics.median(sps)
        base = base or med
        share = f"{statistics.median(comm):.1f}%" if comm else "-"
        print(f"{m:8} {ws:>9} {med:>12,.0f} {share:>11} {med / base:>9.2f}")
EOF
}; exit
