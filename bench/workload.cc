#include "workload.h"

#include <array>

namespace mmsb::bench {

namespace {
constexpr std::array<WorkloadSpec, 3> kSpecs{{
    {"W1", 1024, 4096, 64, 1'000'000, "sparse, small updates (game/simulation state)"},
    {"W2", 16384, 4096, 64, 2'000'000, "the same on a larger state"},
    {"W3", 256, 65536, 65536, 20'000, "dense rewrites (buffers, GPU outputs)"},
}};
}  // namespace

std::span<const WorkloadSpec> workload_specs() { return kSpecs; }

const WorkloadSpec* find_workload(std::string_view name) {
  for (const WorkloadSpec& s : kSpecs)
    if (s.name == name) return &s;
  return nullptr;
}

Workload generate(const WorkloadSpec& spec) {
  Workload w;
  w.spec = spec;
  const size_t n = spec.deltas;
  w.page.resize(n);
  w.offset.resize(n);
  w.length.resize(n);
  w.byte_start.resize(n);

  // Pass 1: per delta, in this order: page, len, offset; then skip the `len`
  // byte draws.
  SplitMix64 rng(kWorkloadSeed);
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t page = static_cast<uint32_t>(rng.next() % spec.pages);
    const uint32_t len = static_cast<uint32_t>(1 + rng.next() % spec.max_run);
    const uint32_t off = static_cast<uint32_t>(rng.next() % (uint64_t{spec.page_size} - len + 1));
    w.page[i] = page;
    w.length[i] = len;
    w.offset[i] = off;
    w.byte_start[i] = total;
    total += len;
    rng.skip(len);
  }
  w.total_bytes = total;

  // Pass 2: the same stream again; skip the three header draws, keep the low
  // byte of each byte draw.
  w.bytes.reset(new std::byte[total]);  // not value-initialized: every byte is written below
  SplitMix64 rng2(kWorkloadSeed);
  std::byte* out = w.bytes.get();
  for (size_t i = 0; i < n; ++i) {
    rng2.skip(3);
    for (uint32_t j = 0, len = w.length[i]; j < len; ++j)
      *out++ = static_cast<std::byte>(rng2.next() & 0xFF);
  }
  return w;
}

}  // namespace mmsb::bench
