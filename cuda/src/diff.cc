#include "mmsb/cuda/diff.h"

#include <bit>
#include <string>

namespace mmsb::cuda {

void DiffPlan::add_page(uint64_t offset, uint64_t size) {
  for (uint64_t at = 0; at < size; at += kTileBytes) {
    const uint64_t n = size - at < kTileBytes ? size - at : kTileBytes;
    uint32_t flags = 0;
    if (at > 0) flags |= kHasPrev;
    if (at + n < size) flags |= kHasNext;
    tiles_.push_back(DiffTile{offset + at, static_cast<uint32_t>(n), flags});
  }
  bytes_ += size;
}

Status DiffReference::run(const std::byte* live_bytes, const std::byte* synced_bytes,
                          std::span<const DiffTile> tiles, DiffRuns* out) {
  const auto* live = reinterpret_cast<const uint8_t*>(live_bytes);
  const auto* synced = reinterpret_cast<const uint8_t*>(synced_bytes);
  for (size_t t = 0; t < tiles.size(); ++t) {
    if (tiles[t].length == 0 || tiles[t].length > kTileBytes || tiles[t].offset % 16 != 0)
      return Status(Code::kInvalidArgument, "diff tile " + std::to_string(t) + " is malformed");
  }
  // count: one "block" per tile; a thread's chunks are c = step * 4096 + 16 * thread.
  counts_.assign(tiles.size(), 0);
  for (size_t t = 0; t < tiles.size(); ++t) {
    uint64_t packed = 0;
    for (uint32_t c = 0; c < tiles[t].length; c += 16) {
      const ChunkDiff d = diff_chunk(tiles[t], c, live, synced);
      packed += pack_counts(std::popcount(d.diff), std::popcount(d.starts), std::popcount(d.ends));
    }
    counts_[t] = packed;
  }
  // scan: exclusive prefixes over tiles, and totals.
  prefix_.resize(tiles.size());
  DiffCounts run;
  for (size_t t = 0; t < tiles.size(); ++t) {
    prefix_[t] = run;
    run.bytes += packed_bytes(counts_[t]);
    run.starts += packed_starts(counts_[t]);
    run.ends += packed_ends(counts_[t]);
  }
  totals_ = run;
  if (run.starts != run.ends)
    return Status(Code::kCorruption, "diff: " + std::to_string(run.starts) + " run starts but " +
                                         std::to_string(run.ends) + " run ends (tiles do not cover whole pages)");
  // emit: each item at its tile's prefix plus its rank in the tile.
  starts_.resize(run.starts);
  ends_.resize(run.ends);
  bytes_.resize(run.bytes);
  for (size_t t = 0; t < tiles.size(); ++t) {
    if (counts_[t] == 0) continue;
    DiffCounts at = prefix_[t];
    for (uint32_t c = 0; c < tiles[t].length; c += 16) {
      const ChunkDiff d = diff_chunk(tiles[t], c, live, synced);
      const uint64_t base = tiles[t].offset + c;
      for (uint32_t i = 0; i < 16; ++i) {
        const uint32_t bit = 1u << i;
        if (d.starts & bit) starts_[at.starts++] = base + i;
        if (d.ends & bit) ends_[at.ends++] = base + i + 1;
        if (d.diff & bit) bytes_[at.bytes++] = static_cast<std::byte>(d.live.byte(i));
      }
    }
  }
  *out = DiffRuns{starts_, ends_, bytes_};
  return Status::OK();
}

}  // namespace mmsb::cuda
