// SegmentWriter: appends frames to one .tlog segment file and closes it with
// an index frame and a trailer.
//
// Invariants: the file always holds the file header followed by whole frames,
// except when a write fails or the process dies mid-frame, which leaves a torn
// last frame that readers detect by its checksum. A frame is written with one
// writev(2) call (looped only on partial writes), never one per delta.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "mmsb/format.h"
#include "mmsb/status.h"
#include "mmsb/types.h"

namespace mmsb::capture {

class SegmentWriter {
 public:
  // Creates `path` (which must not exist) and writes its file header.
  static Result<std::unique_ptr<SegmentWriter>> create(const std::filesystem::path& path, uint32_t segment,
                                                       Epoch start_epoch);
  ~SegmentWriter();  // closes the descriptor; no index (as after a crash)
  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;

  // Compresses `flatbuffer` and appends it as one frame.
  Status append(format::FrameKind kind, Epoch first_epoch, Epoch last_epoch,
                std::span<const std::byte> flatbuffer, format::Compressor& zstd);
  // fdatasync: what was appended survives a power loss.
  Status sync();
  // Appends the index frame and the trailer, optionally syncs, and closes.
  // last_segment: the recording ends with this segment (false when the
  // writer goes on in a next one).
  Status close(Epoch last_delta_epoch, bool last_segment, format::Compressor& zstd, bool sync_file);

  uint64_t size() const noexcept { return size_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  // Bytes appended per frame kind (header + payload).
  uint64_t bytes_of(format::FrameKind k) const noexcept { return by_kind_[static_cast<int>(k)]; }

 private:
  SegmentWriter(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  // Writes a then b with writev, looping on partial writes.
  Status write_all(std::span<const std::byte> a, std::span<const std::byte> b);

  std::filesystem::path path_;
  int fd_;
  uint64_t size_ = 0;
  std::vector<format::IndexEntry> index_;
  uint64_t by_kind_[8] = {};
};

}  // namespace mmsb::capture
