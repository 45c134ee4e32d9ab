// Linked into rzoo's programs in the sanitizer build only (-DRZOO_SANITIZE=ON, scripts/test.sh
// --sanitize). Replaces the sanitizer runtimes' weak __sanitizer_report_error_summary, called once
// per AddressSanitizer, LeakSanitizer or UndefinedBehaviorSanitizer report (UBSan: with
// print_summary=1), to append the summary line to $RZOO_SANITIZER_LOG_DIR/summary.<pid>.
// Why: GCC's libubsan ignores log_path next to libasan and always writes to stderr, which the CLI
// tests capture; a report from a `rzoo` run whose failure a test expected would go unseen.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

extern "C" void __sanitizer_report_error_summary(const char* summary) {
  std::fprintf(stderr, "%s\n", summary);  // what the runtime's own version does
  if (const char* dir = std::getenv("RZOO_SANITIZER_LOG_DIR")) {
    const std::string path = std::string(dir) + "/summary." + std::to_string(::getpid());
    if (std::FILE* f = std::fopen(path.c_str(), "a")) {
      std::fprintf(f, "%s\n", summary);
      std::fclose(f);
    }
  }
}
