#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and PyTorch 2.x (CI has none):
#  1. builds rzoo against PyTorch's own LibTorch (CUDA) in build-cuda/;
#  2. runs every test there (the [cuda] contract test trains, scores, saves and exports each model
#     on the GPU; exports are checked by that PyTorch's python3, RZOO_TEST_PYTHON);
#  3. trains a few models from the CLI with device: cuda and with device: cpu on ml-latest-small,
#     same seed and settings, and prints both results and epoch times side by side;
#  4. exports a GPU-trained run and serves it from Python on the CPU and on the GPU.
# Usage: bash scripts/cuda-check.sh [OUT_DIR]     (logs and run folders under OUT_DIR, default
#        build-cuda/check). yaml-cpp, fmt, Catch2, nlohmann-json, CLI11 and Boost.Math come from the
#        system or, where the machine lacks them, from RZOO_EXTRA_PREFIX (a folder with include/ and
#        lib/, e.g. Debian's packages unpacked with dpkg -x).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-cuda/check}
mkdir -p "$out"
python=$(command -v python3)
status=0
step() { echo; echo "== $*"; }
fail() { echo "FAILED: $*"; status=1; }

step "GPU and PyTorch"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || fail "nvidia-smi"
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
extra=${RZOO_EXTRA_PREFIX:-}
[ -n "$extra" ] && export LD_LIBRARY_PATH="$extra/lib/x86_64-linux-gnu:$extra/lib:${LD_LIBRARY_PATH:-}"

step "configure and build (LibTorch from $prefix)"
start=$(date +%s)
if ! cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix;$extra" \
     >"$out/configure.log" 2>&1; then
  tail -40 "$out/configure.log"; echo "configure failed"; exit 1
fi
grep -i -E "cuda|torch" "$out/configure.log" | head -8
if ! cmake --build build-cuda --target rzoo rzoo_tests >"$out/build.log" 2>&1; then
  grep -E "error|Error" "$out/build.log" | head -30; echo "build failed"; exit 1
fi
echo "built in $(( $(date +%s) - start )) s"

step "every test (ctest), with $python as the Python client"
start=$(date +%s)
export RZOO_TEST_PYTHON=$python
(cd build-cuda && ctest -j "$(nproc)" --output-on-failure >"$OLDPWD/$out/ctest.log" 2>&1) || fail "ctest"
tail -4 "$out/ctest.log"; grep -E "Failed|\*\*\*" "$out/ctest.log" | head -20
echo "tests took $(( $(date +%s) - start )) s"

step "the [cuda] contract test in full (its warnings say which models keep nothing on the GPU)"
build-cuda/rzoo_tests "[cuda]" >"$out/cuda-contract.log" 2>&1 || fail "[cuda] contract test"
grep -E "warning|skipped|passed|failed|FAILED" -A1 "$out/cuda-contract.log" | grep -v -- "^--$" | head -40

step "CLI: the same runs on cuda and on the cpu (ml-latest-small, seed 1)"
rzoo=build-cuda/rzoo
printf "%-8s %-5s %-10s %-10s %-8s %s\n" model device "valid" "test" "s/epoch" "epochs"
for m in bpr mf neumf multvae ease; do
  for dev in cuda cpu; do
    run="$out/runs/$m-$dev"
    rm -rf "$run"
    if ! $rzoo train configs/experiments/neural-mlsmall.yaml --quiet --set model=$m --set device=$dev --set seed=1 \
         --set threads=auto --set train.epochs=3 --set train.early_stop.patience=0 --set train.progress=false \
         --set output_dir="$out/runs" --set run_name=$m-$dev >"$out/$m-$dev.log" 2>&1; then
      fail "$m on $dev"; tail -5 "$out/$m-$dev.log"; continue
    fi
    "$python" - "$run" "$m" "$dev" <<'EOF'
import json, sys
run, m, dev = sys.argv[1:]
r = json.load(open(run + "/metrics.json"))
v, t = r["valid"]["metrics"].get("ndcg@10"), r["test"]["metrics"].get("ndcg@10")
print(f"{m:<8} {dev:<5} {v:<10.4f} {t:<10.4f} {r['train_seconds'] / max(r['epochs_run'], 1):<8.3f} {r['epochs_run']}")
EOF
  done
done

step "export a GPU-trained run; serve it from Python on the cpu and on the gpu"
if $rzoo export "$out/runs/neumf-cuda" --out "$out/neumf.pt" >"$out/export.log" 2>&1; then
  "$python" - "$out/neumf.pt" <<'EOF' || fail "python serving"
import sys, torch
m = torch.jit.load(sys.argv[1])
users = torch.arange(8)
s_cpu, i_cpu = m.recommend(users, 10)
g = torch.jit.load(sys.argv[1], map_location="cuda")
s_gpu, i_gpu = g.recommend(users.cuda(), 10)
print("cpu top-10 of user 0:", i_cpu[0].tolist())
print("gpu top-10 of user 0:", i_gpu[0].tolist())
assert torch.allclose(s_cpu, s_gpu.cpu(), atol=1e-4), "scores differ between cpu and gpu"
print("recommend_raw:", m.recommend_raw(m.user_ids[0], 5))
EOF
else
  fail "export"; tail -5 "$out/export.log"
fi

step "distributed: 2 processes against 1 (NCCL with 2 GPUs or more, else Gloo on CUDA tensors)"
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | wc -l)
backends=()
grep -q "RZOO_HAVE_GLOO 1" build-cuda/generated/rzoo_build.h && backends+=(gloo)
if grep -q "RZOO_HAVE_NCCL 1" build-cuda/generated/rzoo_build.h; then
  if [ "$gpus" -ge 2 ]; then backends+=(nccl); else echo "nccl: built, not run (NCCL needs a GPU per process; $gpus GPU here)"; fi
else
  echo "nccl: not built here (configure found no nccl.h: set NCCL_INCLUDE_DIR)"
fi
[ ${#backends[@]} -eq 0 ] && echo "distributed: not built here (no Gloo headers: LibTorch's wheel ships none; apt-get install libgloo-dev)"
for backend in "${backends[@]}"; do
  for m in bpr sasrec; do
    extra_set=""
    [ $m = sasrec ] && extra_set="--set dataset.split.method=leave_last --set model.dropout=0 --set model.attn_dropout=0"
    for ws in 1 2; do
      bs=$([ $ws = 1 ] && echo 256 || echo 128)
      nproc=$([ $ws = 1 ] && echo "" || echo "--nproc 2")
      # shellcheck disable=SC2086
      # Not --quiet: rank 0's start-up line naming the process group goes to stdout only (its log file
      # is opened after it), and is read from this log below.
      $rzoo train configs/experiments/neural-mlsmall.yaml --set model=$m --set device=cuda --set seed=1 \
        --set threads=1 --set train.epochs=2 --set train.early_stop.patience=0 --set train.batch_size=$bs $extra_set \
        --set train.progress=false --set distributed.backend=$backend --set output_dir="$out/runs" --set run_name=dist-$backend-$m-$ws $nproc \
        >"$out/dist-$backend-$m-$ws.log" 2>&1 || { fail "distributed $backend $m world size $ws"; tail -5 "$out/dist-$backend-$m-$ws.log"; }
    done
    grep -h "process group" "$out/dist-$backend-$m-2.log" | head -1
    if cmp -s "$out/runs/dist-$backend-$m-1/test.users.csv" "$out/runs/dist-$backend-$m-2/test.users.csv"; then
      echo "$backend $m: world size 2 gives the per-user test values of world size 1"
    else
      "$python" - "$out/runs/dist-$backend-$m-1" "$out/runs/dist-$backend-$m-2" <<'EOF' || fail "distributed $backend $m differs"
import json, sys
a, b = (json.load(open(d + "/metrics.json"))["test"]["metrics"] for d in sys.argv[1:])
d = max(abs(a[k] - b[k]) for k in a if a[k] is not None)
print(f"test metrics: largest difference {d:.2e} (GPU kernels need not be bitwise reproducible)")
assert d < 1e-3
EOF
    fi
  done
done

echo
[ $status -eq 0 ] && echo "cuda check: all passed" || echo "cuda check: FAILURES above"
exit $status
