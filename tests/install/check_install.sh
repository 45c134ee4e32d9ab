#!/usr/bin/env bash
# CTest `install_consumer`: installs the build into a temporary prefix (`cmake --install`), builds
# tests/install/consumer (a program of a C++ user: find_package(rzoo), links rzoo::rzoo_core) against
# it and runs it; then runs the installed `rzoo` from outside the source tree, which must find
# its installed configs and data.
# Usage: check_install.sh SOURCE_DIR BINARY_DIR
set -euo pipefail
src=$1 bin=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/rzoo-install-XXXXXX")
trap 'rm -rf "$work"' EXIT
cmake --install "$bin" --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/lib/cmake/rzoo/rzooConfig.cmake"
test -f "$work/prefix/include/rzoo/models/registry.h"
test -f "$work/prefix/include/rzoo/core/config.h"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src/tests/install/consumer" -B "$work/consumer" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix;$(grep -m1 '^Torch_DIR:' "$bin/CMakeCache.txt" | cut -d= -f2)" >/dev/null
cmake --build "$work/consumer" >/dev/null
"$work/consumer/consumer"
cd "$work"   # no configs/ above: the installed program must find PREFIX/share/rzoo/configs and its data
printf 'model: pop\ndataset: ml-latest-small\nthreads: 1\n' >exp.yaml
env -u RZOO_CONFIG_DIR "$work/prefix/bin/rzoo" train exp.yaml --quiet --set output_dir="$work/runs" >/dev/null
ls "$work"/runs/*/metrics.json >/dev/null
echo "install_consumer: ok"
