#include "mmsb/diff.h"

#include <bit>
#include <cstring>
#include <string>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mmsb {
namespace {

inline uint64_t load64(const std::byte* p) noexcept {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// High bit of each byte set exactly where x's byte is zero (no false hits).
inline uint64_t zero_bytes(uint64_t x) noexcept {
  constexpr uint64_t k7f = 0x7F7F7F7F7F7F7F7FULL;
  uint64_t y = (x & k7f) + k7f;
  return ~(y | x | k7f);
}

// Little-endian: byte i of a loaded word is bits [8i, 8i+8).
static_assert(std::endian::native == std::endian::little, "diff assumes a little-endian host");

#if defined(__SSE2__)
// Bit i set where byte i of the 16-byte blocks at a and b is equal.
inline uint32_t equal_mask16(const std::byte* a, const std::byte* b) noexcept {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
  const __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
  return static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, y)));
}
#endif

// First i in [i, n) with a[i] != b[i], or n.
inline size_t skip_equal(const std::byte* a, const std::byte* b, size_t i, size_t n) noexcept {
#if defined(__SSE2__)
  while (i + 64 <= n) {
    const uint32_t m = equal_mask16(a + i, b + i) & equal_mask16(a + i + 16, b + i + 16) &
                       equal_mask16(a + i + 32, b + i + 32) & equal_mask16(a + i + 48, b + i + 48);
    if (m != 0xFFFF) break;
    i += 64;
  }
  while (i + 16 <= n) {
    const uint32_t m = equal_mask16(a + i, b + i);
    if (m != 0xFFFF) return i + std::countr_zero(~m);
    i += 16;
  }
#endif
  while (i + 8 <= n) {
    const uint64_t x = load64(a + i) ^ load64(b + i);
    if (x != 0) return i + (std::countr_zero(x) >> 3);
    i += 8;
  }
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// First i in [i, n) with a[i] == b[i], or n.
inline size_t skip_different(const std::byte* a, const std::byte* b, size_t i, size_t n) noexcept {
#if defined(__SSE2__)
  while (i + 16 <= n) {
    const uint32_t m = equal_mask16(a + i, b + i);
    if (m != 0) return i + std::countr_zero(m);
    i += 16;
  }
#endif
  while (i + 8 <= n) {
    const uint64_t z = zero_bytes(load64(a + i) ^ load64(b + i));
    if (z != 0) return i + (std::countr_zero(z) >> 3);
    i += 8;
  }
  while (i < n && a[i] != b[i]) ++i;
  return i;
}

}  // namespace

Status diff_into(std::span<const std::byte> old_bytes, std::span<const std::byte> new_bytes,
                 Delta& out) {
  out.clear();
  if (old_bytes.size() != new_bytes.size())
    return Status(Code::kInvalidArgument, "diff of pages of different sizes (" +
                                              std::to_string(old_bytes.size()) + " vs " +
                                              std::to_string(new_bytes.size()) + " bytes)");
  if (old_bytes.size() > kMaxPageSize)
    return Status(Code::kInvalidArgument, "diff of a page larger than 4 GiB");
  const std::byte* a = old_bytes.data();
  const std::byte* b = new_bytes.data();
  const size_t n = old_bytes.size();
  for (size_t i = skip_equal(a, b, 0, n); i < n; i = skip_equal(a, b, i, n)) {
    const size_t end = skip_different(a, b, i, n);
    out.ranges.push_back(Range{static_cast<uint32_t>(i), static_cast<uint32_t>(end - i)});
    out.bytes.insert(out.bytes.end(), b + i, b + end);
    i = end;
  }
  return Status::OK();
}

Result<Delta> diff(PageId page, Version base, std::span<const std::byte> old_bytes,
                   std::span<const std::byte> new_bytes) {
  Delta d;
  Status s = diff_into(old_bytes, new_bytes, d);
  if (!s.ok()) return s;
  d.page = page;
  d.base_version = base;
  return d;
}

}  // namespace mmsb
