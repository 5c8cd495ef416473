// IndexBuilder: builds an Index from the delta batches its caller reads, so a
// caller that walks the frames for its own checks (verify) decodes and checks
// each delta frame once. Index::build is the plain walk over the recording's
// delta frames fed to it.
//
// Use: start(); add() for the delta frames of rec.delta_frames() in order,
// each batch opened by Recording::read_deltas and passed by
// Recording::check_deltas; finish(). After an error from start() or add()
// the builder is spent: call nothing else.
#pragma once

#include <memory>
#include <vector>

#include "mmsb/format.h"
#include "mmsb/replay/index.h"

namespace mmsb::replay {

class IndexBuilder {
 public:
  // `rec` must outlive the builder and the Index.
  IndexBuilder(const Recording& rec, IndexOptions options);
  ~IndexBuilder();
  IndexBuilder(const IndexBuilder&) = delete;
  IndexBuilder& operator=(const IndexBuilder&) = delete;

  // Lays out the state image and loads the start state (for a recording
  // that began past epoch 0 that reads its first complete snapshot and the
  // delta frames written while it was taken).
  Status start();
  // Appends the deltas of the next delta frame and applies them, taking
  // checkpoints; reports progress and honours IndexOptions::cancel.
  Status add(const format::BatchReader& batch);
  // `damage`: why no more frames were added (OK: every delta frame was).
  // kCorruption if, without damage, the deltas fall short of the recording's
  // count.
  Result<std::unique_ptr<Index>> finish(Status damage);

 private:
  Status add_checkpoint(Epoch epoch);
  Status load_start_state();

  const Recording& rec_;
  const IndexOptions options_;
  std::unique_ptr<Index> ix_;
  std::byte* image_ = nullptr;  // the running state: after the last delta added (null: no checkpoints to take)
  // Checkpoints: at most slots_ of them (checkpoint 0 included); the next
  // comes after ix_->interval_ deltas or interval_bytes_ of delta bytes.
  uint64_t slots_ = 1;
  uint64_t interval_bytes_ = 0;
  uint64_t since_checkpoint_ = 0;  // deltas applied since the last checkpoint
  uint64_t bytes_since_ = 0;       // their bytes
  std::vector<uint32_t> page_counts_;  // page -> deltas added
};

}  // namespace mmsb::replay
