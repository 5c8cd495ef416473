// Batches for the CUDA mirror: the packer that lays TLog deltas out for the
// scatter kernel (layout.h), and the CPU reference of that kernel.
//
// The packer is plain C++: it writes the blob straight into a staging buffer
// it is given (pinned host memory on the GPU path, ordinary memory on the CPU
// path), collects the ops, and at finish() groups them into segments by image
// region with a stable counting sort, writing segments and ops behind the
// blob. Everything it owns keeps its capacity: a steady stream of batches
// allocates nothing per delta.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "mmsb/cuda/layout.h"
#include "mmsb/status.h"

namespace mmsb::cuda {

// Host memory the packer writes a batch into.
class Staging {
 public:
  virtual ~Staging() = default;
  virtual std::byte* data() noexcept = 0;
  virtual size_t capacity() const noexcept = 0;
  // Grows to at least `min_capacity` bytes (geometrically), keeping the
  // first `keep` bytes. data() may move.
  virtual Status grow(size_t min_capacity, size_t keep) = 0;
};

// Staging in ordinary host memory (the CPU path; tests).
class HostStaging final : public Staging {
 public:
  std::byte* data() noexcept override { return buf_.data(); }
  size_t capacity() const noexcept override { return buf_.size(); }
  Status grow(size_t min_capacity, size_t keep) override;

 private:
  std::vector<std::byte> buf_;
};

class BatchPacker {
 public:
  explicit BatchPacker(Staging& staging) : staging_(staging) {}
  BatchPacker(const BatchPacker&) = delete;
  BatchPacker& operator=(const BatchPacker&) = delete;

  // Starts a new batch for an image of `image_bytes` bytes (the regions the
  // ops may touch).
  void reset(uint64_t image_bytes);
  // Queues `length` bytes from `bytes` for image offset `dst` with the
  // given flags (kToLive | kToSynced). Later adds win where they overlap
  // earlier ones. Fails only when staging memory cannot grow.
  Status add(uint64_t dst, const std::byte* bytes, uint64_t length, uint32_t flags) {
    // The common case inline: one region already sized, room in staging.
    const uint64_t pad = (dst - blob_) & 15;  // blob offset == dst modulo 16
    const uint64_t r = dst >> kRegionShift;
    if (length == 0 || ((dst + length - 1) >> kRegionShift) != r || r >= stamp_.size() ||
        blob_ + pad + length > cap_) [[unlikely]]
      return add_slow(dst, bytes, length, flags);
    blob_ += pad;
    std::memcpy(base_ + blob_, bytes, length);
    note_region(r);
    ops_.push_back(CopyOp{dst, blob_, static_cast<uint32_t>(length), flags});
    blob_ += length;
    return Status::OK();
  }
  // Writes segments and ops behind the blob and returns the layout. The
  // staging buffer then holds the whole batch in [0, total_bytes).
  Result<BatchLayout> finish();

  bool empty() const noexcept { return ops_.empty(); }
  uint64_t blob_bytes() const noexcept { return blob_; }
  size_t op_count() const noexcept { return ops_.size(); }

 private:
  Status add_slow(uint64_t dst, const std::byte* bytes, uint64_t length, uint32_t flags);
  Status reserve_blob(uint64_t more);
  void note_region(uint64_t r) {
    if (stamp_[r] != batch_) {
      stamp_[r] = batch_;
      count_[r] = 0;
      touched_.push_back(static_cast<uint32_t>(r));
    }
    ++count_[r];
  }

  Staging& staging_;
  std::byte* base_ = nullptr;  // staging_.data() and capacity(), cached
  uint64_t cap_ = 0;
  uint64_t blob_ = 0;          // blob bytes written so far
  std::vector<CopyOp> ops_;    // in add() order
  // Per image region: ops queued this batch, then the next free slot of the
  // region's segment. stamp_ says which batch a region's entry belongs to,
  // so nothing is cleared between batches.
  std::vector<uint32_t> count_;
  std::vector<uint32_t> stamp_;
  std::vector<uint32_t> touched_;  // regions with ops, in first-touch order
  uint32_t batch_ = 0;
};

// The scatter kernel, executed on the CPU over the same layout: segment by
// segment, op by op in segment order, and for each op the work of each of
// the warp's 32 lanes with apply_op_lane(), the kernel's own per-lane code.
// `staging` holds the batch as finish() left it. Segments run in reverse
// order, a legal order for the kernel's independent warps, so a packer that
// let two segments share a region would show up as a wrong result. Checks
// every invariant of layout.h first and returns kCorruption (naming the op)
// without writing anything if one fails. `synced` may be null when no op
// has kToSynced.
Status scatter_reference(const std::byte* staging, const BatchLayout& layout, std::byte* live,
                         std::byte* synced, uint64_t image_bytes);

}  // namespace mmsb::cuda
