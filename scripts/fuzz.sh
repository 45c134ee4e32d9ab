#!/usr/bin/env bash
# Fuzzes rzoo's readers, config loader and cache loader with libFuzzer (tests/fuzz/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 60 s, every fuzz_* target)
#
# Configures and builds build-fuzz/ (clang, -DRZOO_FUZZ=ON: ASan + UBSan + libFuzzer), then runs
# each target, one at a time, for the given time. Each starts from the committed seed corpus
# (tests/fuzz/corpus/<target>/, only read) and a working corpus build-fuzz/fuzz-corpus/<target>/
# that keeps the inputs found between runs (merged down to the inputs that add coverage when it
# passes RZOO_FUZZ_MAX_FILES files, 4000 by default). Crash, leak and timeout inputs are written to
# build-fuzz/fuzz-artifacts/<target>/; logs to build-fuzz/fuzz-logs/. Prints the executions and
# exec/s of each target (libFuzzer's final stats), tallies every run in
# build-fuzz/fuzz-logs/executions.tsv and prints the totals per target over all tallied runs, and
# exits non-zero when any target failed.
# Environment: CXX (clang++), RZOO_FUZZ_BUILD (build-fuzz), RZOO_FUZZ_SANITIZE (the sanitizers of
# a new build folder, address,undefined; e.g. RZOO_FUZZ_BUILD=build-fuzz-ubsan
# RZOO_FUZZ_SANITIZE=undefined runs the config target ~3x faster: yaml-cpp allocates at every
# node and ASan's allocator dominated its time), RZOO_FUZZ_JOBS (build jobs, 1),
# RZOO_FUZZ_NICE (19), RZOO_FUZZ_WORKERS (libFuzzer processes per target side by side, sharing the
# working corpus; their executions are summed: 1), RZOO_FUZZ_ARGS (more libFuzzer flags), RZOO_FUZZ_STRICT=1 (an exception
# other than rzoo::Error is a failure, as in CTest's fuzz_corpus_replay; else it is listed).
set -euo pipefail

secs=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
build=${RZOO_FUZZ_BUILD:-$root/build-fuzz}
nice_level=${RZOO_FUZZ_NICE:-19}
max_files=${RZOO_FUZZ_MAX_FILES:-4000}
workers=${RZOO_FUZZ_WORKERS:-1}

if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="${CXX:-clang++}" -DRZOO_FUZZ=ON \
    -DRZOO_FUZZ_SANITIZE="${RZOO_FUZZ_SANITIZE:-address,undefined}"
fi
nice -n "$nice_level" cmake --build "$build" -j "${RZOO_FUZZ_JOBS:-1}"

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in "$root"/tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi

mkdir -p "$build/fuzz-logs"
tally=$build/fuzz-logs/executions.tsv
status=0
total=0
summary=()
for t in "${targets[@]}"; do
  work=$build/fuzz-corpus/$t
  artifacts=$build/fuzz-artifacts/$t
  log=$build/fuzz-logs/$t.log
  mkdir -p "$work" "$artifacts"
  # Keep the working corpus bounded: merge it down to what adds coverage.
  if [[ $(find "$work" -type f | wc -l) -gt $max_files ]]; then
    rm -rf "$work.merged" && mkdir -p "$work.merged"
    RZOO_FUZZ_QUIET=1 nice -n "$nice_level" "$build/$t" -merge=1 -max_len=4096 "$work.merged" "$work" >"$log.merge" 2>&1
    rm -rf "$work" && mv "$work.merged" "$work"
  fi
  echo "== $t: ${secs}s x $workers worker(s) (log: $log)"
  # Each worker is one libFuzzer process with its own log; they share the working corpus (new
  # inputs of one are read by the others at their next start). Executions are summed.
  rm -f "$log" "${log%.log}".w*.log
  pids=()
  for ((w = 0; w < workers; w++)); do
    wlog=$log
    [[ $workers -gt 1 ]] && wlog=${log%.log}.w$w.log
    # shellcheck disable=SC2086
    RZOO_FUZZ_QUIET=${RZOO_FUZZ_QUIET:-0} nice -n "$nice_level" "$build/$t" "$work" "$root/tests/fuzz/corpus/$t" \
      -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" ${RZOO_FUZZ_ARGS:-} >"$wlog" 2>&1 &
    pids+=($!)
  done
  rc=0
  execs=0
  rates=()
  for ((w = 0; w < workers; w++)); do
    wlog=$log
    [[ $workers -gt 1 ]] && wlog=${log%.log}.w$w.log
    wait "${pids[$w]}" || rc=$?
    e=$(sed -n 's/^stat::number_of_executed_units: *//p' "$wlog" | tail -1)
    execs=$((execs + ${e:-0}))
    rates+=("$(sed -n 's/^stat::average_exec_per_sec: *//p' "$wlog" | tail -1)")
  done
  rate=$(IFS=+; echo "${rates[*]}")
  total=$((total + execs))
  if [[ $rc -ne 0 ]]; then
    status=1
    line=$(printf '%-16s FAILED (exit %d) after %s executions: see %s and %s' "$t" "$rc" "$execs" "$log" "$artifacts")
    grep -h -E "^==[0-9]+==ERROR|runtime error|^fuzz: |deadly signal|Test unit written" "${log%.log}"*.log | head -5 || true
  else
    line=$(printf '%-16s %12s executions  %8s exec/s  no crash' "$t" "$execs" "${rate:-?}")
  fi
  echo "$line"
  summary+=("$line")
  # Every run is tallied (date, target, executions, exit status): the totals below add them up.
  printf '%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$execs" "$rc" >>"$tally"
  # Exceptions other than rzoo::Error (allowed, but a message a user may not act on).
  grep -a -h "^fuzz: note: " "${log%.log}"*.log | sort -u | head -5 || true
done
echo "== summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
echo "total executions: $total"
echo "== executions of every run tallied in $tally, per target"
awk -F'\t' '{n[$2] += $3; if ($4 != 0) f[$2]++} END {for (t in n) printf "%-16s %12d%s\n", t, n[t], f[t] ? "  (" f[t] " failed runs)" : ""}' "$tally" | sort
exit $status
