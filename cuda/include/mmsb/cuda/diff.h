// On-device diff for the CUDA mirror: the tile plan (host side) and the CPU
// reference of the diff kernels.
//
// The device runs three kernels over a plan's tiles (layout.h):
//   count  one block per tile: the tile's differing bytes, run starts and
//          run ends (diff_chunk() on every 16-byte chunk);
//   scan   exclusive prefix sums of the three counts over the tiles, and
//          their totals (which the host reads to size the output);
//   emit   one block per tile that has differing bytes: each run start and
//          run end goes to its rank in the start/end arrays, each differing
//          byte (its live value) to its rank in the byte array.
// The k-th start pairs with the k-th end: runs never span pages, and ranks
// follow tile order, which is image order. Only the three arrays come back
// to the host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "mmsb/cuda/layout.h"
#include "mmsb/status.h"

namespace mmsb::cuda {

// The pages of one diff, cut into tiles. Reused: clear() keeps capacity.
class DiffPlan {
 public:
  void clear() noexcept {
    tiles_.clear();
    bytes_ = 0;
  }
  // A page at image offset `offset` (a multiple of kPageAlign) of `size`
  // bytes. Pages must be added in increasing offset order.
  void add_page(uint64_t offset, uint64_t size);
  std::span<const DiffTile> tiles() const noexcept { return tiles_; }
  uint64_t bytes() const noexcept { return bytes_; }  // page bytes compared

 private:
  std::vector<DiffTile> tiles_;
  uint64_t bytes_ = 0;
};

// What a diff returns to the host: the runs of differing bytes as image
// offsets [starts[i], ends[i]), and the new (live) values of all of them,
// run after run. Views into memory owned by whoever ran the diff.
struct DiffRuns {
  std::span<const uint64_t> starts;
  std::span<const uint64_t> ends;
  std::span<const std::byte> bytes;
};

// The three diff kernels run on the CPU, step for step: diff_chunk() per
// chunk, a sequential scan, and an emit pass that writes each item at
// tile prefix + its rank inside the tile, as the kernel's block scan does.
class DiffReference {
 public:
  // Compares `live` with `synced` over the tiles. *out views this object's
  // buffers until the next run().
  Status run(const std::byte* live, const std::byte* synced, std::span<const DiffTile> tiles,
             DiffRuns* out);
  // The per-tile packed counts and prefixes of the last run (for tests).
  std::span<const uint64_t> tile_counts() const noexcept { return counts_; }
  const DiffCounts& totals() const noexcept { return totals_; }

 private:
  std::vector<uint64_t> counts_;
  std::vector<DiffCounts> prefix_;
  DiffCounts totals_;
  std::vector<uint64_t> starts_, ends_;
  std::vector<std::byte> bytes_;
};

}  // namespace mmsb::cuda
