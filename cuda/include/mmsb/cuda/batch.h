// Batches for the CUDA mirror: the packer that lays TLog deltas out for the
// scatter kernel (layout.h), and the CPU reference of that kernel.
//
// The packer is plain C++: it writes the batch straight into a staging buffer
// it is given (pinned host memory on the GPU path, ordinary memory on the CPU
// path): the blob, then the ops grouped into segments by image region.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "mmsb/cuda/layout.h"
#include "mmsb/status.h"
#include "mmsb/types.h"

namespace mmsb::cuda {

// The CPUs this thread may run on (its affinity mask: taskset, cpusets), or
// the hardware threads where that cannot be read; at least 1. CPU quotas
// (cgroup cpu.max) are not counted.
unsigned usable_cpus() noexcept;

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

// The packer. Adding is cheap: add() and add_delta() only note where the
// bytes are (they are read at finish(), so they must stay valid and
// unchanged until then). The adds of a batch sit in one lane, or in several
// lanes that threads fill at once (fill_lanes(): lane k's adds come after
// lane k-1's). finish() packs chunks of the adds -- the lanes, or pieces of
// a single lane -- in parallel on the packer's threads:
//   1. each chunk copies its bytes into its own stretch of the blob, sized
//      from the adds' bound on their padded bytes, and collects its ops and
//      its per-region op counts;
//   2. a merge, in parallel over ranges of image regions, sizes each
//      region's segment and gives each chunk its first slot in it
//      (segments by range, in first-touch order within one); then each
//      chunk writes its ops into their places: a stable counting sort by
//      region.
// Ops of one region keep add() order across chunks, so later adds win.
// Everything the packer owns keeps its capacity: a steady stream of batches
// allocates nothing per delta.
class TaskPool;

class BatchPacker {
  struct Job;

 public:
  // The adds of one lane, in order. A cache line each: lanes fill side by
  // side.
  class alignas(64) Lane {
   public:
    // Queues `length` bytes at `bytes` for image offset `dst` with the
    // given flags (kToLive | kToSynced). Later adds win where they overlap
    // earlier ones.
    void add(uint64_t dst, const std::byte* bytes, uint64_t length, uint32_t flags) {
      bound_ += length + 15;
      jobs_.push_back(Job{dst, bytes, nullptr, length, flags, bound_});
    }
    // Queues a delta's ranges (offsets relative to `dst`) with their bytes
    // back to back in `bytes`, as a DeltaView holds them.
    void add_delta(uint64_t dst, std::span<const Range> ranges, std::span<const std::byte> bytes, uint32_t flags) {
      bound_ += bytes.size() + 15 * ranges.size();
      jobs_.push_back(Job{dst, bytes.data(), ranges.data(), ranges.size(), flags, bound_});
    }

   private:
    friend class BatchPacker;
    std::vector<Job> jobs_;
    uint64_t bound_ = 0;  // bound_end of the last job
    bool no_memory_ = false;  // filling it ran out of memory
  };

  // Batches weighing less than `min_chunk_weight` (bytes, plus 64 per add)
  // per thread use fewer threads; `threads` 1 packs on the caller's thread.
  static constexpr uint64_t kDefaultMinChunkWeight = uint64_t{1} << 18;
  explicit BatchPacker(Staging& staging, unsigned threads = 1,
                       uint64_t min_chunk_weight = kDefaultMinChunkWeight);
  ~BatchPacker();
  BatchPacker(const BatchPacker&) = delete;
  BatchPacker& operator=(const BatchPacker&) = delete;

  // Starts a new batch (one empty lane).
  void reset() noexcept;
  // Adds to the batch's single lane.
  void add(uint64_t dst, const std::byte* bytes, uint64_t length, uint32_t flags) {
    lanes_[0].add(dst, bytes, length, flags);
  }
  void add_delta(uint64_t dst, std::span<const Range> ranges, std::span<const std::byte> bytes, uint32_t flags) {
    lanes_[0].add_delta(dst, ranges, bytes, flags);
  }
  // Threads that can work at once, the caller's included (starts them).
  size_t width();
  // Starts a new batch of n >= 1 lanes and fills them at once: fill(ctx,
  // k, lane k) on the packer's threads (lane 0 on the caller's; more lanes
  // than width() share threads). fill must not throw but for std::bad_alloc
  // from the lane, which finish() then reports.
  void fill_lanes(size_t n, void (*fill)(void* ctx, size_t k, Lane& lane), void* ctx);
  // Lays the batch out for an image of `image_bytes` bytes and returns the
  // layout; the staging buffer then holds it in [0, total_bytes). Fails
  // when memory cannot grow, or with kCorruption (naming the bytes) when an
  // add lies outside the image.
  Result<BatchLayout> finish(uint64_t image_bytes);

  bool empty() const noexcept;
  // Chunks the last finish() packed (1: on the caller's thread alone).
  size_t last_chunks() const noexcept { return chunk_count_; }

 private:
  // One add: a single range of `n` bytes at dst (ranges == nullptr), or a
  // delta of `n` ranges relative to dst.
  struct Job {
    uint64_t dst;
    const std::byte* bytes;
    const Range* ranges;
    uint64_t n;
    uint32_t flags;
    // Blob bytes the lane needs up to and including this job, at most: the
    // bytes and 15 of padding per range.
    uint64_t bound_end;
  };
  // One chunk of a lane's jobs. During a pass only the thread running the
  // chunk touches it; between passes, only the caller. Cache-line aligned:
  // chunks are packed side by side.
  struct alignas(64) Chunk {
    const Lane* lane = nullptr;
    size_t first = 0, end = 0;  // jobs [first, end) of the lane
    uint64_t blob_at = 0;       // its blob stretch starts here (16-aligned)
    uint64_t blob_end = 0;      // pass 1: ... and its bytes end here
    // pass 1: its ops, in add() order: [0, op_count) of an array of
    // op_capacity (not a vector: filling it must not zero it first).
    std::unique_ptr<CopyOp[]> ops;
    uint64_t op_count = 0, op_capacity = 0;
    Status error;  // pass 1: an add outside the image, or no memory
    // Per region: pass 1 the chunk's ops there; from the merge on, its next
    // slot within the region's segment. stamp says which batch an entry is
    // from, so nothing is cleared between batches.
    std::vector<uint32_t> count, stamp;
    // The regions it touched, by merge range: range b's in first-touch
    // order at [b * range_regions_, + fill[b]).
    std::vector<uint32_t> touched, fill;
  };
  // One range of regions in the merge: [b * range_regions_, + range_regions_).
  struct MergeRange {
    uint64_t segments = 0, ops = 0;             // the batch's there
    uint64_t first_segment = 0, first_op = 0;   // where they start
  };
  void copy(Chunk& c) noexcept;           // pass 1
  void count_range(size_t b) noexcept;    // the merge: segment sizes, chunks' slots
  void lay_out_range(size_t b) noexcept;  // ... the segments, their first ops
  void place(Chunk& c) const noexcept;    // pass 2
  void run(void (*pass)(BatchPacker&, Chunk&));  // a pass over this batch's chunks
  // task(ctx, i) for i in [0, n), on the pool when there is one.
  void each(size_t n, void (*task)(void*, size_t), void* ctx);

  Staging& staging_;
  const unsigned threads_;
  const uint64_t min_chunk_weight_;
  std::unique_ptr<TaskPool> pool_;  // threads_ - 1 workers, started on first use
  std::vector<Lane> lanes_;         // the first lane_count_ are this batch's
  size_t lane_count_ = 1;
  std::vector<Chunk> chunks_;       // the first chunk_count_ are this batch's
  size_t chunk_count_ = 0;
  uint64_t image_bytes_ = 0;        // this batch's image
  std::byte* base_ = nullptr;       // staging, during the passes
  uint64_t segments_offset_ = 0, ops_offset_ = 0;
  // Per region: the batch's ops there, then its segment's first op.
  std::vector<uint32_t> count_, stamp_;
  // The batch's regions, range b's at [b * range_regions_, + segments).
  std::vector<uint32_t> touched_;
  uint64_t range_regions_ = 1;  // regions per merge range (one range per chunk)
  std::vector<MergeRange> ranges_;
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
