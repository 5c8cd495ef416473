// State: the pages of a recording materialized at one epoch.
//
// seek() moves forward by applying only the deltas in between, and backward
// (or far forward) by starting again from the nearest complete snapshot at or
// before the target, never from the start when a snapshot is closer. Deltas
// are applied with the engine's own validate() and apply_unchecked(), the code
// that applied them live.
#pragma once

#include <span>
#include <vector>

#include "mmsb/arena.h"
#include "mmsb/format.h"
#include "mmsb/replay/recording.h"

namespace mmsb::replay {

class State {
 public:
  explicit State(const Recording& rec);

  // kOutOfRange outside [rec.start_epoch(), rec.last_epoch()];
  // kCorruption (with file and offset) if a frame on the way is bad.
  Status seek(Epoch epoch);
  // Replays from the recording's beginning (all zeros, or its first complete
  // snapshot when it began past epoch 0) to `epoch`, using no later snapshot:
  // a full replay, e.g. to check the snapshots or to time one.
  Status replay_from_start(Epoch epoch);
  Epoch epoch() const noexcept { return epoch_; }
  bool valid() const noexcept { return valid_; }

  // Pages that exist at epoch(): ids 0 .. page_count()-1.
  uint32_t page_count() const noexcept;
  std::span<const std::byte> page(PageId id) const noexcept;
  Version version(PageId id) const noexcept;
  uint64_t state_hash() const;
  // Deltas applied by seeks so far (for progress and benchmarks).
  uint64_t deltas_applied() const noexcept { return applied_; }

 private:
  struct Page {
    std::byte* data;
    uint64_t size;
    Version version;
    Epoch image_epoch;  // deltas up to this epoch are in the image
  };
  Status seek_from(Epoch target, bool latest_snapshot);
  Status reset_to_start();
  Status load_snapshot(const SnapshotInfo& s);
  Status apply(Epoch from, Epoch to);  // deltas with from < epoch <= to

  const Recording& rec_;
  MmapArena arena_;
  std::vector<Page> pages_;
  Epoch epoch_ = 0;
  bool valid_ = false;
  uint64_t applied_ = 0;
  std::vector<std::byte> raw_;
  format::BatchReader batch_;
};

}  // namespace mmsb::replay
