// The recording's byte layout (docs/FORMAT.md), encoded and decoded in one
// place for capture/ and replay/.
//
// A segment file is: file header, frames, and -- when it was closed cleanly --
// an index frame and a trailer. Every multi-byte integer is little-endian.
// Each decode function checks magic numbers, checksums and versions and says
// what is wrong and where (the `where` prefix names the file and offset).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mmsb/delta.h"
#include "mmsb/status.h"

namespace flatbuffers {
class FlatBufferBuilder;
}
namespace mmsb::fb {
struct DeltaBatch;
}

namespace mmsb::format {

inline constexpr uint16_t kMajor = 1;
inline constexpr uint16_t kMinor = 1;
// The first minor version whose index frames say which segment is the last
// (SegmentIndex.last_segment).
inline constexpr uint16_t kMinorLastSegment = 1;

inline constexpr size_t kFileHeaderBytes = 32;
inline constexpr size_t kFrameHeaderBytes = 40;
inline constexpr size_t kTrailerBytes = 32;
inline constexpr char kFileMagic[8] = {'M', 'M', 'S', 'B', 'T', 'L', 'O', 'G'};
inline constexpr char kTrailerMagic[8] = {'M', 'M', 'S', 'B', 'T', 'E', 'N', 'D'};
inline constexpr char kFrameMagic[4] = {'M', 'M', 'S', 'F'};
// Sanity bound on one frame's sizes: a header claiming more is corrupt.
inline constexpr uint32_t kMaxFrameBytes = uint32_t{1} << 30;

enum class FrameKind : uint8_t { kMeta = 1, kPageTable = 2, kDeltas = 3, kSnapshot = 4, kIndex = 5 };
const char* kind_name(FrameKind k) noexcept;
inline constexpr uint8_t kFlagZstd = 1;  // payload is one zstd frame (always set in 1.x)

// The low 32 bits of XXH3-64 (seed 0).
uint32_t checksum(std::span<const std::byte> bytes) noexcept;

// Segment files are named "seg-NNNNNN.tlog" (the segment number in six
// decimal digits), so that their lexical order is their order; a recording
// has at most kMaxSegments of them.
inline constexpr uint32_t kMaxSegments = 1000000;
std::string segment_file_name(uint32_t segment);
bool is_segment_file_name(std::string_view name) noexcept;

struct FileHeader {
  uint16_t major = kMajor;
  uint16_t minor = kMinor;
  uint32_t segment = 0;
  uint64_t start_epoch = 0;
};
void encode(const FileHeader& h, std::byte* out);  // kFileHeaderBytes
// kCorruption for a bad magic/checksum ("not a recording segment"),
// kUnsupported for a newer major version.
Status decode(std::span<const std::byte> in, FileHeader* h, const std::string& where);

struct FrameHeader {
  FrameKind kind = FrameKind::kDeltas;
  uint8_t flags = kFlagZstd;
  uint32_t payload_bytes = 0;  // stored (compressed) bytes after the header
  uint32_t raw_bytes = 0;      // the FlatBuffer's size once decompressed
  uint64_t first_epoch = 0;
  uint64_t last_epoch = 0;
  uint32_t payload_checksum = 0;
};
void encode(const FrameHeader& h, std::byte* out);  // kFrameHeaderBytes
Status decode(std::span<const std::byte> in, FrameHeader* h, const std::string& where);

struct Trailer {
  uint64_t index_offset = 0;  // file offset of the index frame's header
  uint64_t last_epoch = 0;    // last delta epoch in the segment (0: none)
  uint32_t frames = 0;        // frames before the index frame
};
void encode(const Trailer& t, std::byte* out);  // kTrailerBytes
Status decode(std::span<const std::byte> in, Trailer* t, const std::string& where);

// The header of a frame whose zstd payload is `payload`, holding a
// FlatBuffer of `raw_bytes` bytes.
FrameHeader make_header(FrameKind kind, uint64_t first_epoch, uint64_t last_epoch, size_t raw_bytes,
                        std::span<const std::byte> payload);

// zstd, one reusable context each.
class Compressor {
 public:
  explicit Compressor(int level = 1);
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;
  // The compressed bytes, in a buffer of the compressor's that only grows
  // (so it is neither reallocated nor zero-filled per frame); valid until the
  // next call.
  Result<std::span<const std::byte>> compress(std::span<const std::byte> in);

 private:
  void* ctx_;
  int level_;
  std::vector<std::byte> out_;
};

// How a closed segment ends: an index frame listing every frame before it,
// then the trailer. segment_end() appends both to *out for a segment whose
// index frame starts at file offset `index_offset`; `last_segment` says
// whether the recording ends with this segment (false: its writer goes on in
// the next one).
struct IndexEntry {
  uint64_t offset = 0;  // of the frame header
  uint64_t first_epoch = 0, last_epoch = 0;
  FrameKind kind = FrameKind::kDeltas;
};
Status segment_end(std::span<const IndexEntry> frames, uint64_t index_offset, uint64_t last_delta_epoch,
                   bool last_segment, Compressor& zstd, std::vector<std::byte>* out);


class Decompressor {
 public:
  Decompressor();
  ~Decompressor();
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
  // Decompresses exactly `raw_bytes`; anything else is kCorruption.
  Status decompress(std::span<const std::byte> in, size_t raw_bytes, std::vector<std::byte>* out,
                    const std::string& where);

 private:
  void* ctx_;
};

// The writer lock of a recording directory: flock(2) on the directory
// itself. A Recorder holds it from start to finish, recover() while it
// rewrites segment ends. The kernel drops it when its holder exits (kill -9
// included), so a lock that is held means a process is writing now.
class DirLock {
 public:
  DirLock() = default;
  ~DirLock() { release(); }
  DirLock(DirLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  DirLock& operator=(DirLock&& o) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  // kFailedPrecondition when another holder has it (in this process too),
  // kIOError when `dir` does not exist. The lock is advisory: where it
  // cannot be had otherwise (a directory this process cannot read, a
  // filesystem without flock) acquire() succeeds holding nothing, and
  // held() says false -- writers and readers work as they did without it.
  Status acquire(const std::filesystem::path& dir);
  void release() noexcept;
  // Whether some holder has `dir`'s lock now (false when `dir` cannot be
  // opened): a probe that takes and drops a shared lock.
  static bool held(const std::filesystem::path& dir) noexcept;

 private:
  int fd_ = -1;
};

// Accumulates consecutive deltas column by column and builds the DeltaBatch
// FlatBuffer. Reusable: clear() keeps every column's capacity.
class BatchBuilder {
 public:
  void add(const DeltaView& d);
  void clear();
  bool empty() const noexcept { return count_ == 0; }
  uint32_t count() const noexcept { return count_; }
  uint64_t first_epoch() const noexcept { return first_epoch_; }
  uint64_t last_epoch() const noexcept { return first_epoch_ + count_ - 1; }
  size_t data_bytes() const noexcept { return data_.size(); }
  // Finishes `fbb` with a Frame whose body is this batch.
  void build(flatbuffers::FlatBufferBuilder& fbb) const;

 private:
  uint64_t first_epoch_ = 0;
  uint32_t count_ = 0;
  uint32_t max_page_ = 0, max_offset_ = 0, max_length_ = 0;
  bool multi_range_ = false;
  std::vector<uint32_t> pages_, range_counts_, offsets_, lengths_, derived_;
  std::vector<uint64_t> causes_;
  std::vector<std::byte> data_;
};

// The deltas of one decoded DeltaBatch, checked for consistency once, then
// read by index. Views point into the FlatBuffer and into the reader's own
// range table: valid until the next open().
class BatchReader {
 public:
  // kCorruption (naming `where`) if the columns disagree with each other.
  Status open(const fb::DeltaBatch* batch, const std::string& where);
  uint32_t count() const noexcept { return count_; }
  uint64_t first_epoch() const noexcept { return first_epoch_; }
  // Delta i: page, epoch, cause, ranges and bytes. base_version is left 0:
  // the reader of the recording knows the page's version.
  DeltaView delta(uint32_t i) const noexcept;
  PageId page(uint32_t i) const noexcept { return pages_[i]; }

 private:
  uint64_t first_epoch_ = 0;
  uint32_t count_ = 0;
  std::vector<PageId> pages_;
  std::vector<uint32_t> offsets_, lengths_;  // scratch: the range columns
  std::vector<Range> ranges_;
  std::vector<uint32_t> range_start_;  // count_ + 1 entries
  std::vector<uint64_t> data_start_;   // count_ + 1 entries
  std::vector<uint64_t> causes_;       // per delta, 0 when not derived
  const std::byte* data_ = nullptr;
};

}  // namespace mmsb::format
