// What the samples share. A sample stops at the first error, naming itself
// and what failed ("mmsb-sample-physics: create page failed: ..."); a real
// application would handle the error instead.
#pragma once

#include <errno.h>  // program_invocation_short_name (GNU)

#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <utility>

#include <mmsb/status.h>

namespace sample {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, what.c_str());
  std::exit(1);
}

inline void check(const mmsb::Status& s, const char* what) {
  if (!s.ok()) fail(std::string(what) + " failed: " + s.to_string());
}

template <class T>
T check(mmsb::Result<T> r, const char* what) {
  check(r.status(), what);
  return std::move(r).value();
}

// The bytes of a trivially copyable value, for Bus::write.
template <class T>
std::span<const std::byte> bytes_of(const T& value) {
  return std::as_bytes(std::span(&value, 1));
}

}  // namespace sample
