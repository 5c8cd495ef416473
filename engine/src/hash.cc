#include "mmsb/hash.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace mmsb {

uint64_t hash_bytes(std::span<const std::byte> bytes) noexcept {
  return XXH3_64bits(bytes.data(), bytes.size());
}

StateHasher::StateHasher() : state_(XXH3_createState()) { XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_)); }

StateHasher::~StateHasher() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void StateHasher::add_page(PageId id, std::span<const std::byte> bytes) noexcept {
  auto* st = static_cast<XXH3_state_t*>(state_);
  const uint64_t header[2] = {id, bytes.size()};
  XXH3_64bits_update(st, header, sizeof header);
  XXH3_64bits_update(st, bytes.data(), bytes.size());
}

uint64_t StateHasher::digest() const noexcept {
  return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_));
}

}  // namespace mmsb
