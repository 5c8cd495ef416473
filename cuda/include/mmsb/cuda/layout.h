// The byte layouts the CUDA kernels work on, and the per-chunk steps they
// take. This header is compiled by both g++ (the packer, the CPU path and the
// CPU references of the kernels) and nvcc (the kernels), so the GPU and the
// CPU execute the very same steps over the very same layout.
//
// Images. The mirror keeps every page at a fixed byte offset (a multiple of
// kPageAlign) in one contiguous *image*: the live image, which kernels read
// and write, and, for pages tracked for writeback, the synced image, which
// holds the page as of the mirror's last sync (same offsets). Page slots are
// padded to kPageAlign, so a 16-byte access that starts inside a page never
// leaves the image.
//
// Batched apply. A batch is built in one staging buffer and copied to the
// device in one piece:
//   [0, blob_bytes)                        the blob: new bytes of every range
//   [segments_offset, + 8 * segment_count) Segment[]
//   [ops_offset, + 24 * op_count)          CopyOp[]
// A CopyOp copies `length` bytes from blob[src] to image[dst] (the live
// image, the synced one, or both). A *merging* op (kMerge, with kToLive |
// kToSynced) writes the synced image as a plain one does but keeps each live
// byte a kernel changed (live != synced) where the new value equals the old
// synced one: the device's change survives unless the bus changed that byte
// too. The mirror uses it to ship a tracked page whole (mirror.h). Its
// invariants:
//   - 1 <= length and the op stays inside one kRegionBytes-aligned region of
//     the image (the packer splits ranges at region boundaries);
//   - src % 16 == dst % 16, so both sides of every full 16-byte chunk are
//     16-byte aligned (the packer pads the blob to get this);
//   - every op of one region lies in exactly one Segment, in batch (epoch)
//     order. The kernel gives each segment to one warp, which applies the
//     segment's ops one after the other: later deltas win where ranges of one
//     batch overlap, and segments never share a byte, so warps never race.
//
// On-device diff. The pages to compare are cut into DiffTiles of at most
// kTileBytes (one thread block each; a tile never spans two pages). Each
// thread compares 16-byte chunks of live vs synced and derives three 16-bit
// masks: bytes that differ, bytes that start a run of differing bytes, bytes
// that end one. Run boundaries are the engine's (mmsb::diff_into): maximal
// runs of differing bytes, never crossing a page boundary.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define MMSB_HD __host__ __device__ __forceinline__
#else
#define MMSB_HD inline
#endif

namespace mmsb::cuda {

// ---- images ----
inline constexpr uint64_t kPageAlign = 256;  // page offsets and slot sizes in the image
inline constexpr uint32_t kRegionShift = 12;
inline constexpr uint64_t kRegionBytes = uint64_t{1} << kRegionShift;  // 4 KiB

// ---- batched apply ----
inline constexpr uint32_t kToLive = 1;    // CopyOp::flags: write the live image
inline constexpr uint32_t kToSynced = 2;  // ... and/or the synced image
inline constexpr uint32_t kMerge = 4;     // ... keeping device changes (needs both)

struct CopyOp {
  uint64_t dst;     // image offset of the first byte
  uint64_t src;     // blob offset of the first byte; src % 16 == dst % 16
  uint32_t length;  // 1 .. kRegionBytes, inside one region
  uint32_t flags;   // kToLive | kToSynced, or kToLive | kToSynced | kMerge
};
static_assert(sizeof(CopyOp) == 24, "CopyOp is part of the device layout");

struct Segment {
  uint32_t first;  // index of the segment's first op
  uint32_t count;  // ops, in batch order
};
static_assert(sizeof(Segment) == 8, "Segment is part of the device layout");

struct BatchLayout {
  uint64_t blob_bytes = 0;
  uint64_t segments_offset = 0;
  uint64_t ops_offset = 0;
  uint64_t total_bytes = 0;  // what the host-to-device copy moves
  uint32_t segment_count = 0;
  uint32_t op_count = 0;
};

// ---- on-device diff ----
inline constexpr uint32_t kDiffThreads = 256;                         // threads per tile
inline constexpr uint32_t kTileBytes = 16384;                         // bytes per tile (at most)
inline constexpr uint32_t kTileSteps = kTileBytes / (16 * kDiffThreads);  // chunks per thread
inline constexpr uint32_t kHasPrev = 1;  // DiffTile::flags: the page goes on before the tile
inline constexpr uint32_t kHasNext = 2;  // ... and after it

struct DiffTile {
  uint64_t offset;  // image offset of the tile's first byte (a multiple of 16)
  uint32_t length;  // 1 .. kTileBytes
  uint32_t flags;   // kHasPrev | kHasNext
};
static_assert(sizeof(DiffTile) == 16, "DiffTile is part of the device layout");

// Exclusive prefix (or total) of the three counts over tiles.
struct DiffCounts {
  uint64_t bytes = 0;   // differing bytes
  uint64_t starts = 0;  // runs that start
  uint64_t ends = 0;    // runs that end
};

// A tile's three counts packed in one word (each fits 21 bits: a tile holds
// at most kTileBytes = 2^14 bytes), so one block scan ranks all three.
MMSB_HD uint64_t pack_counts(uint32_t bytes, uint32_t starts, uint32_t ends) {
  return uint64_t{bytes} | (uint64_t{starts} << 21) | (uint64_t{ends} << 42);
}
MMSB_HD uint32_t packed_bytes(uint64_t p) { return static_cast<uint32_t>(p & 0x1FFFFF); }
MMSB_HD uint32_t packed_starts(uint64_t p) { return static_cast<uint32_t>((p >> 21) & 0x1FFFFF); }
MMSB_HD uint32_t packed_ends(uint64_t p) { return static_cast<uint32_t>(p >> 42); }

// ---- the per-chunk steps, shared by kernels and CPU references ----

// Sixteen bytes as four little-endian words (a uint4 on the device).
struct Bytes16 {
  uint32_t w[4];
  MMSB_HD uint32_t byte(uint32_t i) const { return (w[i >> 2] >> (8 * (i & 3))) & 0xFF; }
};

// p must be 16-byte aligned.
MMSB_HD Bytes16 load16(const uint8_t* p) {
  Bytes16 b;
#if defined(__CUDA_ARCH__)
  const uint4 v = *reinterpret_cast<const uint4*>(p);
  b.w[0] = v.x;
  b.w[1] = v.y;
  b.w[2] = v.z;
  b.w[3] = v.w;
#else
  std::memcpy(b.w, p, 16);
#endif
  return b;
}

MMSB_HD void store16(uint8_t* p, const Bytes16& b) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<uint4*>(p) = make_uint4(b.w[0], b.w[1], b.w[2], b.w[3]);
#else
  std::memcpy(p, b.w, 16);
#endif
}

// Bit i set when byte i of a differs from byte i of b (4 bits per word).
MMSB_HD uint32_t ne_mask4(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  const uint32_t m = __vcmpne4(a, b);  // 0xFF per differing byte
  return ((m >> 7) & 1) | ((m >> 14) & 2) | ((m >> 21) & 4) | ((m >> 28) & 8);
#else
  const uint32_t x = a ^ b;
  return ((x & 0xFFu) != 0) | (((x & 0xFF00u) != 0) << 1) | (((x & 0xFF0000u) != 0) << 2) |
         (((x & 0xFF000000u) != 0) << 3);
#endif
}

// 0xFF in each byte where a and b differ, 0x00 where they agree.
MMSB_HD uint32_t ne_bytes4(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __vcmpne4(a, b);
#else
  const uint32_t x = a ^ b;
  // Bit 7 of each byte: set when any of its bits is (the add cannot carry
  // out of a byte: 0x7F + 0x7F < 0x100).
  const uint32_t high = (((x & 0x7F7F7F7Fu) + 0x7F7F7F7Fu) | x) & 0x80808080u;
  return (high >> 7) * 0xFFu;
#endif
}

// A merging op's new live word: the live byte where a kernel changed it
// (live != synced) and the new value leaves it (v == synced), else v.
MMSB_HD uint32_t merge4(uint32_t v, uint32_t live, uint32_t synced) {
  const uint32_t keep = ne_bytes4(live, synced) & ~ne_bytes4(v, synced);
  return (live & keep) | (v & ~keep);
}

// Number of 16-byte chunks (counted from dst rounded down to 16) an op touches.
MMSB_HD uint64_t op_chunks(const CopyOp& op) {
  return ((op.dst + op.length + 15) >> 4) - (op.dst >> 4);
}

// The part of `op` that lane `lane` (0..31) of the warp applying it does.
// The op's image bytes are cut into 16-byte-aligned chunks counted from
// dst & ~15. A partial first chunk goes one byte per lane on lanes 0-15, a
// partial last chunk one byte per lane on lanes 16-31; the full chunks in
// between are one 16-byte load and store each (per image; a merging op also
// loads both images' chunks), chunk first_full + lane + 32k on lane `lane`,
// four per step with the blob loads issued first. Lanes touch disjoint bytes, so the lanes of one op may run in
// any order; ops of one segment must run one after the other.
MMSB_HD void copy_byte(const CopyOp& op, uint64_t x, const uint8_t* __restrict__ blob, uint8_t* __restrict__ live,
                       uint8_t* __restrict__ synced) {
  const uint8_t v = blob[op.src + (x - op.dst)];  // image byte x takes blob byte src + (x - dst)
  if (op.flags & kMerge) {
    if (live[x] == synced[x] || v != synced[x]) live[x] = v;
    synced[x] = v;
    return;
  }
  if (op.flags & kToLive) live[x] = v;
  if (op.flags & kToSynced) synced[x] = v;
}

MMSB_HD void apply_op_lane(const CopyOp& op, uint32_t lane, const uint8_t* __restrict__ blob,
                           uint8_t* __restrict__ live, uint8_t* __restrict__ synced) {
  const uint64_t chunks = op_chunks(op);
  const uint64_t end = op.dst + op.length;
  const bool head_partial = (op.dst & 15) != 0;
  const bool tail_partial = (end & 15) != 0;
  const uint64_t full_begin = head_partial ? 1 : 0;
  const uint64_t full_end = tail_partial ? chunks - 1 : chunks;
  const uint64_t image0 = op.dst & ~uint64_t{15};  // chunk 0's image offset
  const uint64_t blob0 = op.src - (op.dst & 15);   // ... and its blob offset (src = dst mod 16)
  if (lane < 16) {
    if (head_partial || (tail_partial && chunks == 1)) {  // chunk 0 is partial
      const uint64_t x = image0 + lane;
      if (x >= op.dst && x < end) copy_byte(op, x, blob, live, synced);
    }
  } else if (tail_partial && chunks > 1) {  // the last chunk is partial
    const uint64_t x = image0 + 16 * (chunks - 1) + (lane - 16);
    if (x < end) copy_byte(op, x, blob, live, synced);
  }
  for (uint64_t c = full_begin + lane; c < full_end; c += 4 * 32) {
    Bytes16 v[4] = {};
    for (uint32_t u = 0; u < 4; ++u) {
      const uint64_t cc = c + 32 * u;
      if (cc < full_end) v[u] = load16(blob + blob0 + 16 * cc);
    }
    for (uint32_t u = 0; u < 4; ++u) {
      const uint64_t cc = c + 32 * u;
      if (cc >= full_end) continue;
      uint8_t* const l = live + image0 + 16 * cc;
      uint8_t* const s = synced + image0 + 16 * cc;
      if (op.flags & kMerge) {
        const Bytes16 was = load16(l), old = load16(s);
        Bytes16 out;
        for (uint32_t w = 0; w < 4; ++w) out.w[w] = merge4(v[u].w[w], was.w[w], old.w[w]);
        store16(l, out);
        store16(s, v[u]);
        continue;
      }
      if (op.flags & kToLive) store16(l, v[u]);
      if (op.flags & kToSynced) store16(s, v[u]);
    }
  }
}

// What one thread learns from one 16-byte chunk of a tile.
struct ChunkDiff {
  Bytes16 live;     // the live bytes (the new values)
  uint32_t diff;    // bit i: byte i differs (bits past the tile are 0)
  uint32_t starts;  // bit i: byte i starts a run
  uint32_t ends;    // bit i: byte i ends a run (is its last byte)
};

// Compares the chunk at tile offset c (a multiple of 16, < t.length). A run
// starts at a differing byte whose predecessor in the page does not differ
// (or that opens the page) and ends at one whose successor does not differ
// (or that closes the page); predecessor and successor are read only when
// the chunk's edge byte differs.
MMSB_HD ChunkDiff diff_chunk(const DiffTile& t, uint32_t c, const uint8_t* live,
                             const uint8_t* synced) {
  ChunkDiff r;
  const uint64_t at = t.offset + c;
  r.live = load16(live + at);
  const Bytes16 old = load16(synced + at);
  uint32_t d = ne_mask4(r.live.w[0], old.w[0]) | (ne_mask4(r.live.w[1], old.w[1]) << 4) |
               (ne_mask4(r.live.w[2], old.w[2]) << 8) | (ne_mask4(r.live.w[3], old.w[3]) << 12);
  const uint32_t valid = t.length - c < 16 ? t.length - c : 16;
  if (valid < 16) d &= (1u << valid) - 1;  // the page ends inside this chunk
  uint32_t prev = 0, next = 0;
  if ((d & 1) && (c > 0 || (t.flags & kHasPrev))) prev = live[at - 1] != synced[at - 1];
  if ((d & 0x8000) && (c + 16 < t.length || (t.flags & kHasNext)))
    next = live[at + 16] != synced[at + 16];
  r.diff = d;
  r.starts = d & ~((d << 1) | prev) & 0xFFFF;
  r.ends = d & ~((d >> 1) | (next << 15));
  return r;
}

}  // namespace mmsb::cuda
