// The heat sample's grid and its arithmetic, shared by the CPU kernel (here)
// and the CUDA kernel (heat_gpu.cu), so both paths compute the same bits.
//
// The grid is `width` x `height` int32 temperatures, row-major, cut into
// bands of `band_rows` rows; band b is one bus page. One step:
//
//   T'(r,c) = T(r,c) + sum over the 4-neighbours n inside the grid of (T(n) - T(r,c)) / 8
//
// with C++ integer division (rounds toward zero). The flux between two
// neighbours is (Tb - Ta) / 8 one way and (Ta - Tb) / 8 the other, exactly
// opposite, and the edges are insulated (no neighbour, no flux): the total
// heat never changes. Once every difference is below 8 nothing moves any
// more, so the deltas shrink as the grid settles.
#pragma once

#include <cstdint>
#include <vector>

#if defined(__CUDACC__)
#define HEAT_HD __host__ __device__ inline
#else
#define HEAT_HD inline
#endif

namespace heat {

struct Grid {
  int width = 128;
  int height = 128;
  int band_rows = 16;
  int bands() const { return (height + band_rows - 1) / band_rows; }
  int rows_in(int band) const {
    const int left = height - band * band_rows;
    return left < band_rows ? left : band_rows;
  }
  uint64_t band_bytes(int band) const { return uint64_t(rows_in(band)) * width * sizeof(int32_t); }
};

// The starting temperatures: a small ripple everywhere, and a hot square.
HEAT_HD int32_t initial(int r, int c, int width, int height) {
  int32_t v = (r * 7 + c * 13) % 101;
  if (r >= height / 4 && r < height / 2 && c >= width / 4 && c < width / 2) v += 1 << 20;
  return v;
}

// Reads cell (r, c) of a grid held in bands (pointers to each band's cells).
struct Bands {
  int32_t* const* bands;
  int width, band_rows;
  HEAT_HD int32_t operator()(int r, int c) const { return bands[r / band_rows][(r % band_rows) * width + c]; }
  HEAT_HD int32_t& cell(int r, int c) const { return bands[r / band_rows][(r % band_rows) * width + c]; }
};

// Cell (r, c) after one step; at(r, c) reads the current grid.
template <class At>
HEAT_HD int32_t next(const At& at, int r, int c, int width, int height) {
  const int32_t t = at(r, c);
  int32_t v = t;
  if (r > 0) v += (at(r - 1, c) - t) / 8;
  if (r + 1 < height) v += (at(r + 1, c) - t) / 8;
  if (c > 0) v += (at(r, c - 1) - t) / 8;
  if (c + 1 < width) v += (at(r, c + 1) - t) / 8;
  return v;
}

// One step on the CPU: `bands[b]` points at band b's cells (the mirror's
// pages); the new grid goes to `scratch` first, then back into the bands.
inline void step_cpu(const Grid& g, int32_t* const* bands, std::vector<int32_t>& scratch) {
  scratch.resize(size_t(g.width) * g.height);
  const Bands at{bands, g.width, g.band_rows};
  for (int r = 0; r < g.height; ++r)
    for (int c = 0; c < g.width; ++c) scratch[size_t(r) * g.width + c] = next(at, r, c, g.width, g.height);
  for (int r = 0; r < g.height; ++r)
    for (int c = 0; c < g.width; ++c) at.cell(r, c) = scratch[size_t(r) * g.width + c];
}

}  // namespace heat
