#include "mmsb/delta.h"

#include <string>

namespace mmsb {

Status validate(const DeltaView& d, uint64_t page_size) {
  auto where = [&] { return "page " + std::to_string(d.page) + ": "; };
  if (d.ranges.empty())
    return Status(Code::kInvalidArgument, where() + "empty delta (no changed bytes); skip it instead");
  uint64_t prev_end = 0;
  uint64_t total = 0;
  for (size_t i = 0; i < d.ranges.size(); ++i) {
    const Range& r = d.ranges[i];
    if (r.length == 0)
      return Status(Code::kInvalidArgument,
                    where() + "range " + std::to_string(i) + " at offset " + std::to_string(r.offset) +
                        " has length 0");
    if (i > 0 && r.offset < prev_end)
      return Status(Code::kInvalidArgument,
                    where() + "range " + std::to_string(i) + " at offset " + std::to_string(r.offset) +
                        " overlaps or precedes the previous range ending at " + std::to_string(prev_end) +
                        "; ranges must be sorted and disjoint");
    if (r.end() > page_size)
      return Status(Code::kOutOfRange,
                    where() + "range [" + std::to_string(r.offset) + ", " + std::to_string(r.end()) +
                        ") is past the end of the page (" + std::to_string(page_size) + " bytes)");
    prev_end = r.end();
    total += r.length;
  }
  if (total != d.bytes.size())
    return Status(Code::kInvalidArgument, where() + "ranges cover " + std::to_string(total) +
                                              " bytes but the delta carries " +
                                              std::to_string(d.bytes.size()));
  return Status::OK();
}

Delta::Delta(const DeltaView& v)
    : page(v.page),
      base_version(v.base_version),
      epoch(v.epoch),
      cause(v.cause),
      ranges(v.ranges.begin(), v.ranges.end()),
      bytes(v.bytes.begin(), v.bytes.end()) {}

void Delta::append_run(uint32_t offset, std::span<const std::byte> values) {
  if (values.empty()) return;
  if (!ranges.empty() && ranges.back().end() == offset) {
    ranges.back().length += static_cast<uint32_t>(values.size());
  } else {
    ranges.push_back(Range{offset, static_cast<uint32_t>(values.size())});
  }
  bytes.insert(bytes.end(), values.begin(), values.end());
}

Delta Delta::from_write(PageId page, Version base, uint32_t offset,
                        std::span<const std::byte> values) {
  Delta d;
  d.page = page;
  d.base_version = base;
  d.append_run(offset, values);
  return d;
}

Result<Delta> Delta::from_mask(PageId page, Version base, std::span<const uint8_t> mask,
                               std::span<const std::byte> new_page) {
  if (mask.size() != new_page.size())
    return Status(Code::kInvalidArgument, "page " + std::to_string(page) + ": mask has " +
                                              std::to_string(mask.size()) + " bytes but the page image has " +
                                              std::to_string(new_page.size()));
  if (new_page.size() > kMaxPageSize)
    return Status(Code::kInvalidArgument, "page " + std::to_string(page) + ": image larger than 4 GiB");
  Delta d;
  d.page = page;
  d.base_version = base;
  size_t i = 0;
  const size_t n = mask.size();
  while (i < n) {
    while (i < n && mask[i] == 0) ++i;
    size_t j = i;
    while (j < n && mask[j] != 0) ++j;
    if (j > i) d.append_run(static_cast<uint32_t>(i), new_page.subspan(i, j - i));
    i = j;
  }
  return d;
}

DeltaBuilder::DeltaBuilder(uint64_t page_size) : mask_(page_size, 0), values_(page_size) {}

Status DeltaBuilder::write(uint64_t offset, std::span<const std::byte> values) {
  if (offset > mask_.size() || values.size() > mask_.size() - offset)
    return Status(Code::kOutOfRange, "write of " + std::to_string(values.size()) + " bytes at offset " +
                                         std::to_string(offset) + " does not fit a page of " +
                                         std::to_string(mask_.size()) + " bytes");
  if (values.empty()) return Status::OK();
  std::fill(mask_.begin() + offset, mask_.begin() + offset + values.size(), uint8_t{1});
  std::copy(values.begin(), values.end(), values_.begin() + offset);
  any_ = true;
  return Status::OK();
}

Delta DeltaBuilder::build(PageId page, Version base) {
  Result<Delta> d = Delta::from_mask(page, base, mask_, values_);
  std::fill(mask_.begin(), mask_.end(), uint8_t{0});
  any_ = false;
  return std::move(d).value();  // sizes match by construction
}

}  // namespace mmsb
