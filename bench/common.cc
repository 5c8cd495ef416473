#include "common.h"

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstring>
#include <memory>

namespace mmsb::bench {

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

void note(const char* fmt, ...) {
  std::fputs("mmsb-bench: ", stderr);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

TempDir::TempDir(const char* tag) {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string tmpl = (base / ("mmsb-bench-" + std::string(tag) + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data())) path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

std::string Context::keep_path() const {
  if (options.keep_dir.empty()) return {};
  return options.keep_dir + "/" + std::string(workload.spec.name);
}

double Context::memcpy_mb_per_s() {
  if (!memcpy_mb_per_s_) memcpy_mb_per_s_ = measure_memcpy_mb_per_s(repeat());
  return *memcpy_mb_per_s_;
}

double measure_memcpy_mb_per_s(int repeat) {
  constexpr size_t kBytes = size_t{64} << 20;
  std::unique_ptr<std::byte[]> src(new std::byte[kBytes]);
  std::unique_ptr<std::byte[]> dst(new std::byte[kBytes]);
  // Touch both so that no page fault lands inside the clock.
  for (size_t i = 0; i < kBytes; ++i) src[i] = static_cast<std::byte>(i * 131 + 7);
  std::memset(dst.get(), 0, kBytes);
  clobber(src.get());
  clobber(dst.get());
  std::memcpy(dst.get(), src.get(), kBytes);  // warm-up
  clobber(dst.get());

  std::vector<double> secs;
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = Clock::now();
    std::memcpy(dst.get(), src.get(), kBytes);
    clobber(dst.get());
    secs.push_back(seconds_since(t0));
  }
  return static_cast<double>(kBytes) / median(secs) / kMB;
}

}  // namespace mmsb::bench
