#!/usr/bin/env bash
# Compiles every source (syntax only) against LibTorch 2.x's headers, taken from PyTorch's wheel on
# PyPI (unpacked under build/, never committed). A check for machines without LibTorch 2.x: the
# code must build with both Debian's LibTorch 1.13 and PyTorch 2.x (CUDA builds included).
# Usage: bash scripts/check-libtorch2.sh [TORCH_VERSION]   (default 2.11.0)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-2.11.0}
dir=build/libtorch-$version
if [ ! -d "$dir/torch/include" ]; then
  mkdir -p "$dir"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$dir" "torch==$version"
  (cd "$dir" && unzip -q -o torch-*.whl 'torch/include/*' && rm -f torch-*.whl)
fi
[ -f build/generated/rzoo_build.h ] || bash scripts/build.sh
status=0
for f in $(find core datasets models trainers apps -name "*.cpp" | sort) tests/*.cpp; do
  if ! g++ -std=c++17 -fsyntax-only -D_GLIBCXX_USE_CXX11_ABI=1 -I. -Ibuild/generated \
       -isystem "$dir/torch/include" -isystem "$dir/torch/include/torch/csrc/api/include" "$f"; then
    echo "FAILED against LibTorch $version: $f"
    status=1
  fi
done
[ $status -eq 0 ] && echo "all sources compile against LibTorch $version headers"
exit $status
