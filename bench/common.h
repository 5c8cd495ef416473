// What every bench shares: the per-workload context, timing and medians,
// progress notes on stderr.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "workload.h"

namespace mmsb::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Median of the samples (mean of the two middle ones for an even count); NaN
// when empty.
double median(std::vector<double> samples);

inline constexpr double kMB = 1e6;  // MB = 10^6 bytes (WORKLOADS.md)

// Keeps the compiler from dropping stores to (or loads from) `p`.
inline void clobber(const void* p) { asm volatile("" : : "r"(p) : "memory"); }

// printf-style progress note on stderr, prefixed "mmsb-bench: ".
void note(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

struct Options {
  int repeat = 5;        // runs per measurement; the median is reported
  std::string keep_dir;  // --keep: recordings go to keep_dir/<workload>/ ("" = not kept)
  unsigned pack_threads = 0;  // --pack-threads: MirrorOptions::pack_threads (0 = its default)
};

// One workload's run: the benches of a workload share it, in registry order.
class Context {
 public:
  Context(const Workload& w, const Options& o) : workload(w), options(o) {}

  const Workload& workload;
  const Options& options;
  int repeat() const noexcept { return options.repeat; }
  // Where a record bench leaves its recording for this workload, or "" when
  // --keep was not given.
  std::string keep_path() const;

  // memcpy bandwidth (MB/s, 64 MiB buffer, one core), measured the first time
  // it is asked for during this workload's run and reused after: the
  // `reference` line reports it, and every `ratio_memcpy` field divides by it.
  double memcpy_mb_per_s();

 private:
  std::optional<double> memcpy_mb_per_s_;
};

// A temporary directory (mmsb-bench-<tag>-XXXXXX under $TMPDIR), removed
// with everything in it; path() is empty if it could not be created.
class TempDir {
 public:
  explicit TempDir(const char* tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

// Median over `repeat` runs of a 64 MiB memcpy between two touched buffers.
double measure_memcpy_mb_per_s(int repeat);

}  // namespace mmsb::bench
