// rzoo's one error type. Every user-facing failure (bad config, bad data, bad checkpoint) is an
// rzoo::Error whose message names the file, line and key; the CLI prints it and exits non-zero.
#pragma once
#include <fmt/core.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace rzoo {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace rzoo
