// Catch2's runner, after the same start-up as the rzoo program: the test process re-executes
// itself once with the short OpenMP spin and OpenBLAS wait, and OpenBLAS's kernels for this CPU
// where it would fall back to its oldest (core/threads.h), unless they are set.
// The in-process tests then train under the runtime settings users get, and every `rzoo` the
// CLI tests start inherits them and skips its own re-execution: that second start of LibTorch
// cost about 0.9 s per command, several minutes over the suite's hundreds of commands. Under
// CTest the settings come in the environment (cmake/test_env.cmake.in), so nothing is re-executed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "core/threads.h"

int main(int argc, char* argv[]) {
  rzoo::reexec_with_runtime_settings(argv);
  return Catch::Session().run(argc, argv);
}
