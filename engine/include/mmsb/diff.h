// The diff engine: old bytes + new bytes of a page -> the minimal delta.
//
// The result covers exactly the bytes that differ (no more, no fewer), as
// maximal runs of differing bytes. It compares 16-byte blocks (SSE2; 8-byte
// words elsewhere), 64 bytes per step while the pages agree, and finds run
// boundaries with a count-trailing-zeros on the block's equality mask, so the
// common path has no per-byte branch.
#pragma once

#include <span>

#include "mmsb/delta.h"

namespace mmsb {

// Appends the differing runs of old_bytes vs new_bytes to out.ranges/out.bytes
// after clearing them (capacity is kept: no allocation once warm).
// Returns kInvalidArgument if the sizes differ or exceed kMaxPageSize.
Status diff_into(std::span<const std::byte> old_bytes, std::span<const std::byte> new_bytes,
                 Delta& out);

// Convenience: a fresh delta for `page` at `base` (empty when nothing differs).
Result<Delta> diff(PageId page, Version base, std::span<const std::byte> old_bytes,
                   std::span<const std::byte> new_bytes);

}  // namespace mmsb
