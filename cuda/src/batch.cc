#include "mmsb/cuda/batch.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

namespace mmsb::cuda {
namespace {

constexpr uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

std::string op_name(uint64_t i, const CopyOp& op) {
  return "op " + std::to_string(i) + " (dst " + std::to_string(op.dst) + ", src " + std::to_string(op.src) +
         ", length " + std::to_string(op.length) + ", flags " + std::to_string(op.flags) + ")";
}

}  // namespace

Status HostStaging::grow(size_t min_capacity, size_t keep) {
  if (min_capacity <= buf_.size()) return Status::OK();
  (void)keep;  // resize keeps every byte
  try {
    buf_.resize(std::max(min_capacity, buf_.size() * 2));
  } catch (const std::bad_alloc&) {
    return Status(Code::kResourceExhausted,
                  "CPU mirror: cannot allocate " + std::to_string(min_capacity) + " bytes of staging memory");
  }
  return Status::OK();
}

void BatchPacker::reset(uint64_t image_bytes) {
  if (++batch_ == 0) {  // the stamps wrapped: forget them all
    std::fill(stamp_.begin(), stamp_.end(), 0);
    batch_ = 1;
  }
  blob_ = 0;
  base_ = staging_.data();
  cap_ = staging_.capacity();
  ops_.clear();
  touched_.clear();
  const uint64_t regions = (image_bytes + kRegionBytes - 1) >> kRegionShift;
  if (stamp_.size() < regions) {
    stamp_.resize(regions, 0);
    count_.resize(regions, 0);
  }
}

Status BatchPacker::reserve_blob(uint64_t more) {
  if (blob_ + more <= cap_) return Status::OK();
  Status s = staging_.grow(blob_ + more, blob_);
  base_ = staging_.data();
  cap_ = staging_.capacity();
  return s;
}

Status BatchPacker::add_slow(uint64_t dst, const std::byte* bytes, uint64_t length, uint32_t flags) {
  if (length == 0) return Status::OK();
  // Place the bytes so that blob offset and image offset agree modulo 16.
  const uint64_t pad = (dst - blob_) & 15;
  if (Status s = reserve_blob(pad + length); !s.ok()) return s;
  blob_ += pad;
  std::memcpy(base_ + blob_, bytes, length);
  uint64_t d = dst, src = blob_, left = length;
  blob_ += length;
  while (left > 0) {  // one op per image region the range touches
    const uint64_t n = std::min(left, kRegionBytes - (d & (kRegionBytes - 1)));
    const uint64_t r = d >> kRegionShift;
    if (r >= stamp_.size()) {  // a page created during this batch
      stamp_.resize(std::max<uint64_t>(r + 1, stamp_.size() * 2), 0);
      count_.resize(stamp_.size(), 0);
    }
    note_region(r);
    ops_.push_back(CopyOp{d, src, static_cast<uint32_t>(n), flags});
    d += n;
    src += n;
    left -= n;
  }
  return Status::OK();
}

Result<BatchLayout> BatchPacker::finish() {
  if (ops_.size() > std::numeric_limits<uint32_t>::max() || touched_.size() > std::numeric_limits<uint32_t>::max())
    return Status(Code::kResourceExhausted, "mirror batch of " + std::to_string(ops_.size()) +
                                                " copy ops is too large (at most 2^32 - 1); sync more often");
  BatchLayout L;
  L.blob_bytes = blob_;
  L.segment_count = static_cast<uint32_t>(touched_.size());
  L.op_count = static_cast<uint32_t>(ops_.size());
  L.segments_offset = align_up(blob_, 256);
  L.ops_offset = align_up(L.segments_offset + sizeof(Segment) * L.segment_count, 256);
  L.total_bytes = L.ops_offset + sizeof(CopyOp) * L.op_count;
  if (L.total_bytes > cap_) {
    Status s = staging_.grow(L.total_bytes, blob_);
    base_ = staging_.data();
    cap_ = staging_.capacity();
    if (!s.ok()) return s;
  }
  std::byte* base = base_;
  // Stable counting sort by region: segments in first-touch order, each
  // segment's ops in add() order. count_[r] becomes region r's write cursor.
  uint32_t first = 0;
  std::byte* seg_out = base + L.segments_offset;
  for (uint32_t r : touched_) {
    const Segment seg{first, count_[r]};
    std::memcpy(seg_out, &seg, sizeof seg);
    seg_out += sizeof seg;
    count_[r] = first;
    first += seg.count;
  }
  std::byte* ops_out = base + L.ops_offset;
  for (const CopyOp& op : ops_) {
    const uint32_t pos = count_[op.dst >> kRegionShift]++;
    std::memcpy(ops_out + uint64_t{pos} * sizeof(CopyOp), &op, sizeof op);
  }
  return L;
}

Status scatter_reference(const std::byte* staging, const BatchLayout& L, std::byte* live,
                         std::byte* synced, uint64_t image_bytes) {
  auto bad = [](const std::string& what) {
    return Status(Code::kCorruption, "scatter batch layout: " + what);
  };
  if (L.segments_offset < L.blob_bytes || L.segments_offset % 8 != 0 ||
      L.ops_offset < L.segments_offset + sizeof(Segment) * L.segment_count || L.ops_offset % 8 != 0 ||
      L.total_bytes < L.ops_offset + sizeof(CopyOp) * L.op_count)
    return bad("sections overlap or are misaligned");
  std::vector<Segment> segs(L.segment_count);
  if (!segs.empty()) std::memcpy(segs.data(), staging + L.segments_offset, sizeof(Segment) * segs.size());
  std::vector<CopyOp> ops(L.op_count);
  if (!ops.empty()) std::memcpy(ops.data(), staging + L.ops_offset, sizeof(CopyOp) * ops.size());

  // Invariants: segments tile the op array; every op sits in one region,
  // is 16-aligned consistently and stays inside blob and image; the ops of
  // a segment share their region and no two segments share one.
  std::vector<uint64_t> regions;
  uint64_t next = 0;
  for (size_t s = 0; s < segs.size(); ++s) {
    if (segs[s].first != next || segs[s].count == 0)
      return bad("segment " + std::to_string(s) + " does not start where the previous one ended");
    next += segs[s].count;
    if (next > ops.size()) return bad("segment " + std::to_string(s) + " runs past the ops");
    const uint64_t region = ops[segs[s].first].dst >> kRegionShift;
    regions.push_back(region);
    for (uint64_t i = segs[s].first; i < next; ++i) {
      const CopyOp& op = ops[i];
      if (op.length == 0 || op.length > kRegionBytes) return bad(op_name(i, op) + ": bad length");
      if ((op.dst >> kRegionShift) != ((op.dst + op.length - 1) >> kRegionShift))
        return bad(op_name(i, op) + ": crosses a region boundary");
      if ((op.dst >> kRegionShift) != region)
        return bad(op_name(i, op) + ": not in its segment's region " + std::to_string(region));
      if (op.src % 16 != op.dst % 16) return bad(op_name(i, op) + ": src and dst disagree modulo 16");
      if (op.src + op.length > L.blob_bytes) return bad(op_name(i, op) + ": past the blob");
      if (op.dst + op.length > image_bytes) return bad(op_name(i, op) + ": past the image");
      if (op.flags == 0 || (op.flags & ~(kToLive | kToSynced)) != 0)
        return bad(op_name(i, op) + ": bad flags");
      if ((op.flags & kToSynced) && synced == nullptr)
        return bad(op_name(i, op) + ": writes the synced image, which does not exist");
    }
  }
  if (next != ops.size()) return bad("ops outside every segment");
  std::sort(regions.begin(), regions.end());
  if (std::adjacent_find(regions.begin(), regions.end()) != regions.end())
    return bad("two segments share an image region (their warps would race)");

  const auto* blob = reinterpret_cast<const uint8_t*>(staging);
  auto* lv = reinterpret_cast<uint8_t*>(live);
  auto* sy = reinterpret_cast<uint8_t*>(synced);
  for (size_t s = segs.size(); s-- > 0;) {
    for (uint64_t i = segs[s].first; i < uint64_t{segs[s].first} + segs[s].count; ++i) {
      for (uint32_t lane = 0; lane < 32; ++lane) apply_op_lane(ops[i], lane, blob, lv, sy);
    }
  }
  return Status::OK();
}

}  // namespace mmsb::cuda
