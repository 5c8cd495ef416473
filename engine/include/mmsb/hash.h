// State hashes (xxHash XXH3-64 from Debian's libxxhash).
//
// A page hash covers the page's bytes only. The state hash covers, in page id
// order, every page's id, size and bytes: two buses with the same pages and
// the same contents hash equal, whatever their versions or history.
#pragma once

#include <cstdint>
#include <span>

#include "mmsb/types.h"

namespace mmsb {

uint64_t hash_bytes(std::span<const std::byte> bytes) noexcept;

// Incremental state hash: feed pages in increasing id order.
class StateHasher {
 public:
  StateHasher();
  ~StateHasher();
  StateHasher(const StateHasher&) = delete;
  StateHasher& operator=(const StateHasher&) = delete;
  void add_page(PageId id, std::span<const std::byte> bytes) noexcept;
  uint64_t digest() const noexcept;

 private:
  void* state_;  // XXH3_state_t, kept opaque so users need not see xxhash.h
};

}  // namespace mmsb
