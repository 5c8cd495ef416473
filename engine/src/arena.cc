#include "mmsb/arena.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace mmsb {
namespace {

Result<std::byte*> map_anonymous(size_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (p == MAP_FAILED)
    return Status(Code::kResourceExhausted,
                  "mmap of " + std::to_string(size) + " bytes failed: " + std::strerror(errno));
  return static_cast<std::byte*>(p);
}

}  // namespace

MmapArena::MmapArena(size_t chunk_size, bool huge_pages)
    : chunk_size_(chunk_size < 4096 ? 4096 : chunk_size), huge_pages_(huge_pages) {}

MmapArena::~MmapArena() {
  for (const Mapping& m : mappings_) ::munmap(m.base, m.size);
}

Result<std::byte*> MmapArena::allocate(size_t size) {
  if (size == 0) size = 1;
  const size_t rounded = (size + kAlignment - 1) & ~(kAlignment - 1);
  std::lock_guard<std::mutex> lock(mu_);
  if (rounded > chunk_size_ / 4) {
    // Big blocks get a mapping of their own, so they waste no chunk space.
    const size_t map_size = (rounded + 4095) & ~size_t{4095};
    Result<std::byte*> p = map_anonymous(map_size);
    if (!p.ok()) return p;
    mappings_.push_back({*p, map_size});
    mapped_ += map_size;
    return p;
  }
  if (static_cast<size_t>(end_ - cur_) < rounded) {
    Result<std::byte*> p = map_anonymous(chunk_size_);
    if (!p.ok()) return p;
    // Advice only: where THP is off, the chunk simply keeps 4 KiB pages.
    if (huge_pages_) (void)::madvise(*p, chunk_size_, MADV_HUGEPAGE);
    mappings_.push_back({*p, chunk_size_});
    mapped_ += chunk_size_;
    cur_ = *p;
    end_ = *p + chunk_size_;
  }
  std::byte* block = cur_;
  cur_ += rounded;
  return block;
}

size_t MmapArena::mapped_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mapped_;
}

}  // namespace mmsb
