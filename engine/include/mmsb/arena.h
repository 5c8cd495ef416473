// Page memory. An Arena hands out blocks that never move and stay valid for
// the arena's lifetime, so a page's bytes keep their address forever.
//
// MmapArena maps anonymous memory in chunks. A named shared-memory arena
// (other processes attach to it) implements the same interface.
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

#include "mmsb/status.h"

namespace mmsb {

class Arena {
 public:
  virtual ~Arena() = default;
  // A zero-filled block of `size` bytes aligned to `kAlignment`.
  virtual Result<std::byte*> allocate(size_t size) = 0;
  // Bytes of address space mapped so far.
  virtual size_t mapped_bytes() const = 0;

  static constexpr size_t kAlignment = 64;  // one cache line
};

class MmapArena final : public Arena {
 public:
  // Blocks are carved from chunks of `chunk_size` bytes; a block larger than
  // a chunk gets a mapping of its own.
  // With huge_pages, chunks are advised to use transparent huge pages
  // (fewer TLB misses on large states; a touched chunk commits 2 MiB at a time).
  explicit MmapArena(size_t chunk_size = size_t{64} << 20, bool huge_pages = true);
  ~MmapArena() override;
  MmapArena(const MmapArena&) = delete;
  MmapArena& operator=(const MmapArena&) = delete;

  Result<std::byte*> allocate(size_t size) override;
  size_t mapped_bytes() const override;

 private:
  struct Mapping {
    std::byte* base;
    size_t size;
  };
  mutable std::mutex mu_;
  size_t chunk_size_;
  bool huge_pages_;
  std::vector<Mapping> mappings_;
  std::byte* cur_ = nullptr;  // free space in the current chunk: [cur_, end_)
  std::byte* end_ = nullptr;
  size_t mapped_ = 0;
};

}  // namespace mmsb
