// Basic vocabulary of the bus.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

namespace mmsb {

// Pages are numbered densely from 0 in creation order.
using PageId = uint32_t;
// Per-page version: 0 when created, +1 for every delta applied to the page.
using Version = uint64_t;
// Global epoch: the number of deltas applied to the bus so far. Epoch 0 is the
// state before any delta; epoch N is the state right after the N-th delta.
// A delta's epoch is the epoch it produces (so the first delta has epoch 1).
using Epoch = uint64_t;

inline constexpr PageId kNoPage = std::numeric_limits<PageId>::max();
// The cause of a delta written by the application itself (not derived).
inline constexpr Epoch kNoCause = 0;
inline constexpr size_t kDefaultPageSize = 4096;
// Offsets and lengths inside a page are 32-bit: a page holds < 4 GiB.
inline constexpr uint64_t kMaxPageSize = std::numeric_limits<uint32_t>::max();

// A run of changed bytes [offset, offset + length) inside one page.
struct Range {
  uint32_t offset = 0;
  uint32_t length = 0;
  uint64_t end() const noexcept { return uint64_t{offset} + length; }
  friend bool operator==(const Range&, const Range&) = default;
};

}  // namespace mmsb
