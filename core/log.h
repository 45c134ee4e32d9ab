// Run output: every line goes to stdout and, once a run folder exists, to its train.log.
// Progress bars are drawn only when stdout is a terminal and never reach the log file.
#pragma once
#include <cstdio>
#include <string>

namespace rzoo {

class Logger {
 public:
  explicit Logger(bool quiet = false);
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  void open(const std::string& path);  // appends; creates the file
  void close();
  void line(const std::string& text);  // stdout (unless quiet) + file
  // A result (a metrics table): stdout even when quiet, since --quiet silences logs, never
  // results; + file. While held (hold_results), results are ordinary lines.
  void result(const std::string& text);
  void hold_results(bool hold) { hold_results_ = hold; }
  void progress(const std::string& text);  // one updating terminal line; no-op without a terminal
  bool interactive() const { return tty_ && !quiet_ && !silent_; }
  // Nothing from now on, to the terminal or a file (the ranks other than 0 of a distributed run:
  // rank 0 speaks for all of them; their errors still go to stderr).
  void silence() {
    close();
    silent_ = true;
  }

 private:
  void write(const std::string& text, bool to_stdout);  // stdout (when asked) + file
  bool quiet_, tty_;
  bool progress_shown_ = false;
  bool hold_results_ = false;
  bool silent_ = false;
  std::FILE* file_ = nullptr;
};

}  // namespace rzoo
