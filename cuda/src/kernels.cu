// The CUDA mirror's kernels. The per-lane and per-chunk steps
// (apply_op_lane, diff_chunk, load16/store16) come from layout.h and are the
// very code the CPU references run.
#include "kernels.h"

namespace mmsb::cuda::kernels {
namespace {

constexpr unsigned kFullMask = 0xFFFFFFFFu;
constexpr unsigned kScatterThreads = 256;
constexpr unsigned kScanThreads = 1024;

__global__ void probe_kernel(int* out) { *out = 42; }

// ---- scatter ----

__device__ __forceinline__ CopyOp shfl_op(const CopyOp& mine, unsigned k) {
  CopyOp op;
  op.dst = __shfl_sync(kFullMask, static_cast<unsigned long long>(mine.dst), k);
  op.src = __shfl_sync(kFullMask, static_cast<unsigned long long>(mine.src), k);
  op.length = __shfl_sync(kFullMask, mine.length, k);
  op.flags = __shfl_sync(kFullMask, mine.flags, k);
  return op;
}

// One warp per segment; a segment's ops in order, 32 descriptors loaded at
// once (coalesced) and handed out by shuffles. __syncwarp() between ops
// orders one op's stores before the next op's, so later deltas win.
__global__ void __launch_bounds__(kScatterThreads)
    scatter_kernel(const uint8_t* __restrict__ batch, BatchLayout L, uint8_t* __restrict__ live,
                   uint8_t* __restrict__ synced) {
  const Segment* segs = reinterpret_cast<const Segment*>(batch + L.segments_offset);
  const CopyOp* ops = reinterpret_cast<const CopyOp*>(batch + L.ops_offset);
  const unsigned lane = threadIdx.x & 31;
  const uint64_t warps = uint64_t{gridDim.x} * (kScatterThreads / 32);
  for (uint64_t s = (uint64_t{blockIdx.x} * kScatterThreads + threadIdx.x) / 32; s < L.segment_count; s += warps) {
    const Segment seg = segs[s];
    for (uint32_t base = 0; base < seg.count; base += 32) {
      CopyOp mine{0, 0, 0, 0};
      if (base + lane < seg.count) mine = ops[seg.first + base + lane];
      const uint32_t n = seg.count - base < 32 ? seg.count - base : 32;
      for (uint32_t k = 0; k < n; ++k) {
        const CopyOp op = shfl_op(mine, k);
        apply_op_lane(op, lane, batch, live, synced);
        __syncwarp();
      }
    }
  }
}

// ---- diff ----

// Exclusive sum over the block (kWarps warps); *total gets the block's sum.
// sh holds kWarps + 1 words.
template <unsigned kWarps>
__device__ __forceinline__ uint64_t block_exclusive_sum(uint64_t v, uint64_t* total, uint64_t* sh) {
  const unsigned lane = threadIdx.x & 31, warp = threadIdx.x / 32;
  uint64_t x = v;
#pragma unroll
  for (unsigned o = 1; o < 32; o <<= 1) {
    const uint64_t y = __shfl_up_sync(kFullMask, static_cast<unsigned long long>(x), o);
    if (lane >= o) x += y;
  }
  if (lane == 31) sh[warp] = x;
  __syncthreads();
  if (warp == 0) {
    const uint64_t w = lane < kWarps ? sh[lane] : 0;
    uint64_t inc = w;
#pragma unroll
    for (unsigned o = 1; o < 32; o <<= 1) {
      const uint64_t y = __shfl_up_sync(kFullMask, static_cast<unsigned long long>(inc), o);
      if (lane >= o) inc += y;
    }
    if (lane < kWarps) sh[lane] = inc - w;
    if (lane == kWarps - 1) sh[kWarps] = inc;
  }
  __syncthreads();
  const uint64_t r = sh[warp] + x - v;
  *total = sh[kWarps];
  __syncthreads();  // sh may be reused right away
  return r;
}

__device__ __forceinline__ uint64_t chunk_counts(const ChunkDiff& d) {
  return pack_counts(__popc(d.diff), __popc(d.starts), __popc(d.ends));
}

__global__ void __launch_bounds__(kDiffThreads)
    diff_count_kernel(const uint8_t* __restrict__ live, const uint8_t* __restrict__ synced,
                      const DiffTile* __restrict__ tiles, uint64_t* __restrict__ counts) {
  __shared__ uint64_t sh[kDiffThreads / 32 + 1];
  const DiffTile t = tiles[blockIdx.x];
  uint64_t packed = 0;
#pragma unroll
  for (uint32_t step = 0; step < kTileSteps; ++step) {
    const uint32_t c = step * 16 * kDiffThreads + 16 * threadIdx.x;
    if (c < t.length) packed += chunk_counts(diff_chunk(t, c, live, synced));
  }
  uint64_t total;
  block_exclusive_sum<kDiffThreads / 32>(packed, &total, sh);
  if (threadIdx.x == 0) counts[blockIdx.x] = total;
}

// One block: thread i sums a contiguous slice of tiles, the block scans the
// sums, then each thread writes its slice's prefixes.
__global__ void __launch_bounds__(kScanThreads)
    diff_scan_kernel(const uint64_t* __restrict__ counts, uint32_t n, DiffCounts* __restrict__ prefix,
                     DiffCounts* __restrict__ totals) {
  __shared__ uint64_t sh[kScanThreads / 32 + 1];
  const uint32_t per = (n + kScanThreads - 1) / kScanThreads;
  const uint32_t begin = threadIdx.x * per < n ? threadIdx.x * per : n;
  const uint32_t end = begin + per < n ? begin + per : n;
  DiffCounts mine;
  for (uint32_t i = begin; i < end; ++i) {
    mine.bytes += packed_bytes(counts[i]);
    mine.starts += packed_starts(counts[i]);
    mine.ends += packed_ends(counts[i]);
  }
  DiffCounts all, at;
  at.bytes = block_exclusive_sum<kScanThreads / 32>(mine.bytes, &all.bytes, sh);
  at.starts = block_exclusive_sum<kScanThreads / 32>(mine.starts, &all.starts, sh);
  at.ends = block_exclusive_sum<kScanThreads / 32>(mine.ends, &all.ends, sh);
  for (uint32_t i = begin; i < end; ++i) {
    prefix[i] = at;
    at.bytes += packed_bytes(counts[i]);
    at.starts += packed_starts(counts[i]);
    at.ends += packed_ends(counts[i]);
  }
  if (threadIdx.x == 0) *totals = all;
}

// The tile's differing bytes are gathered in shared memory, each at its rank
// in the tile, and then copied out by the whole block, consecutive threads
// to consecutive words (coalesced); a thread storing its chunk's bytes one
// by one straight to global memory touched 16 scattered places a step. Run
// starts and ends (one 8-byte word per run) are stored by the thread that
// found them.
__global__ void __launch_bounds__(kDiffThreads)
    diff_emit_kernel(const uint8_t* __restrict__ live, const uint8_t* __restrict__ synced,
                     const DiffTile* __restrict__ tiles, const uint64_t* __restrict__ counts,
                     const DiffCounts* __restrict__ prefix, uint64_t* __restrict__ starts,
                     uint64_t* __restrict__ ends, uint8_t* __restrict__ bytes) {
  __shared__ uint64_t sh[kDiffThreads / 32 + 1];
  __shared__ uint8_t staged[kTileBytes];
  if (counts[blockIdx.x] == 0) return;  // the whole block: nothing differs in this tile
  const DiffTile t = tiles[blockIdx.x];
  const DiffCounts at = prefix[blockIdx.x];
  uint32_t staged_n = 0;                  // bytes the earlier steps staged (the same in every thread)
  uint64_t os0 = at.starts, oe0 = at.ends;  // where this step's first start and end go
  for (uint32_t step = 0; step < kTileSteps; ++step) {
    if (step * 16 * kDiffThreads >= t.length) break;  // uniform over the block
    const uint32_t c = step * 16 * kDiffThreads + 16 * threadIdx.x;
    ChunkDiff d{};
    uint64_t packed = 0;
    if (c < t.length) {
      d = diff_chunk(t, c, live, synced);
      packed = chunk_counts(d);
    }
    uint64_t total;
    const uint64_t rank = block_exclusive_sum<kDiffThreads / 32>(packed, &total, sh);
    if (packed != 0) {
      uint32_t ob = staged_n + packed_bytes(rank);
      uint64_t os = os0 + packed_starts(rank);
      uint64_t oe = oe0 + packed_ends(rank);
      const uint64_t base = t.offset + c;
      for (uint32_t i = 0; i < 16; ++i) {
        const uint32_t bit = 1u << i;
        if (d.starts & bit) starts[os++] = base + i;
        if (d.ends & bit) ends[oe++] = base + i + 1;
        if (d.diff & bit) staged[ob++] = static_cast<uint8_t>(d.live.byte(i));
      }
    }
    staged_n += packed_bytes(total);
    os0 += packed_starts(total);
    oe0 += packed_ends(total);
  }
  __syncthreads();  // every byte staged
  // Out to bytes[at.bytes ...]: the bytes up to a 4-byte boundary, whole
  // words, then the rest.
  uint8_t* const out = bytes + at.bytes;
  const uint32_t head = min(staged_n, static_cast<uint32_t>((4 - (at.bytes & 3)) & 3));
  const uint32_t words = (staged_n - head) / 4;
  const uint32_t tail = head + 4 * words;
  if (threadIdx.x < head) out[threadIdx.x] = staged[threadIdx.x];
  for (uint32_t w = threadIdx.x; w < words; w += kDiffThreads) {
    const uint8_t* b = staged + head + 4 * w;
    reinterpret_cast<uint32_t*>(out + head)[w] =
        uint32_t{b[0]} | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 24);
  }
  if (tail + threadIdx.x < staged_n) out[tail + threadIdx.x] = staged[tail + threadIdx.x];
}

}  // namespace

cudaError_t probe(int* out, cudaStream_t stream) {
  probe_kernel<<<1, 1, 0, stream>>>(out);
  return cudaGetLastError();
}

cudaError_t scatter(const uint8_t* batch, const BatchLayout& layout, uint8_t* live, uint8_t* synced,
                    cudaStream_t stream) {
  if (layout.segment_count == 0) return cudaSuccess;
  const uint64_t warps_per_block = kScatterThreads / 32;
  uint64_t blocks = (layout.segment_count + warps_per_block - 1) / warps_per_block;
  if (blocks > (1u << 20)) blocks = 1u << 20;  // the kernel strides over the rest
  scatter_kernel<<<static_cast<unsigned>(blocks), kScatterThreads, 0, stream>>>(batch, layout, live, synced);
  return cudaGetLastError();
}

cudaError_t diff_count(const uint8_t* live, const uint8_t* synced, const DiffTile* tiles, uint32_t n,
                       uint64_t* counts, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  diff_count_kernel<<<n, kDiffThreads, 0, stream>>>(live, synced, tiles, counts);
  return cudaGetLastError();
}

cudaError_t diff_scan(const uint64_t* counts, uint32_t n, DiffCounts* prefix, DiffCounts* totals,
                      cudaStream_t stream) {
  diff_scan_kernel<<<1, kScanThreads, 0, stream>>>(counts, n, prefix, totals);
  return cudaGetLastError();
}

cudaError_t diff_emit(const uint8_t* live, const uint8_t* synced, const DiffTile* tiles, uint32_t n,
                      const uint64_t* counts, const DiffCounts* prefix, uint64_t* starts, uint64_t* ends,
                      uint8_t* bytes, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  diff_emit_kernel<<<n, kDiffThreads, 0, stream>>>(live, synced, tiles, counts, prefix, starts, ends, bytes);
  return cudaGetLastError();
}

}  // namespace mmsb::cuda::kernels
