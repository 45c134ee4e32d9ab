#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, and compare Pop with BPR-MF
# on the bundled MovieLens latest-small (configs/experiments/quickstart.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
time ./build/rzoo compare configs/experiments/quickstart.yaml "$@"
