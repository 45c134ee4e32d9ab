#!/usr/bin/env bash
# Everything on a fresh machine: install what is missing, build, and run every test with CTest.
# `--sanitize`: the same, on a separate build (build-asan/) of rzoo's own code with AddressSanitizer
# and UndefinedBehaviorSanitizer (LibTorch, OpenBLAS, libgomp stay uninstrumented). Every sanitizer
# report is written under build-asan/sanitizer-logs/ and fails the run, even one from a `rzoo` process
# whose failure a CLI test expected. Jobs: CMAKE_BUILD_PARALLEL_LEVEL, CTEST_PARALLEL_LEVEL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if [ "${1:-}" != "--sanitize" ]; then
  bash scripts/build.sh
  ctest --test-dir build --output-on-failure -j "$(nproc)"
  exit
fi

dir=build-asan
logs=$PWD/$dir/sanitizer-logs
# Set before the build too: catch_discover_tests runs the sanitized rzoo_tests at build time.
# ASan and LSan write whole reports to $logs/asan.<pid>; UBSan writes to stderr only (GCC's libubsan
# ignores log_path next to libasan), so cmake/sanitize_report_hook.cpp also appends every report's
# summary line to $logs/summary.<pid>.
export RZOO_SANITIZER_LOG_DIR=$logs
export ASAN_OPTIONS="log_path=$logs/asan:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$PWD/scripts/sanitize/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:print_summary=1"
rm -rf "$logs" && mkdir -p "$logs"
start=$(date +%s)
if [ ! -f $dir/build.ninja ]; then
  # -O1 -g1: quick enough, and reports name file:line; NDEBUG as in the Release build.
  cmake -S . -B $dir -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DRZOO_SANITIZE=ON
fi
cmake --build $dir
built=$(date +%s)
status=0
ctest --test-dir $dir --output-on-failure -j "${CTEST_PARALLEL_LEVEL:-$(nproc)}" || status=$?
done_at=$(date +%s)
echo "sanitize: build $((built - start)) s, tests $((done_at - built)) s"
if compgen -G "$logs/*" >/dev/null; then
  echo "sanitize: sanitizer reports (in $logs):"
  for f in "$logs"/*; do echo "== $f"; cat "$f"; done
  status=1
fi
exit $status
