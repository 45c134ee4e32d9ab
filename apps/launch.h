// `rzoo train|evaluate|compare ... --nproc N`: N local processes of this same command, each with
// the variables torchrun would set (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR
// 127.0.0.1, MASTER_PORT a free port), then waits for them. SIGINT and SIGTERM are passed on.
// When one exits with an error, the others get distributed.timeout-bounded time to stop on their
// own (they fail at their next collective, naming the rank that stopped), then SIGTERM, then
// SIGKILL. Returns the exit status of the first process that failed (0 when all succeeded).
#pragma once
#include <string>
#include <vector>

namespace rzoo::cli {

// args: the command line without the program name and without --nproc N.
// quiet: no line about the launch itself (--quiet).
int launch_local(int nproc, const std::vector<std::string>& args, bool quiet);

// argv without its --nproc N (or --nproc=N); sets `value` to N's text ("" when absent).
std::vector<std::string> without_nproc(int argc, char** argv, std::string& value);

}  // namespace rzoo::cli
