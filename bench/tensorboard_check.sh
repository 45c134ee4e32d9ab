#!/usr/bin/env bash
# Reads a real run's TensorBoard event files with TensorBoard itself (its EventAccumulator), the
# check that rzoo's hand-written event files (core/tensorboard.cpp) are what TensorBoard expects.
# Creates build/tb-venv (pip install tensorboard from PyPI) once, trains BPR for 3 epochs on the
# bundled MovieLens latest-small into build/tb-check, prints every scalar tag with its steps and
# values, and exits non-zero when train/loss, any valid/ tag or an epoch is missing, or when the
# values differ from the run's history.csv.
# Usage: bash bench/tensorboard_check.sh   (needs the build: ./build/rzoo)
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
cd "$(dirname "$0")/.."
venv=build/tb-venv
out=build/tb-check
epochs=3

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import tensorboard" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet tensorboard
fi
"$venv/bin/python" -c "import tensorboard; print('tensorboard', tensorboard.__version__)"

rm -rf "$out"
./build/rzoo train configs/experiments/bpr.yaml --quiet --set train.epochs=$epochs --set output_dir=$out \
  --set run_name=bpr --set train.progress=false
run=$out/bpr
ls "$run"

"$venv/bin/python" - "$run" "$epochs" <<'EOF'
import csv, math, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run, epochs = sys.argv[1], int(sys.argv[2])
acc = EventAccumulator(run, size_guidance={"scalars": 0})  # 0: keep every value
acc.Reload()
tags = sorted(acc.Tags()["scalars"])
scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags}
for t in tags:
    print(f"{t:24s} " + "  ".join(f"{s}:{v:.6g}" for s, v in scalars[t]))

problems = []
if "train/loss" not in scalars:
    problems.append("train/loss missing")
elif [s for s, _ in scalars["train/loss"]] != list(range(1, epochs + 1)):
    problems.append(f"train/loss steps {[s for s, _ in scalars['train/loss']]}, expected 1..{epochs}")
valid = [t for t in tags if t.startswith("valid/")]
if not valid:
    problems.append("no valid/ tag")

# history.csv holds the same numbers (as doubles; TensorBoard keeps floats).
with open(f"{run}/history.csv", newline="") as f:
    rows = list(csv.DictReader(f))
if len(rows) != epochs:
    problems.append(f"history.csv has {len(rows)} rows, expected {epochs}")
for row in rows:
    step = int(row["epoch"])
    for column, value in row.items():
        tag = {"loss": "train/loss", "lr": "train/lr", "seconds": "train/epoch_seconds"}.get(column)
        if column.startswith("valid_"):
            tag = "valid/" + column[len("valid_"):]
        if tag is None or value == "":
            continue
        got = dict(scalars.get(tag, []))
        if step not in got:
            problems.append(f"{tag} step {step}: in history.csv, not in the event files")
        elif not math.isclose(got[step], float(value), rel_tol=1e-6, abs_tol=1e-12):
            problems.append(f"{tag} step {step}: event {got[step]!r}, history.csv {value}")

print(f"{len(tags)} scalar tags, {len(valid)} of them valid/; history.csv: {len(rows)} rows")
if problems:
    print("FAILED:\n  " + "\n  ".join(problems))
    sys.exit(1)
print("OK")
EOF
}; exit
