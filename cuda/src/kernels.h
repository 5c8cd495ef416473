// Launchers of the CUDA mirror's kernels (kernels.cu). Each queues its work
// on `stream` and returns the launch error (cudaGetLastError), if any.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "mmsb/cuda/layout.h"

namespace mmsb::cuda::kernels {

// Writes 42 to *out: proves the GPU runs this binary's code.
cudaError_t probe(int* out, cudaStream_t stream);

// The scatter kernel over a batch already in device memory at `batch`.
cudaError_t scatter(const uint8_t* batch, const BatchLayout& layout, uint8_t* live, uint8_t* synced,
                    cudaStream_t stream);

// The three diff kernels (diff.h): counts per tile, the scan (prefix per
// tile and totals), and emit (runs and bytes at their ranks).
cudaError_t diff_count(const uint8_t* live, const uint8_t* synced, const DiffTile* tiles, uint32_t n,
                       uint64_t* counts, cudaStream_t stream);
cudaError_t diff_scan(const uint64_t* counts, uint32_t n, DiffCounts* prefix, DiffCounts* totals,
                      cudaStream_t stream);
cudaError_t diff_emit(const uint8_t* live, const uint8_t* synced, const DiffTile* tiles, uint32_t n,
                      const uint64_t* counts, const DiffCounts* prefix, uint64_t* starts, uint64_t* ends,
                      uint8_t* bytes, cudaStream_t stream);

}  // namespace mmsb::cuda::kernels
