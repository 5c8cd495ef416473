// The CUDA mirror's host-side layouts and the CPU references of its kernels:
// the batch packer + scatter_reference against a plain byte-array image, and
// DiffReference against the model's maximal runs and the engine's diff_into.
// These run everywhere; the kernels execute the same per-chunk steps
// (layout.h) over the same layouts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>
#include <vector>

#include "engine_model.h"
#include "mmsb/cuda/batch.h"
#include "mmsb/cuda/diff.h"
#include "mmsb/diff.h"

using namespace mmsb::cuda;
using model::Rng;
using model::Run;

namespace {

struct Layout {
  std::vector<uint64_t> offset, size;
  uint64_t image = 0;
};

// Pages at 256-aligned offsets, as the mirror lays them out.
Layout lay_out(const std::vector<uint64_t>& sizes) {
  Layout l;
  for (uint64_t s : sizes) {
    l.offset.push_back(l.image);
    l.size.push_back(s);
    l.image += (s + kPageAlign - 1) / kPageAlign * kPageAlign;
  }
  return l;
}

std::vector<CopyOp> read_ops(const HostStaging& st, const BatchLayout& L) {
  std::vector<CopyOp> ops(L.op_count);
  std::memcpy(ops.data(), const_cast<HostStaging&>(st).data() + L.ops_offset, sizeof(CopyOp) * L.op_count);
  return ops;
}

// Runs the CPU scatter of the finished batch over both images; they must
// then equal the model's.
void scatter_and_compare(HostStaging& staging, const BatchLayout& L, const Layout& l, std::vector<std::byte>& live,
                         std::vector<std::byte>& synced, const std::vector<uint8_t>& want_live,
                         const std::vector<uint8_t>& want_synced) {
  const mmsb::Status s = scatter_reference(staging.data(), L, live.data(), synced.data(), l.image);
  INFO(s.to_string());
  REQUIRE(s.ok());
  REQUIRE(model::same(live, want_live));
  REQUIRE(model::same(synced, want_synced));
}

}  // namespace

TEST_CASE("packer + scatter reference equal a byte loop, later adds winning", "[cuda][batch]") {
  Rng rng(GENERATE(1, 2, 3, 4));
  std::vector<uint64_t> sizes;
  for (int p = 0; p < 12; ++p) sizes.push_back(rng.between(1, 20000));
  sizes.push_back(15);
  sizes.push_back(4096);
  const Layout l = lay_out(sizes);
  // Both images start with garbage, so bytes no op names must stay as they were.
  std::vector<uint8_t> want_live = rng.bytes(l.image), want_synced = rng.bytes(l.image);
  std::vector<std::byte> live = model::to_bytes(want_live), synced = model::to_bytes(want_synced);
  HostStaging staging;
  // One thread, or chunks of a few adds each on three.
  const unsigned threads = GENERATE(1u, 3u);
  BatchPacker packer(staging, threads, /*min_chunk_weight=*/threads == 1 ? BatchPacker::kDefaultMinChunkWeight : 500);
  std::vector<std::vector<std::byte>> held;  // the bytes stay until finish()
  for (int batch = 0; batch < 8; ++batch) {
    packer.reset();
    held.clear();
    std::set<uint64_t> regions;
    const int adds = static_cast<int>(rng.between(1, 300));
    for (int i = 0; i < adds; ++i) {
      const size_t p = rng.below(sizes.size());
      const uint64_t max_len = rng.chance(70) ? 40 : sizes[p];  // short runs across 16-byte lines, or long ones
      const uint64_t len = rng.between(1, std::min(max_len, sizes[p]));
      const uint64_t off = rng.below(sizes[p] - len + 1);
      const std::vector<uint8_t> v = rng.bytes(len);
      const uint32_t flags = static_cast<uint32_t>(rng.between(1, 3));
      const uint64_t dst = l.offset[p] + off;
      held.push_back(model::to_bytes(v));
      packer.add(dst, held.back().data(), len, flags);
      for (uint64_t k = 0; k < len; ++k) {
        if (flags & kToLive) want_live[dst + k] = v[k];
        if (flags & kToSynced) want_synced[dst + k] = v[k];
        regions.insert((dst + k) >> kRegionShift);
      }
    }
    auto L = packer.finish(l.image);
    REQUIRE(L.ok());
    if (threads > 1 && adds > 50) REQUIRE(packer.last_chunks() > 1);
    REQUIRE(L->segment_count == regions.size());
    REQUIRE(L->op_count >= static_cast<uint32_t>(adds));
    REQUIRE(L->total_bytes <= staging.capacity());
    for (const CopyOp& op : read_ops(staging, *L)) {
      REQUIRE(op.src % 16 == op.dst % 16);
      REQUIRE((op.dst >> kRegionShift) == ((op.dst + op.length - 1) >> kRegionShift));
    }
    INFO("batch " << batch);
    scatter_and_compare(staging, *L, l, live, synced, want_live, want_synced);
  }
}

TEST_CASE("merging ops keep a kernel's change where the new value leaves the byte alone", "[cuda][batch]") {
  // Bytes from a 3-letter alphabet, so that live == synced and new == synced
  // both happen often. The model, per byte in add order: live takes the new
  // value unless a kernel changed it (live != synced) and the new value
  // equals the synced one; synced takes the new value.
  Rng rng(GENERATE(11, 12, 13));
  const Layout l = lay_out({rng.between(1, 9000), 4096, 15, rng.between(1, 20000)});
  auto letters = [&](uint64_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng.below(3));
    return v;
  };
  std::vector<uint8_t> want_live = letters(l.image), want_synced = letters(l.image);
  std::vector<std::byte> live = model::to_bytes(want_live), synced = model::to_bytes(want_synced);
  HostStaging staging;
  const unsigned threads = GENERATE(1u, 3u);
  BatchPacker packer(staging, threads, threads == 1 ? BatchPacker::kDefaultMinChunkWeight : 500);
  std::vector<std::vector<std::byte>> held;
  uint64_t kept = 0, taken = 0;
  for (int batch = 0; batch < 6; ++batch) {
    packer.reset();
    held.clear();
    const int adds = static_cast<int>(rng.between(1, 200));
    for (int i = 0; i < adds; ++i) {
      const size_t p = rng.below(l.size.size());
      const uint64_t len = rng.between(1, std::min<uint64_t>(rng.chance(50) ? 40 : 5000, l.size[p]));
      const uint64_t off = rng.below(l.size[p] - len + 1);
      const std::vector<uint8_t> v = letters(len);
      // Mostly merging ops, some plain ones between them (both kinds touch
      // the same regions, in add order).
      const uint32_t flags = rng.chance(75) ? (kToLive | kToSynced | kMerge) : static_cast<uint32_t>(rng.between(1, 3));
      const uint64_t dst = l.offset[p] + off;
      held.push_back(model::to_bytes(v));
      packer.add(dst, held.back().data(), len, flags);
      for (uint64_t k = 0; k < len; ++k) {
        uint8_t& lv = want_live[dst + k];
        uint8_t& sy = want_synced[dst + k];
        if (flags & kMerge) {
          if (lv != sy && v[k] == sy) {
            ++kept;
          } else {
            lv = v[k];
            ++taken;
          }
          sy = v[k];
          continue;
        }
        if (flags & kToLive) lv = v[k];
        if (flags & kToSynced) sy = v[k];
      }
    }
    auto L = packer.finish(l.image);
    REQUIRE(L.ok());
    INFO("batch " << batch);
    scatter_and_compare(staging, *L, l, live, synced, want_live, want_synced);
    // Kernels change some live bytes between batches.
    for (int k = 0; k < 200; ++k) want_live[rng.below(l.image)] = static_cast<uint8_t>(rng.below(3));
    live = model::to_bytes(want_live);
  }
  REQUIRE(kept > 100);  // both outcomes were exercised
  REQUIRE(taken > 100);
}

TEST_CASE("merge4 and ne_bytes4 equal a byte loop", "[cuda][batch]") {
  Rng rng(17);
  for (int i = 0; i < 20000; ++i) {
    uint32_t v = 0, live = 0, synced = 0;
    for (int b = 0; b < 4; ++b) {  // small letters: equal bytes are common
      v |= static_cast<uint32_t>(rng.below(i % 2 ? 3 : 256)) << (8 * b);
      live |= static_cast<uint32_t>(rng.below(i % 2 ? 3 : 256)) << (8 * b);
      synced |= static_cast<uint32_t>(rng.below(i % 2 ? 3 : 256)) << (8 * b);
    }
    uint32_t want_ne = 0, want_merge = 0;
    for (int b = 0; b < 4; ++b) {
      const uint32_t vb = (v >> (8 * b)) & 0xFF, lb = (live >> (8 * b)) & 0xFF, sb = (synced >> (8 * b)) & 0xFF;
      if (lb != sb) want_ne |= 0xFFu << (8 * b);
      want_merge |= (lb != sb && vb == sb ? lb : vb) << (8 * b);
    }
    INFO(std::hex << v << " " << live << " " << synced);
    REQUIRE(ne_bytes4(live, synced) == want_ne);
    REQUIRE(merge4(v, live, synced) == want_merge);
  }
}

TEST_CASE("packer: ranges cross 16-byte lines and 4 KiB regions at every phase", "[cuda][batch]") {
  // One page; every (offset mod 16, length) pair up to 48, and ranges across
  // region boundaries, each applied alone to a zero image.
  const Layout l = lay_out({3 * kRegionBytes + 50});
  HostStaging staging;
  BatchPacker packer(staging);
  for (uint64_t off : {uint64_t{0}, uint64_t{1}, uint64_t{7}, uint64_t{15}, uint64_t{16}, uint64_t{17},
                       kRegionBytes - 20, kRegionBytes - 1, kRegionBytes, 2 * kRegionBytes - 3}) {
    for (uint64_t len : {uint64_t{1}, uint64_t{2}, uint64_t{15}, uint64_t{16}, uint64_t{17}, uint64_t{31},
                         uint64_t{32}, uint64_t{33}, uint64_t{48}, kRegionBytes + 5}) {
      if (off + len > l.size[0]) continue;
      std::vector<std::byte> live(l.image), synced(l.image);
      std::vector<uint8_t> want(l.image, 0);
      std::vector<uint8_t> v(len);
      for (uint64_t k = 0; k < len; ++k) v[k] = static_cast<uint8_t>(k * 7 + 1);
      packer.reset();
      const std::vector<std::byte> bytes = model::to_bytes(v);
      packer.add(off, bytes.data(), len, kToLive);
      auto L = packer.finish(l.image);
      REQUIRE(L.ok());
      REQUIRE(scatter_reference(staging.data(), *L, live.data(), synced.data(), l.image).ok());
      for (uint64_t k = 0; k < len; ++k) want[off + k] = v[k];
      INFO("offset " << off << " length " << len);
      REQUIRE(model::same(live, want));
      REQUIRE(model::same(synced, std::vector<uint8_t>(l.image, 0)));
    }
  }
}

TEST_CASE("scatter reference refuses layouts that would make the kernel wrong", "[cuda][batch]") {
  const Layout l = lay_out({2 * kRegionBytes});
  HostStaging staging;
  BatchPacker packer(staging);
  std::vector<std::byte> live(l.image), synced(l.image);
  const std::vector<std::byte> v(100, std::byte{1});
  auto build = [&] {
    packer.reset();
    packer.add(10, v.data(), 40, kToLive);
    packer.add(30, v.data(), 40, kToLive);
    packer.add(kRegionBytes + 3, v.data(), 20, kToLive);
    auto L = packer.finish(l.image);
    REQUIRE(L.ok());
    REQUIRE(L->segment_count == 2);
    return *L;
  };
  auto op_at = [&](const BatchLayout& L, uint32_t i) {
    return reinterpret_cast<CopyOp*>(staging.data() + L.ops_offset + sizeof(CopyOp) * i);
  };
  SECTION("src and dst disagree modulo 16") {
    BatchLayout L = build();
    op_at(L, 0)->src += 1;
    const mmsb::Status s = scatter_reference(staging.data(), L, live.data(), synced.data(), l.image);
    REQUIRE(s.code() == mmsb::Code::kCorruption);
    REQUIRE(s.message().find("modulo 16") != std::string::npos);
  }
  SECTION("an op crosses a region boundary") {
    BatchLayout L = build();
    op_at(L, 2)->dst = kRegionBytes - 8;
    op_at(L, 2)->src = (op_at(L, 2)->src & ~uint64_t{15}) | 8;
    const mmsb::Status s = scatter_reference(staging.data(), L, live.data(), synced.data(), l.image);
    REQUIRE(s.code() == mmsb::Code::kCorruption);
  }
  SECTION("two segments share a region") {
    BatchLayout L = build();
    CopyOp* last = op_at(L, 2);
    last->dst = 208 + (last->src % 16);
    const mmsb::Status s = scatter_reference(staging.data(), L, live.data(), synced.data(), l.image);
    INFO(s.to_string());
    REQUIRE(s.code() == mmsb::Code::kCorruption);
    REQUIRE(s.message().find("share an image region") != std::string::npos);
  }
  SECTION("a merging op that does not write both images") {
    BatchLayout L = build();
    op_at(L, 1)->flags = kToLive | kMerge;
    const mmsb::Status s = scatter_reference(staging.data(), L, live.data(), synced.data(), l.image);
    REQUIRE(s.code() == mmsb::Code::kCorruption);
    REQUIRE(s.message().find("bad flags") != std::string::npos);
  }
  SECTION("the synced image is written but absent") {
    BatchLayout L = build();
    op_at(L, 0)->flags = kToSynced;
    const mmsb::Status s = scatter_reference(staging.data(), L, live.data(), nullptr, l.image);
    REQUIRE(s.code() == mmsb::Code::kCorruption);
  }
  REQUIRE(model::same(live, std::vector<uint8_t>(l.image, 0)));  // nothing written
}

TEST_CASE("packer: an empty batch and a reused packer", "[cuda][batch]") {
  HostStaging staging;
  BatchPacker packer(staging);
  packer.reset();
  auto L = packer.finish(1024);
  REQUIRE(L.ok());
  REQUIRE(L->op_count == 0);
  REQUIRE(L->segment_count == 0);
  std::vector<std::byte> live(1024);
  REQUIRE(scatter_reference(staging.data(), *L, live.data(), nullptr, live.size()).ok());
  // Stamps from earlier batches must not leak into later ones.
  std::vector<uint8_t> want(8192, 0);
  std::vector<std::byte> img(8192);
  for (int b = 0; b < 50; ++b) {
    packer.reset();
    const std::byte x{static_cast<uint8_t>(b + 1)};
    packer.add(static_cast<uint64_t>(b) * 100, &x, 1, kToLive);
    want[b * 100] = static_cast<uint8_t>(b + 1);
    auto Lb = packer.finish(img.size());
    REQUIRE(Lb.ok());
    REQUIRE(Lb->segment_count == 1);
    REQUIRE(scatter_reference(staging.data(), *Lb, img.data(), nullptr, img.size()).ok());
  }
  REQUIRE(model::same(img, want));
}

TEST_CASE("packer on several threads: deltas of many ranges, the same bytes rewritten across chunks",
          "[cuda][batch][threads]") {
  // Few pages, so every region gets ops from every chunk: a region's ops
  // must still run in add order (later deltas win) however the adds are cut
  // into chunks -- by the packer (one lane), or by threads that fill
  // lanes of their own (fill_lanes, cut at random deltas). And many pages,
  // so that each of the merge's ranges (one per chunk) holds many regions.
  const int seed = GENERATE(11, 12, 13, 14);
  Rng rng(seed);
  const unsigned threads = GENERATE(1u, 2u, 4u, 7u);
  const uint64_t min_weight = GENERATE(uint64_t{1}, uint64_t{3000});
  const bool lanes = GENERATE(false, true);
  const bool many_pages = seed == 14;
  std::vector<uint64_t> sizes{3 * kRegionBytes + 100, 700, 2 * kRegionBytes};
  if (many_pages) {
    sizes.clear();
    for (int p = 0; p < 90; ++p) sizes.push_back(rng.between(1, 2 * kRegionBytes));
  }
  const Layout l = lay_out(sizes);
  std::vector<uint8_t> want_live = rng.bytes(l.image), want_synced = rng.bytes(l.image);
  std::vector<std::byte> live = model::to_bytes(want_live), synced = model::to_bytes(want_synced);
  HostStaging staging;
  BatchPacker packer(staging, threads, min_weight);
  struct Held {  // one delta as a DeltaView holds it
    uint64_t dst;
    std::vector<mmsb::Range> ranges;
    std::vector<std::byte> bytes;
    uint32_t flags;
  };
  std::vector<Held> held;
  for (int batch = 0; batch < 6; ++batch) {
    packer.reset();
    held.clear();
    held.reserve(2000);
    std::set<uint64_t> regions;
    const int deltas = static_cast<int>(rng.between(1, 1500));
    for (int i = 0; i < deltas; ++i) {
      const size_t p = rng.below(l.size.size());
      Held h;
      // Sorted, disjoint ranges, as the engine's deltas are.
      uint64_t at = rng.below(64);
      while (at < l.size[p] && h.ranges.size() < 5) {
        const uint64_t len = std::min<uint64_t>(rng.between(1, rng.chance(10) ? 5000 : 48), l.size[p] - at);
        h.ranges.push_back(mmsb::Range{static_cast<uint32_t>(at), static_cast<uint32_t>(len)});
        const std::vector<uint8_t> v = rng.bytes(len);
        const std::vector<std::byte> b = model::to_bytes(v);
        h.bytes.insert(h.bytes.end(), b.begin(), b.end());
        at += len + rng.between(1, 3000);
      }
      const uint32_t flags = static_cast<uint32_t>(rng.between(1, 3));
      const uint8_t* v = reinterpret_cast<const uint8_t*>(h.bytes.data());
      for (const mmsb::Range& r : h.ranges) {
        for (uint64_t k = 0; k < r.length; ++k) {
          const uint64_t x = l.offset[p] + r.offset + k;
          if (flags & kToLive) want_live[x] = *v;
          if (flags & kToSynced) want_synced[x] = *v;
          regions.insert(x >> kRegionShift);
          ++v;
        }
      }
      h.dst = l.offset[p];
      h.flags = flags;
      held.push_back(std::move(h));
      if (!lanes) packer.add_delta(held.back().dst, held.back().ranges, held.back().bytes, flags);
    }
    struct Fill {
      const std::vector<Held>* held;
      std::vector<size_t> cut;  // lane k adds held[cut[k], cut[k + 1])
    } fill{&held, {0}};
    if (lanes) {
      REQUIRE(packer.width() == threads);
      const size_t n = rng.between(1, threads + 2);  // more lanes than threads share them
      for (size_t k = 1; k < n; ++k) fill.cut.push_back(rng.below(held.size() + 1));
      std::sort(fill.cut.begin(), fill.cut.end());
      fill.cut.push_back(held.size());
      packer.fill_lanes(
          n,
          [](void* ctx, size_t k, BatchPacker::Lane& lane) {
            const Fill& f = *static_cast<const Fill*>(ctx);
            for (size_t i = f.cut[k]; i < f.cut[k + 1]; ++i) {
              const Held& h = (*f.held)[i];
              lane.add_delta(h.dst, h.ranges, h.bytes, h.flags);
            }
          },
          &fill);
    }
    auto L = packer.finish(l.image);
    REQUIRE(L.ok());
    INFO("batch " << batch << ": " << deltas << " deltas in " << packer.last_chunks() << " chunks");
    if (lanes && fill.cut.size() > 2) REQUIRE(packer.last_chunks() == fill.cut.size() - 1);  // one per lane
    if (!lanes && min_weight == 1 && deltas >= static_cast<int>(threads)) REQUIRE(packer.last_chunks() == threads);
    REQUIRE(L->segment_count == regions.size());
    const mmsb::Status s = scatter_reference(staging.data(), *L, live.data(), synced.data(), l.image);
    INFO(s.to_string());
    REQUIRE(s.ok());
    REQUIRE(model::same(live, want_live));
    REQUIRE(model::same(synced, want_synced));
  }
}

TEST_CASE("packer threads: runs back to back each fill every lane exactly once", "[cuda][batch][threads]") {
  // The pool's threads poll for the next run before they sleep, and a thread
  // that sits one run out must not take the next run's lanes for its own:
  // count the calls of each lane over many runs of every width, 1 to
  // width + 3 lanes, with no pause in between.
  const unsigned threads = GENERATE(2u, 3u, 5u);
  HostStaging staging;
  BatchPacker packer(staging, threads);
  REQUIRE(packer.width() == threads);
  Rng rng(threads);
  std::vector<std::atomic<int>> calls(threads + 3);
  for (int run = 0; run < 3000; ++run) {
    const size_t n = rng.between(1, threads + 3);
    for (auto& c : calls) c.store(0, std::memory_order_relaxed);
    packer.fill_lanes(
        n,
        [](void* ctx, size_t k, BatchPacker::Lane&) {
          (*static_cast<std::vector<std::atomic<int>>*>(ctx))[k].fetch_add(1, std::memory_order_relaxed);
        },
        &calls);
    for (size_t k = 0; k < calls.size(); ++k) {
      const int want = k < n ? 1 : 0;
      if (calls[k].load(std::memory_order_relaxed) != want) {
        INFO("run " << run << " of " << n << " lanes on " << threads << " threads: lane " << k);
        REQUIRE(calls[k].load(std::memory_order_relaxed) == want);
      }
    }
  }
}

TEST_CASE("packer: an add outside the image is refused, naming its bytes", "[cuda][batch]") {
  HostStaging staging;
  const unsigned threads = GENERATE(1u, 3u);
  BatchPacker packer(staging, threads, 1);
  const std::vector<std::byte> v(64, std::byte{7});
  packer.reset();
  for (int i = 0; i < 10; ++i) packer.add(static_cast<uint64_t>(i) * 64, v.data(), 64, kToLive);
  packer.add(3 * kRegionBytes - 10, v.data(), 20, kToLive);  // past an image of 3 regions
  auto L = packer.finish(3 * kRegionBytes - 100);
  REQUIRE(L.status().code() == mmsb::Code::kCorruption);
  REQUIRE(L.status().message().find("[12278, 12298)") != std::string::npos);
  // The packer is fine for the next batch.
  packer.reset();
  packer.add(5, v.data(), 10, kToLive);
  L = packer.finish(64);
  REQUIRE(L.ok());
  std::vector<std::byte> img(64);
  REQUIRE(scatter_reference(staging.data(), *L, img.data(), nullptr, img.size()).ok());
  std::vector<uint8_t> want(64, 0);
  for (int k = 5; k < 15; ++k) want[k] = 7;
  REQUIRE(model::same(img, want));
}

TEST_CASE("diff reference: the model's maximal runs and diff_into's, page by page", "[cuda][diff]") {
  Rng rng(GENERATE(11, 12, 13));
  const std::vector<uint64_t> sizes = {1, 15, 16, 17, 31, 4096, kTileBytes - 1, kTileBytes, kTileBytes + 1,
                                       40000, 2 * kTileBytes + 16, 257};
  const Layout l = lay_out(sizes);
  std::vector<uint8_t> synced = rng.bytes(l.image), live = synced;
  // Padding between pages differs too: it must never show up.
  for (size_t p = 0; p < sizes.size(); ++p)
    for (uint64_t i = l.offset[p] + sizes[p]; i < (p + 1 < sizes.size() ? l.offset[p + 1] : l.image); ++i)
      live[i] = static_cast<uint8_t>(synced[i] ^ 0xFF);
  for (size_t p = 0; p < sizes.size(); ++p) {
    const uint64_t s = sizes[p], o = l.offset[p];
    auto flip = [&](uint64_t i) { live[o + i] = static_cast<uint8_t>(synced[o + i] + 1 + rng.below(255)); };
    switch (rng.below(4)) {
      case 0:  // whole page
        for (uint64_t i = 0; i < s; ++i) flip(i);
        break;
      case 1:  // edges: first and last byte, and around 16-byte and tile boundaries
        flip(0);
        flip(s - 1);
        for (uint64_t b : {uint64_t{15}, uint64_t{16}, uint64_t{kTileBytes - 1}, uint64_t{kTileBytes}})
          if (b < s) flip(b);
        break;
      default:  // random runs
        for (int r = static_cast<int>(rng.between(0, 30)); r > 0; --r) {
          const uint64_t len = rng.between(1, std::min<uint64_t>(s, rng.chance(50) ? 20 : 3000));
          const uint64_t off = rng.below(s - len + 1);
          for (uint64_t i = off; i < off + len; ++i) flip(i);
        }
    }
  }
  DiffPlan plan;
  for (size_t p = 0; p < sizes.size(); ++p) plan.add_page(l.offset[p], sizes[p]);
  DiffReference ref;
  DiffRuns runs;
  const mmsb::Status st = ref.run(reinterpret_cast<const std::byte*>(live.data()),
                                  reinterpret_cast<const std::byte*>(synced.data()), plan.tiles(), &runs);
  INFO(st.to_string());
  REQUIRE(st.ok());
  REQUIRE(runs.starts.size() == runs.ends.size());
  size_t r = 0;
  uint64_t at = 0;
  mmsb::Delta engine;
  for (size_t p = 0; p < sizes.size(); ++p) {
    const uint64_t o = l.offset[p], s = sizes[p];
    const std::vector<uint8_t> old_page(synced.begin() + o, synced.begin() + o + s);
    const std::vector<uint8_t> new_page(live.begin() + o, live.begin() + o + s);
    std::vector<Run> got;
    while (r < runs.starts.size() && runs.starts[r] < o + s) {
      REQUIRE(runs.starts[r] >= o);
      REQUIRE(runs.ends[r] <= o + s);
      got.push_back(Run{runs.starts[r] - o, runs.ends[r] - runs.starts[r]});
      ++r;
    }
    const std::vector<Run> want = model::diff_runs(old_page, new_page);
    INFO("page " << p << " of " << s << " bytes");
    REQUIRE(got == want);
    REQUIRE(mmsb::diff_into(model::to_bytes(old_page), model::to_bytes(new_page), engine).ok());
    REQUIRE(model::to_runs(engine.ranges) == got);
    const std::vector<uint8_t> want_bytes = model::gather(new_page, want);
    REQUIRE(model::to_u8(runs.bytes.subspan(at, want_bytes.size())) == want_bytes);
    at += want_bytes.size();
  }
  REQUIRE(r == runs.starts.size());
  REQUIRE(at == runs.bytes.size());
}

TEST_CASE("diff plan: tiles cover pages exactly, flags mark page edges", "[cuda][diff]") {
  DiffPlan plan;
  plan.add_page(0, 1);
  plan.add_page(256, kTileBytes);
  plan.add_page(256 + kTileBytes, 2 * kTileBytes + 5);
  const auto t = plan.tiles();
  REQUIRE(t.size() == 1 + 1 + 3);
  REQUIRE(t[0].length == 1);
  REQUIRE(t[0].flags == 0);
  REQUIRE(t[1].flags == 0);
  REQUIRE(t[2].flags == kHasNext);
  REQUIRE(t[3].flags == (kHasPrev | kHasNext));
  REQUIRE(t[4].flags == kHasPrev);
  REQUIRE(t[4].length == 5);
  REQUIRE(t[4].offset == 256 + 3 * uint64_t{kTileBytes});
  REQUIRE(plan.bytes() == 1 + kTileBytes + 2 * kTileBytes + 5);
}
