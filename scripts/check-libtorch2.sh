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
# RZOO_CHECK_NCCL=1: also the NCCL process group (core/distributed.cpp with RZOO_HAVE_NCCL and
# without/with Gloo), against the CUDA and NCCL headers of the versions PyTorch's wheel pins (the
# nvidia-* wheels from PyPI, ~1 GB downloaded once; only their include folders are kept).
if [ "${RZOO_CHECK_NCCL:-0}" = 1 ]; then
  cuda=build/cuda-headers
  if [ ! -d "$cuda/nvidia/nccl/include" ]; then
    mkdir -p "$cuda/dl"
    python3 -m pip download -q --no-deps -d "$cuda/dl" ${RZOO_NVIDIA_WHEELS:-nvidia-cuda-runtime==13.0.96 \
      nvidia-cublas==13.1.0.3 nvidia-cusparse==12.6.3.3 nvidia-cusolver==12.0.4.66 nvidia-nccl-cu13==2.28.9 \
      nvidia-nvtx==13.0.85 nvidia-curand==10.4.0.35}
    for w in "$cuda"/dl/*.whl; do unzip -q -o "$w" 'nvidia/*/include/*' -d "$cuda"; done
    rm -rf "$cuda/dl"
  fi
  for gloo in 1 0; do
    gen=$(mktemp -d)
    sed -e 's/RZOO_HAVE_NCCL 0/RZOO_HAVE_NCCL 1/' -e "s/RZOO_HAVE_GLOO [01]/RZOO_HAVE_GLOO $gloo/" \
      build/generated/rzoo_build.h >"$gen/rzoo_build.h"
    if g++ -std=c++17 -fsyntax-only -D_GLIBCXX_USE_CXX11_ABI=1 -I. -I"$gen" -isystem "$dir/torch/include" \
         -isystem "$dir/torch/include/torch/csrc/api/include" -isystem "$cuda/nvidia/cu13/include" \
         -isystem "$cuda/nvidia/nccl/include" core/distributed.cpp; then
      echo "core/distributed.cpp with NCCL (Gloo $gloo) compiles against LibTorch $version headers"
    else
      echo "FAILED against LibTorch $version: core/distributed.cpp with NCCL (Gloo $gloo)"
      status=1
    fi
    rm -rf "$gen"
  done
fi
[ $status -eq 0 ] && echo "all sources compile against LibTorch $version headers"
exit $status
