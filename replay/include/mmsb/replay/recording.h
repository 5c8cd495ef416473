// Recording: a recording directory opened for reading.
//
// open() reads every segment's header, then its index when the segment was
// closed cleanly, or scans its frames when it was not (the writer died). A
// frame that fails its checks ends the readable part of its segment; that
// frame and everything after it are never applied. What was found wrong is
// kept in damage() with the file, offset and epoch.
//
// Page tables and the positions of every frame are loaded at open; delta and
// snapshot payloads are read (and their checksums verified) on demand, so in
// a segment listed from its index a damaged payload is reported by the read
// that meets it (kCorruption with file and offset), not by open().
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mmsb/format.h"
#include "mmsb/status.h"
#include "mmsb/types.h"

namespace mmsb::fb {
struct SegmentIndex;
}

namespace mmsb::replay {

struct SegmentInfo {
  std::filesystem::path path;
  uint32_t number = 0;
  Epoch start_epoch = 0;
  uint64_t file_bytes = 0;
  uint64_t good_bytes = 0;  // end of the last frame that passed its checks
  bool closed = false;      // has a valid index and trailer
  bool trailer = false;     // ends with a valid trailer (true when closed)
  uint16_t format_minor = 0;  // the file header's
  // What the segment's readable index frame says (format >= 1.1): true if
  // the recording ends with this segment, false if its writer went on in the
  // next. nullopt: no readable index, or a 1.0 writer.
  std::optional<bool> last_segment;
  // A trailer or index that contradicts the frames ("" if none). Readers
  // do not need them (a segment whose index disagrees is walked), but
  // verify reports it.
  std::string problem;
};

struct FrameRef {
  uint32_t segment = 0;  // index into segments()
  uint64_t offset = 0;   // of the frame header in its file
  format::FrameHeader header;
};

struct PageMeta {
  PageId id = kNoPage;
  uint64_t size = 0;
  std::string name;
  Epoch created = 0;
};

struct SnapshotInfo {
  uint32_t id = 0;
  Epoch first_epoch = 0;      // epoch of part 0 (e0)
  Epoch last_epoch = 0;       // epoch of the last part
  std::vector<size_t> parts;  // indices into frames(), in part order
  bool complete = false;      // every part present and readable
};

// Where the first problem met while opening is: the segment (its index in
// segments(), or its number when the segment's own header is unreadable), the
// file, the byte offset of the bad frame (or header), and the first epoch the
// frame claims (0 if unknown), or the epoch of the delta found invalid in
// it, and that delta's page (kNoPage if none). Everything before offset is
// intact.
struct DamageAt {
  uint32_t segment = 0;
  std::filesystem::path file;
  uint64_t offset = 0;
  Epoch epoch = 0;
  PageId page = kNoPage;
};

// One page image of a snapshot part, as read_snapshot_part() hands it out.
struct SnapshotImage {
  PageId page = kNoPage;
  Version version = 0;
  Epoch epoch = 0;  // the image holds every delta to the page up to this epoch
  std::span<const std::byte> bytes;
};

struct MetaInfo {
  uint16_t format_major = 0, format_minor = 0;
  std::string program, host;
  uint32_t pid = 0;
  uint64_t start_time_ns = 0;
  uint32_t default_page_size = 0;
  std::map<std::string, std::string> labels;
};

// Raises this process's soft limit on open files to its hard limit: for a
// tool (mmsb-replay, mmsb-inspector) that may open recordings of thousands
// of segments, each held open by Recording. A library never calls it.
void raise_open_file_limit() noexcept;

class Recording {
 public:
  // kNotFound if `dir` is missing, kCorruption if it holds no readable
  // segment, kUnsupported for a newer major format version. Each segment
  // stays open (one file descriptor each) for the Recording's lifetime: a
  // recording of more segments than the open-file limit allows is kIOError
  // (raise the limit, as mmsb-replay and mmsb-inspector do at start).
  static Result<std::unique_ptr<Recording>> open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const noexcept { return dir_; }
  const MetaInfo& meta() const noexcept { return meta_; }
  const std::vector<SegmentInfo>& segments() const noexcept { return segments_; }
  const std::vector<FrameRef>& frames() const noexcept { return frames_; }
  const std::vector<PageMeta>& pages() const noexcept { return pages_; }
  // The first page created with this name; nullopt if none has it.
  std::optional<PageId> page_named(std::string_view name) const noexcept;
  // A page by name, or else by its id in decimal; nullopt if neither.
  std::optional<PageId> find_page(std::string_view text) const noexcept;
  const std::vector<SnapshotInfo>& snapshots() const noexcept { return snapshots_; }
  // The state is known from start_epoch() (0, or the first snapshot's last
  // epoch for a recording attached to a running bus) to last_epoch(), the
  // last delta of the durable, gap-free history.
  Epoch start_epoch() const noexcept { return start_epoch_; }
  Epoch last_epoch() const noexcept { return last_epoch_; }
  // Deltas in the durable history (epochs first_delta_epoch()..last_epoch()).
  uint64_t delta_count() const noexcept { return delta_count_; }
  Epoch first_delta_epoch() const noexcept { return first_delta_epoch_; }
  // The first problem met while opening (OK for an intact recording).
  const Status& damage() const noexcept { return damage_; }
  const DamageAt& damage_at() const noexcept { return damage_at_; }
  // Whether a process was writing the recording when open() began (its
  // Recorder held the directory's writer lock, format::DirLock). An open
  // last segment, or a torn frame at its end, is then a frame still being
  // written rather than a crash's remains: recover() refuses to cut it.
  bool live() const noexcept { return live_; }
  // kCorruption when the last segment was closed to go on in a next one that
  // is not there (format >= 1.1: SegmentInfo::last_segment is false), with
  // *at (if given) naming the missing file; open() reports it as damage()
  // unless the recording is live (its writer may be between the two files).
  Status missing_end(DamageAt* at = nullptr) const;
  std::string describe(const FrameRef& f) const;  // "seg-000000.tlog offset 1234"

  // Reads frame i: checks the payload checksum, decompresses, verifies the
  // FlatBuffer. *raw holds the FlatBuffer (its root is fb::Frame).
  Status read_frame(size_t i, std::vector<std::byte>* raw) const;
  // Reads the snapshot part frames()[i] (as read_frame does) and, once its
  // columns agree with each other and with the page table, calls fn for each
  // image in order; stops at the first error fn returns. kCorruption naming
  // the file and offset otherwise; for an image that does not match the page
  // table, *mismatch (if given) gets its page, version and epoch.
  Status read_snapshot_part(size_t i, std::vector<std::byte>* raw,
                            const std::function<Status(const SnapshotImage&)>& fn,
                            SnapshotImage* mismatch = nullptr) const;
  // Reads the delta frame frames()[i] (as read_frame does) and opens its
  // batch into *batch: its columns must agree with each other and its epochs
  // with the frame header. kCorruption naming the file and offset otherwise
  // (the payload is damaged).
  Status read_deltas(size_t i, std::vector<std::byte>* raw, format::BatchReader* batch) const;
  // Checks every delta of `batch` (opened from frames()[i]) against the page
  // table: its page exists before the delta's epoch, and its ranges are
  // sorted, disjoint, non-empty and inside the page. kCorruption naming the
  // file, offset, epoch and page otherwise; *at (if given) gets them.
  Status check_deltas(size_t i, const format::BatchReader& batch, DamageAt* at = nullptr) const;
  // Indices into frames() of the delta frames, in epoch order.
  const std::vector<size_t>& delta_frames() const noexcept { return delta_frames_; }
  // The position in delta_frames() of the frame holding `epoch`, or
  // delta_frames().size() if none does (binary search).
  size_t delta_frame_of(Epoch epoch) const noexcept;

 private:
  Recording() = default;
 public:
  ~Recording();
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;

 private:
  Status scan_segment(uint32_t seg_index);
  bool use_index(uint32_t seg_index, const format::Trailer& t);
  // Reads the index frame `idx` of segment seg_index; nullptr if unreadable.
  const fb::SegmentIndex* read_index(const FrameRef& idx, std::vector<std::byte>* raw);
  void check_last_segment();
  std::string trailer_disagreement(uint32_t seg_index, const format::Trailer& t, std::optional<uint64_t> index_at,
                                   size_t first_frame) const;
  void set_damage(Status s, uint32_t segment, const std::filesystem::path& file, uint64_t offset, Epoch epoch);
  Status load_tables();

  std::filesystem::path dir_;
  bool live_ = false;
  MetaInfo meta_;
  std::vector<SegmentInfo> segments_;
  std::vector<FrameRef> frames_;
  std::vector<size_t> delta_frames_;
  std::vector<PageMeta> pages_;
  std::vector<SnapshotInfo> snapshots_;
  Epoch start_epoch_ = 0;
  Epoch first_delta_epoch_ = 0;
  Epoch last_epoch_ = 0;
  uint64_t delta_count_ = 0;
  std::vector<int> fds_;  // one per segment
  Status damage_;
  DamageAt damage_at_;
  mutable format::Decompressor zstd_;
  mutable std::vector<std::byte> scratch_;
};

}  // namespace mmsb::replay
