// The benchmark workloads of bench/WORKLOADS.md (docs: bench/README.md).
//
// A workload's deltas are generated up front into flat arrays -- one entry per
// delta in `page`, `offset`, `length`, `byte_start`, and one contiguous buffer
// holding every delta's new bytes, delta after delta -- so that no clock ever
// runs while deltas are being produced, and no bench allocates per delta.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace mmsb::bench {

// splitmix64, exactly as WORKLOADS.md defines it.
class SplitMix64 {
 public:
  static constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;
  explicit SplitMix64(uint64_t seed) noexcept : state_(seed) {}
  uint64_t next() noexcept {
    state_ += kGamma;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Advances the generator as if next() had been called n times (the state is
  // a counter, so this is exact and O(1)).
  void skip(uint64_t n) noexcept { state_ += n * kGamma; }

 private:
  uint64_t state_;
};

inline constexpr uint64_t kWorkloadSeed = 42;

struct WorkloadSpec {
  std::string_view name;  // "W1", "W2", "W3"
  uint32_t pages;         // P
  uint32_t page_size;     // S
  uint32_t max_run;       // L
  uint64_t deltas;
  std::string_view what;  // what it stands for
};

// W1, W2, W3 in order.
std::span<const WorkloadSpec> workload_specs();
// nullptr for an unknown name.
const WorkloadSpec* find_workload(std::string_view name);

struct Workload {
  WorkloadSpec spec;
  // Per delta i: the page index (0..P-1; page i is named "p<i>"), the byte
  // range [offset, offset + length) it sets, and where its new bytes start in
  // `bytes`.
  std::vector<uint32_t> page;
  std::vector<uint32_t> offset;
  std::vector<uint32_t> length;
  std::vector<uint64_t> byte_start;
  std::unique_ptr<std::byte[]> bytes;  // every delta's new bytes, concatenated
  uint64_t total_bytes = 0;            // sum of lengths

  size_t count() const noexcept { return page.size(); }
  uint64_t state_bytes() const noexcept { return uint64_t{spec.pages} * spec.page_size; }
  const std::byte* delta_bytes(size_t i) const noexcept { return bytes.get() + byte_start[i]; }
  std::span<const std::byte> all_bytes() const noexcept { return {bytes.get(), total_bytes}; }
};

// Generates the workload from splitmix64 seeded with 42 (every workload starts
// from the seed on its own, so any one of them can be regenerated alone).
// Two passes: the first draws page/length/offset and skips the byte draws to
// learn the total size; the second fills the one byte buffer. Every array is
// allocated once, at its final size.
Workload generate(const WorkloadSpec& spec);

}  // namespace mmsb::bench
