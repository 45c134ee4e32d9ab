#!/usr/bin/env bash
# Full-ranking evaluation benchmark (issue "Evaluation"): every ranking and beyond-accuracy
# metric at K = 5, 10, 20, 50 for a 64-factor MF model,
#   1. ML-1M's shape: 6,040 users x 3,706 items, ~165 interactions per user (target: < 1 s);
#   2. ML-20M's shape: 138,493 users x 26,744 items, ~144 per user, eval.memory_mb 512
#      (target: within 2 GB).
# Prints time, its split (scoring / masking / ranking / metrics), peak memory, and the limit
# (LibTorch's matmul producing the same scores). Usage: bash bench/eval_full_ranking.sh
set -euo pipefail
{  # the whole script is read before it runs: an edit during a long run cannot change that run
cd "$(dirname "$0")/.."
cmake --build build --target rzoo_bench_eval >/dev/null
echo "== ML-1M shape"
/usr/bin/time -f "process: %e s wall, %M KB peak RSS" ./build/rzoo_bench_eval configs 6040 3706 165 512 5
echo "== ML-20M shape"
/usr/bin/time -f "process: %e s wall, %M KB peak RSS" ./build/rzoo_bench_eval configs 138493 26744 144 512 1
}; exit
