#include "core/log.h"

#include <unistd.h>

#include "core/error.h"

namespace rzoo {

Logger::Logger(bool quiet) : quiet_(quiet), tty_(isatty(fileno(stdout)) != 0) {}
Logger::~Logger() { close(); }

void Logger::open(const std::string& path) {
  close();
  if (silent_) return;
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) fail("{}: cannot open the log file for writing", path);
}

void Logger::close() {
  if (file_) std::fclose(file_);
  file_ = nullptr;
}

void Logger::write(const std::string& text, bool to_stdout) {
  if (silent_) return;
  if (to_stdout) {
    if (progress_shown_) std::fputs("\r\033[K", stdout);
    progress_shown_ = false;
    std::fputs(text.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  if (file_) {
    std::fputs(text.c_str(), file_);
    std::fputc('\n', file_);
    std::fflush(file_);
  }
}

void Logger::result(const std::string& text) { write(text, !quiet_ || !hold_results_); }

void Logger::line(const std::string& text) { write(text, !quiet_); }

void Logger::progress(const std::string& text) {
  if (!interactive()) return;
  std::fputs("\r\033[K", stdout);
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
  progress_shown_ = true;
}

}  // namespace rzoo
