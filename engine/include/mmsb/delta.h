// Deltas: which bytes of one page change, and their new values.
//
// Invariants of a well-formed delta (checked by validate()):
//   - at least one range; every range has length >= 1;
//   - ranges are sorted by offset and do not overlap (adjacent is allowed);
//   - bytes.size() == sum of range lengths; bytes are stored range after range;
//   - every range lies inside the page.
// apply_unchecked() is the one piece of code that writes delta bytes into a
// page; the bus, the mirrors and replay all call it.
#pragma once

#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

#include "mmsb/status.h"
#include "mmsb/types.h"

namespace mmsb {

// A non-owning view of a delta. Cheap to copy; used on every hot path.
struct DeltaView {
  PageId page = kNoPage;
  Version base_version = 0;   // the page version the delta applies to
  Epoch epoch = 0;            // the epoch it produced (0 before it is applied)
  Epoch cause = kNoCause;     // epoch of the delta that caused it, if derived
  std::span<const Range> ranges;
  std::span<const std::byte> bytes;

  Version new_version() const noexcept { return base_version + 1; }
  bool derived() const noexcept { return cause != kNoCause; }
};

// Checks the invariants above against a page of `page_size` bytes.
// The message names the page and the offending range.
Status validate(const DeltaView& d, uint64_t page_size);

// Writes the delta's bytes into `page`. Precondition: validate() passed.
inline void apply_unchecked(std::byte* page, const DeltaView& d) noexcept {
  const std::byte* src = d.bytes.data();
  for (const Range& r : d.ranges) {
    std::memcpy(page + r.offset, src, r.length);
    src += r.length;
  }
}

// An owning delta. Reusable: clear() keeps the capacity, so a loop that
// rebuilds one Delta allocates only while it grows.
class Delta {
 public:
  PageId page = kNoPage;
  Version base_version = 0;
  Epoch epoch = 0;
  Epoch cause = kNoCause;
  std::vector<Range> ranges;
  std::vector<std::byte> bytes;

  Delta() = default;
  // Copies a view (e.g. one read from the TLog) into owned storage.
  explicit Delta(const DeltaView& v);

  DeltaView view() const noexcept {
    return DeltaView{page, base_version, epoch, cause, ranges, bytes};
  }
  void clear() noexcept {
    ranges.clear();
    bytes.clear();
  }
  bool empty() const noexcept { return ranges.empty(); }
  size_t changed_bytes() const noexcept { return bytes.size(); }

  // Appends a run; must start at or after the end of the previous one.
  // Adjacent runs are merged so the result stays minimal.
  void append_run(uint32_t offset, std::span<const std::byte> values);

  // One write of `values` at `offset`.
  static Delta from_write(PageId page, Version base, uint32_t offset,
                          std::span<const std::byte> values);
  // Every byte i with mask[i] != 0 takes new_page[i]. mask and new_page have
  // the page's size. Fails (kInvalidArgument) on a size mismatch.
  static Result<Delta> from_mask(PageId page, Version base, std::span<const uint8_t> mask,
                                 std::span<const std::byte> new_page);
};

// Collects several (offset, bytes) writes to one page, later writes winning
// where they overlap, and builds one minimal-range delta from them.
class DeltaBuilder {
 public:
  explicit DeltaBuilder(uint64_t page_size);
  // kOutOfRange if the write does not fit the page; nothing recorded then.
  Status write(uint64_t offset, std::span<const std::byte> values);
  bool empty() const noexcept { return !any_; }
  // Builds the delta; the builder is reset and can be reused.
  Delta build(PageId page, Version base);

 private:
  std::vector<uint8_t> mask_;
  std::vector<std::byte> values_;
  bool any_ = false;
};

}  // namespace mmsb
