// CpuMirror: a second copy of a bus's pages that knows the epoch it is synced
// to and catches up from the bus's in-memory TLog.
//
// sync() applies every record since the mirror's epoch with the engine's own
// apply code. If the mirror fell so far behind that the ring overwrote records
// it needed (TLog kLagged), it copies the whole state instead: a mirror never
// silently misses a delta. A mirror should not outlive its bus: once the bus
// is destroyed, sync() returns kFailedPrecondition (the copy stays readable).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "mmsb/arena.h"
#include "mmsb/bus.h"

namespace mmsb {

class CpuMirror {
 public:
  // Copies the bus's state at its current epoch (also from one of its event
  // callbacks: the state after the delta that fired it).
  explicit CpuMirror(Bus& bus);
  ~CpuMirror();
  CpuMirror(const CpuMirror&) = delete;
  CpuMirror& operator=(const CpuMirror&) = delete;

  // Catches up with the bus. Returns how many deltas were applied.
  // kFailedPrecondition from one of the bus's event callbacks (which hold
  // the write lock sync() takes).
  Result<uint64_t> sync();
  Epoch synced_epoch() const noexcept { return epoch_; }
  // Full copies taken because the mirror lagged behind the ring.
  uint64_t resyncs() const noexcept { return resyncs_; }

  uint32_t page_count() const noexcept { return static_cast<uint32_t>(pages_.size()); }
  std::span<const std::byte> page_bytes(PageId id) const noexcept;
  Version page_version(PageId id) const noexcept;
  uint64_t state_hash() const;

 private:
  struct Page {
    std::byte* data;
    uint64_t size;
    Version version;
  };
  Status add_page_locked(PageId id, uint64_t size);
  Status resync_locked();

  Bus& bus_;
  BusLink link_;
  MmapArena arena_;
  std::vector<Page> pages_;
  TLog::Cursor cursor_;
  Epoch epoch_ = 0;
  uint64_t resyncs_ = 0;
  bool need_resync_ = false;  // a full copy failed: the pages are not usable
};

}  // namespace mmsb
