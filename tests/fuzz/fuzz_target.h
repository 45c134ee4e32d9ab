// RZOO_FUZZ_TARGET(name) { ... }: the body of a fuzz target.
//
// With libFuzzer (RZOO_LIBFUZZER defined: the -DRZOO_FUZZ=ON build, one executable per target)
// it is `extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)`. In the normal
// build all targets link into one rzoo_fuzz_replay (replay_main.cpp), so each registers a
// function under its name instead, and the replay program runs the one named on its command line.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace rzoo::fuzz {

using TargetFn = int (*)(const uint8_t*, size_t);

inline std::map<std::string, TargetFn>& targets() {
  static std::map<std::string, TargetFn> t;
  return t;
}
inline bool register_target(const char* name, TargetFn fn) {
  targets()[name] = fn;
  return true;
}

}  // namespace rzoo::fuzz

#if defined(RZOO_LIBFUZZER)
#define RZOO_FUZZ_TARGET(name) extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
#else
#define RZOO_FUZZ_TARGET(name)                                                                           \
  static int rzoo_fuzz_##name(const uint8_t* data, size_t size);                                         \
  [[maybe_unused]] static const bool rzoo_fuzz_registered_##name =                                      \
      ::rzoo::fuzz::register_target(#name, rzoo_fuzz_##name);                                            \
  static int rzoo_fuzz_##name(const uint8_t* data, size_t size)
#endif
