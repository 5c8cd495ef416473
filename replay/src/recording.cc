#include "mmsb/replay/recording.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include <flatbuffers/flatbuffers.h>

#include "mmsb/fb/mmsb_tlog_generated.h"

namespace mmsb::replay {

namespace fs = std::filesystem;

namespace {

Status pread_all(int fd, uint64_t offset, size_t n, std::byte* out, const std::string& where) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status(Code::kIOError, where + ": read failed: " + std::strerror(errno));
    }
    if (r == 0) return Status(Code::kCorruption, where + ": file ends early");
    done += static_cast<size_t>(r);
  }
  return Status::OK();
}

const fb::Frame* as_frame(const std::vector<std::byte>& raw) {
  return fb::GetFrame(raw.data());
}

// What a file that is not a regular one is, in words.
std::string file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

// Opens a segment file for reading without blocking on it (a FIFO named
// like a segment must not hang the reader). *fd >= 0 and *bytes its size for
// a regular file; *fd = -1 and *what saying what it is otherwise (a
// directory, a FIFO, a dangling symbolic link, ...). kIOError when the file
// cannot be examined or opened.
Status open_segment(const fs::path& path, int* fd, uint64_t* bytes, std::string* what) {
  *fd = -1;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    struct stat link;
    if (err == ENOENT && ::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
      *what = "a symbolic link to a file that does not exist";
      return Status::OK();
    }
    return Status(Code::kIOError, path.string() + ": cannot open: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    *what = file_type_name(st.st_mode);
    return Status::OK();
  }
  const int f = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (f < 0) {
    const int err = errno;
    return Status(Code::kIOError, path.string() + ": cannot open: " + std::strerror(err) +
                                      (err == EMFILE ? " (a reader keeps every segment of a recording open: raise the "
                                                       "open-file limit, e.g. 'ulimit -n 65536')"
                                                     : ""));
  }
  if (::fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) {  // replaced since the stat
    *what = file_type_name(st.st_mode);
    ::close(f);
    return Status::OK();
  }
  *fd = f;
  *bytes = static_cast<uint64_t>(st.st_size);
  return Status::OK();
}

}  // namespace

Recording::~Recording() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

void Recording::set_damage(Status s, uint32_t segment, const fs::path& file, uint64_t offset, Epoch epoch) {
  if (!damage_.ok()) return;  // keep the first
  damage_ = std::move(s);
  damage_at_ = DamageAt{segment, file, offset, epoch};
}

std::string Recording::describe(const FrameRef& f) const {
  return segments_[f.segment].path.string() + " offset " + std::to_string(f.offset);
}

std::optional<PageId> Recording::page_named(std::string_view name) const noexcept {
  if (name.empty()) return std::nullopt;  // unnamed pages have no name to match
  for (const PageMeta& p : pages_)
    if (p.name == name) return p.id;
  return std::nullopt;
}

std::optional<PageId> Recording::find_page(std::string_view text) const noexcept {
  if (std::optional<PageId> id = page_named(text)) return id;
  if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  uint64_t id = 0;
  for (char c : text) id = id * 10 + static_cast<uint64_t>(c - '0');
  if (id >= pages_.size()) return std::nullopt;
  return static_cast<PageId>(id);
}

void raise_open_file_limit() noexcept {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &rl);  // best effort: the open's error says what to do
  }
}

Result<std::unique_ptr<Recording>> Recording::open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return Status(Code::kNotFound, "no recording at " + dir.string() + " (no such directory)");
  if (!fs::is_directory(dir, ec))
    return Status(Code::kCorruption, dir.string() + " is not a recording directory (it is a file)");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (format::is_segment_file_name(e.path().filename().string())) files.push_back(e.path());
  }
  if (ec) return Status(Code::kIOError, "cannot list " + dir.string() + ": " + ec.message());
  if (files.empty())
    return Status(Code::kCorruption, dir.string() + " holds no segment file (seg-NNNNNN.tlog): not an MMSB recording");
  std::sort(files.begin(), files.end());

  std::unique_ptr<Recording> r(new Recording());
  r->dir_ = dir;
  r->live_ = format::DirLock::held(dir);  // probed before the scan: a writer that ends during it counts as live
  for (uint32_t i = 0; i < files.size(); ++i) {
    SegmentInfo seg;
    seg.path = files[i];
    int fd = -1;
    std::string what;
    if (Status s = open_segment(files[i], &fd, &seg.file_bytes, &what); !s.ok()) return s;
    if (fd < 0) {  // nothing to read: like a segment whose header is unreadable
      const std::string why = files[i].string() + " is not a segment file: it is " + what;
      if (i == 0)
        return Status(Code::kCorruption, why + ", and the history cannot start without segment 0");
      r->set_damage(Status(Code::kCorruption, why + " (the history ends before it)"), i, files[i], 0, 0);
      break;
    }
    r->fds_.push_back(fd);
    std::byte hdr[format::kFileHeaderBytes] = {};
    const size_t n = std::min<uint64_t>(seg.file_bytes, sizeof hdr);
    format::FileHeader fh;
    Status s = pread_all(fd, 0, n, hdr, files[i].string());
    if (s.ok()) s = format::decode({hdr, n}, &fh, files[i].string() + " offset 0");
    if (!s.ok()) {
      if (s.code() == Code::kUnsupported || i == 0) return s;
      r->set_damage(s, i, files[i], 0, 0);  // a later segment is unreadable: the history ends before it
      r->fds_.pop_back();
      ::close(fd);
      break;
    }
    if (fh.segment != i) {
      if (i == 0)
        return Status(Code::kCorruption, files[i].string() + ": header says segment " + std::to_string(fh.segment) +
                                             ", but it is the first segment file: segment 0 (" +
                                             format::segment_file_name(0) +
                                             ") is missing, and the history cannot start without it");
      r->set_damage(Status(Code::kCorruption, files[i].string() + ": header says segment " +
                                                  std::to_string(fh.segment) + ", expected " + std::to_string(i) +
                                                  " (a segment is missing or renamed)"),
                    i, files[i], 0, 0);
      r->fds_.pop_back();
      ::close(fd);
      break;
    }
    seg.number = fh.segment;
    seg.start_epoch = fh.start_epoch;
    seg.format_minor = fh.minor;
    r->segments_.push_back(seg);
    if (Status sc = r->scan_segment(i); !sc.ok()) return sc;
    // Only the last segment may lack its trailer: the writer closes a segment
    // before it creates the next. One without, that has a successor, was
    // cut, possibly right at a frame boundary.
    const SegmentInfo& scanned = r->segments_.back();
    if (r->damage_.ok() && !scanned.trailer && i + 1 < files.size())
      r->set_damage(Status(Code::kCorruption, files[i].string() + " offset " + std::to_string(scanned.good_bytes) +
                                                  ": segment ends without its index and trailer, yet " +
                                                  files[i + 1].filename().string() +
                                                  " follows (the file was cut short; the history ends here)"),
                    i, files[i], scanned.good_bytes, 0);
    if (!r->damage_.ok()) break;  // nothing after damage is trusted
  }
  if (Status s = r->load_tables(); !s.ok()) return s;
  r->check_last_segment();
  return r;
}

Status Recording::missing_end(DamageAt* at) const {
  if (segments_.empty()) return Status::OK();
  const SegmentInfo& last = segments_.back();
  if (last.format_minor < format::kMinorLastSegment || last.last_segment.value_or(true)) return Status::OK();
  const uint32_t next = static_cast<uint32_t>(segments_.size());
  const fs::path missing = dir_ / format::segment_file_name(next);
  if (at) *at = DamageAt{next, missing, 0, 0};  // what the missing file held is not known
  return Status(Code::kCorruption, missing.string() + " is missing: " + last.path.filename().string() +
                                       " was closed to go on in it (its index says more follows), so the recording's "
                                       "end is lost (deleted, not copied, or its writer stopped between the two "
                                       "files); the history ends at epoch " +
                                       std::to_string(last_epoch_));
}

// Not while a writer holds the lock: it may be between the two files.
void Recording::check_last_segment() {
  if (!damage_.ok() || live_) return;
  DamageAt at;
  if (Status s = missing_end(&at); !s.ok()) set_damage(std::move(s), at.segment, at.file, at.offset, at.epoch);
}

const fb::SegmentIndex* Recording::read_index(const FrameRef& idx, std::vector<std::byte>* raw) {
  frames_.push_back(idx);
  const bool read = read_frame(frames_.size() - 1, raw).ok();
  frames_.pop_back();
  return read ? as_frame(*raw)->body_as_SegmentIndex() : nullptr;
}

// Lists the frames of segment i: from its index when the trailer and index
// check out, otherwise by walking frame after frame until one fails.
Status Recording::scan_segment(uint32_t i) {
  SegmentInfo& seg = segments_[i];
  const int fd = fds_[i];
  const std::string file = seg.path.string();
  const size_t first_frame = frames_.size();

  // Closed segment: trailer -> index frame -> frame headers.
  format::Trailer t;
  bool have_trailer = false;
  const uint64_t trailer_at = seg.file_bytes - format::kTrailerBytes;
  if (seg.file_bytes >= format::kFileHeaderBytes + format::kTrailerBytes) {
    std::byte tb[format::kTrailerBytes];
    have_trailer = pread_all(fd, trailer_at, sizeof tb, tb, file).ok() && format::decode(tb, &t, file).ok();
  }
  if (have_trailer && use_index(i, t)) return Status::OK();
  frames_.resize(first_frame);  // no index, or it disagrees with the file: walk instead

  // Open (or damaged) segment: walk the frames.
  uint64_t off = format::kFileHeaderBytes;
  std::optional<uint64_t> index_at;  // the index frame the walk met (the last one)
  std::vector<std::byte> payload;
  // A bad frame ends the history -- unless every frame before it is whole
  // and it is only the segment's index or trailer: its writer closed it (a
  // whole index frame came before, or the trailer says the index is this
  // frame, after as many frames as the walk found). The next segment then
  // goes on, and the index is a problem recover rewrites.
  auto bad_frame = [&](Status s, Epoch epoch) {
    const size_t walked = frames_.size() - first_frame;
    if (index_at) {
      seg.trailer = true;
      seg.problem = s.message() + " after the index frame at offset " + std::to_string(*index_at) +
                    ": the segment's frames are whole ('mmsb-replay recover' rewrites its index and trailer)";
      off = *index_at;
    } else if (have_trailer && t.index_offset == off && t.frames == walked) {
      seg.trailer = true;
      seg.problem = s.message() + ": this is the segment's index frame (its trailer says so); the frames before it "
                                  "are whole ('mmsb-replay recover' rewrites the index and trailer)";
    } else {
      set_damage(std::move(s), i, seg.path, off, epoch);
    }
  };
  while (off < seg.file_bytes) {
    const std::string where = file + " offset " + std::to_string(off);
    // A trailer (shorter than a frame header) right after the index frame is
    // the clean end, even when the index did not match the file.
    if (seg.file_bytes - off == format::kTrailerBytes) {
      std::byte tb[format::kTrailerBytes];
      if (Status s = pread_all(fd, off, sizeof tb, tb, file); !s.ok()) return s;
      if (format::decode(tb, &t, where).ok()) {
        seg.trailer = true;
        break;
      }
    }
    if (seg.file_bytes - off < format::kFrameHeaderBytes) {
      bad_frame(Status(Code::kCorruption, where + ": torn frame header (" + std::to_string(seg.file_bytes - off) +
                                              " bytes before the end of the file)"),
                0);
      break;
    }
    std::byte hb[format::kFrameHeaderBytes];
    FrameRef f{i, off, {}};
    if (Status s = pread_all(fd, off, sizeof hb, hb, file); !s.ok()) return s;
    if (Status s = format::decode(hb, &f.header, where); !s.ok()) {
      bad_frame(s, 0);
      break;
    }
    if (f.header.payload_bytes > seg.file_bytes - off - format::kFrameHeaderBytes) {
      bad_frame(Status(Code::kCorruption, where + ": torn frame: the header announces " +
                                              std::to_string(f.header.payload_bytes) + " payload bytes, the file has " +
                                              std::to_string(seg.file_bytes - off - format::kFrameHeaderBytes)),
                f.header.first_epoch);
      break;
    }
    payload.resize(f.header.payload_bytes);
    if (Status s = pread_all(fd, off + format::kFrameHeaderBytes, payload.size(), payload.data(), file); !s.ok())
      return s;
    if (format::checksum(payload) != f.header.payload_checksum) {
      bad_frame(Status(Code::kCorruption, where + ": payload checksum mismatch (epochs " +
                                              std::to_string(f.header.first_epoch) + ".." +
                                              std::to_string(f.header.last_epoch) + ")"),
                f.header.first_epoch);
      break;
    }
    const uint64_t next = off + format::kFrameHeaderBytes + f.header.payload_bytes;
    if (index_at) {
      // The writer ends a segment with its index frame, then the trailer: a
      // whole frame after one means that frame was not what it said.
      set_damage(Status(Code::kCorruption, file + " offset " + std::to_string(*index_at) +
                                               ": an index frame in the middle of the segment (a whole frame follows "
                                               "it at offset " +
                                               std::to_string(off) + "; only the last frame before the trailer may be "
                                               "one)"),
                 i, seg.path, *index_at, 0);
      off = *index_at;
      break;
    }
    if (f.header.kind == format::FrameKind::kIndex) {
      index_at = off;
      if (seg.format_minor >= format::kMinorLastSegment) {
        std::vector<std::byte> raw;
        const fb::SegmentIndex* index = read_index(f, &raw);
        seg.last_segment = index ? std::optional<bool>(index->last_segment()) : std::nullopt;
      }
    } else {
      frames_.push_back(f);
    }
    off = next;
  }
  seg.good_bytes = off;
  if (seg.trailer && seg.problem.empty()) seg.problem = trailer_disagreement(i, t, index_at, first_frame);
  return Status::OK();
}

// Lists segment i's frames from the index its trailer `t` points to; true
// when the index checks out: it lists exactly the frames between the file
// header and the index frame, back to back, none of them an index frame,
// each as its header says, and the index frame ends where the trailer
// begins. The frames are then in frames_ (false: frames_ may hold some).
bool Recording::use_index(uint32_t i, const format::Trailer& t) {
  SegmentInfo& seg = segments_[i];
  const int fd = fds_[i];
  const std::string file = seg.path.string();
  const uint64_t trailer_at = seg.file_bytes - format::kTrailerBytes;
  if (t.index_offset < format::kFileHeaderBytes || t.index_offset + format::kFrameHeaderBytes > trailer_at)
    return false;
  FrameRef idx{i, t.index_offset, {}};
  std::byte hb[format::kFrameHeaderBytes];
  if (!pread_all(fd, t.index_offset, sizeof hb, hb, file).ok() || !format::decode(hb, &idx.header, file).ok() ||
      idx.header.kind != format::FrameKind::kIndex ||
      t.index_offset + format::kFrameHeaderBytes + idx.header.payload_bytes != trailer_at)
    return false;
  std::vector<std::byte> raw;
  const fb::SegmentIndex* index = read_index(idx, &raw);
  if (!index || !index->frames() || index->frames()->size() != t.frames) return false;
  uint64_t expect = format::kFileHeaderBytes;  // where the next listed frame must start
  Epoch last_delta = 0;
  for (const fb::FrameEntry* e : *index->frames()) {
    FrameRef f{i, e->offset(), {}};
    if (f.offset != expect || !pread_all(fd, f.offset, sizeof hb, hb, file).ok() ||
        !format::decode(hb, &f.header, file + " offset " + std::to_string(f.offset)).ok() ||
        f.header.kind == format::FrameKind::kIndex || static_cast<uint8_t>(f.header.kind) != e->kind() ||
        f.header.first_epoch != e->first_epoch() || f.header.last_epoch != e->last_epoch())
      return false;
    frames_.push_back(f);
    expect = f.offset + format::kFrameHeaderBytes + f.header.payload_bytes;
    if (f.header.kind == format::FrameKind::kDeltas) last_delta = std::max(last_delta, f.header.last_epoch);
  }
  if (expect != t.index_offset) return false;
  seg.closed = seg.trailer = true;
  seg.good_bytes = seg.file_bytes;
  if (seg.format_minor >= format::kMinorLastSegment) seg.last_segment = index->last_segment();
  // Readers do not need the trailer's last epoch, but it must be true.
  if (t.last_epoch != last_delta)
    seg.problem = file + ": trailer at offset " + std::to_string(trailer_at) + " says the last delta epoch is " +
                  std::to_string(t.last_epoch) + ", the segment's delta frames end at " + std::to_string(last_delta) +
                  " ('mmsb-replay recover' rewrites the index and trailer)";
  return true;
}

// Why the valid trailer `t` at the end of walked segment i did not lead to a
// usable index: what it says against what the walk found.
std::string Recording::trailer_disagreement(uint32_t i, const format::Trailer& t, std::optional<uint64_t> index_at,
                                            size_t first_frame) const {
  const SegmentInfo& seg = segments_[i];
  const size_t found = frames_.size() - first_frame;
  std::string why;
  if (!index_at)
    why = "points to an index frame at offset " + std::to_string(t.index_offset) + ", but the segment has none";
  else if (t.index_offset != *index_at)
    why = "says the index frame is at offset " + std::to_string(t.index_offset) + ", it is at " +
          std::to_string(*index_at);
  else if (t.frames != found)
    why = "says " + std::to_string(t.frames) + " frames precede the index frame, found " + std::to_string(found);
  else
    why = "points to an index frame (offset " + std::to_string(*index_at) + ") that does not list the frames as they are";
  return seg.path.string() + ": trailer at offset " + std::to_string(seg.file_bytes - format::kTrailerBytes) + " " +
         why + " (readers walk the frames instead; 'mmsb-replay recover' rewrites the index and trailer)";
}

// Meta, page tables, snapshot parts, and the gap-free run of delta frames.
Status Recording::load_tables() {
  std::vector<std::byte> raw;
  bool have_meta = false;
  std::map<uint32_t, size_t> snapshot_index;  // snapshot id -> snapshots_ index
  Epoch expect = 0;  // next delta epoch expected (0: not known yet)
  const Epoch e0 = segments_.front().start_epoch;
  for (size_t i = 0; i < frames_.size(); ++i) {
    const FrameRef& f = frames_[i];
    const format::FrameKind k = f.header.kind;
    if (k != format::FrameKind::kMeta && k != format::FrameKind::kPageTable && k != format::FrameKind::kSnapshot &&
        k != format::FrameKind::kDeltas)
      continue;  // index frames and kinds from a later minor version
    if (k == format::FrameKind::kDeltas) {
      if (expect == 0) expect = e0 + 1;
      // Every delta takes bytes of the frame's FlatBuffer: a header claiming
      // more deltas than that (a checksum-valid but crafted or miswritten
      // frame) would have readers reserve for them.
      if (f.header.last_epoch - f.header.first_epoch >= f.header.raw_bytes) {
        set_damage(Status(Code::kCorruption, describe(f) + ": delta frame claims epochs " +
                                                 std::to_string(f.header.first_epoch) + ".." +
                                                 std::to_string(f.header.last_epoch) + " in " +
                                                 std::to_string(f.header.raw_bytes) + " bytes"),
                   f.segment, segments_[f.segment].path, f.offset, f.header.first_epoch);
        break;
      }
      if (f.header.first_epoch != expect) {
        set_damage(Status(Code::kCorruption, describe(f) + ": delta frame starts at epoch " +
                                                 std::to_string(f.header.first_epoch) + ", expected " +
                                                 std::to_string(expect) + " (the history has a gap)"),
                   f.segment, segments_[f.segment].path, f.offset, f.header.first_epoch);
        break;
      }
      if (delta_frames_.empty()) first_delta_epoch_ = f.header.first_epoch;
      delta_frames_.push_back(i);
      last_epoch_ = f.header.last_epoch;
      expect = last_epoch_ + 1;
      continue;
    }
    // A frame whose checks pass but whose table contradicts what came before
    // ends the history there, like a failed checksum: what precedes it stays.
    const Status st = [&]() -> Status {
      if (Status s = read_frame(i, &raw); !s.ok()) {
        // An unreadable snapshot part only leaves its snapshot incomplete
        // (the next part's number no longer follows): the history goes on.
        // verify still reports it.
        return k == format::FrameKind::kSnapshot ? Status::OK() : s;
      }
      const fb::Frame* frame = as_frame(raw);
      if (k == format::FrameKind::kMeta && !have_meta) {
        const fb::Meta* m = frame->body_as_Meta();
        if (!m) return Status(Code::kCorruption, describe(f) + ": meta frame holds no Meta table");
        have_meta = true;
        meta_.format_major = m->format_major();
        meta_.format_minor = m->format_minor();
        meta_.program = m->program() ? m->program()->str() : "";
        meta_.host = m->host() ? m->host()->str() : "";
        meta_.pid = m->pid();
        meta_.start_time_ns = m->start_time_ns();
        meta_.default_page_size = m->default_page_size();
        if (m->labels())
          for (const fb::Label* l : *m->labels())
            if (l->key()) meta_.labels[l->key()->str()] = l->value() ? l->value()->str() : "";
      } else if (k == format::FrameKind::kPageTable) {
        const fb::PageTable* t = frame->body_as_PageTable();
        const size_t n = t && t->ids() ? t->ids()->size() : 0;
        if (!t || !t->sizes() || !t->epochs() || t->sizes()->size() != n || t->epochs()->size() != n ||
            (t->names() && t->names()->size() != n))
          return Status(Code::kCorruption, describe(f) + ": page table columns disagree");
        for (size_t j = 0; j < n; ++j) {  // all checked before any is added
          const PageId id = t->ids()->Get(j);
          if (id != pages_.size() + j)
            return Status(Code::kCorruption, describe(f) + ": page table declares page " + std::to_string(id) +
                                                 ", expected " + std::to_string(pages_.size() + j));
          const uint64_t size = t->sizes()->Get(j);
          if (size == 0 || size > kMaxPageSize)
            return Status(Code::kCorruption, describe(f) + ": page " + std::to_string(id) + " has size " +
                                                 std::to_string(size));
        }
        for (size_t j = 0; j < n; ++j)
          pages_.push_back(PageMeta{t->ids()->Get(j), t->sizes()->Get(j),
                                    t->names() ? t->names()->Get(j)->str() : "", t->epochs()->Get(j)});
      } else if (k == format::FrameKind::kSnapshot) {
        const fb::Snapshot* sn = frame->body_as_Snapshot();
        if (!sn || sn->parts() == 0 || sn->part() >= sn->parts())
          return Status(Code::kCorruption, describe(f) + ": snapshot frame has bad part numbers");
        auto [it, fresh] = snapshot_index.try_emplace(sn->id(), snapshots_.size());
        if (fresh) snapshots_.push_back(SnapshotInfo{sn->id(), f.header.first_epoch, f.header.last_epoch, {}, false});
        SnapshotInfo& info = snapshots_[it->second];
        if (sn->part() != info.parts.size()) return Status::OK();  // out of order: never complete
        info.parts.push_back(i);
        info.last_epoch = f.header.last_epoch;
        info.complete = info.parts.size() == sn->parts();
      }
      return Status::OK();
    }();
    if (!st.ok()) {
      set_damage(st, f.segment, segments_[f.segment].path, f.offset, f.header.first_epoch);
      break;
    }
  }
  // Snapshots beyond the durable history cannot be used.
  for (SnapshotInfo& s : snapshots_)
    if (s.last_epoch > std::max(last_epoch_, e0)) s.complete = false;
  start_epoch_ = e0;
  if (e0 > 0) {
    auto first = std::find_if(snapshots_.begin(), snapshots_.end(), [](const SnapshotInfo& s) { return s.complete; });
    if (first == snapshots_.end())
      return Status(Code::kCorruption, dir_.string() + ": the recording began at epoch " + std::to_string(e0) +
                                           " but holds no complete snapshot, so no state can be rebuilt");
    start_epoch_ = first->last_epoch;
  }
  if (delta_frames_.empty()) last_epoch_ = start_epoch_;
  delta_count_ = delta_frames_.empty() ? 0 : last_epoch_ - first_delta_epoch_ + 1;
  return Status::OK();
}

Status Recording::read_frame(size_t i, std::vector<std::byte>* raw) const {
  const FrameRef& f = frames_[i];
  const std::string where = describe(f);
  scratch_.resize(f.header.payload_bytes);
  if (Status s = pread_all(fds_[f.segment], f.offset + format::kFrameHeaderBytes, scratch_.size(), scratch_.data(),
                           where);
      !s.ok())
    return s;
  if (format::checksum(scratch_) != f.header.payload_checksum)
    return Status(Code::kCorruption, where + ": payload checksum mismatch");
  if (Status s = zstd_.decompress(scratch_, f.header.raw_bytes, raw, where); !s.ok()) return s;
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(raw->data()), raw->size(),
                          /*max_depth=*/64, /*max_tables=*/1u << 30);
  if (!fb::VerifyFrameBuffer(v)) return Status(Code::kCorruption, where + ": payload is not a valid Frame FlatBuffer");
  return Status::OK();
}

Status Recording::read_snapshot_part(size_t i, std::vector<std::byte>* raw,
                                     const std::function<Status(const SnapshotImage&)>& fn,
                                     SnapshotImage* mismatch) const {
  if (Status s = read_frame(i, raw); !s.ok()) return s;
  const std::string where = describe(frames_[i]);
  const fb::Snapshot* sn = as_frame(*raw)->body_as_Snapshot();
  const size_t n = sn && sn->ids() ? sn->ids()->size() : 0;
  if (!sn || !sn->versions() || !sn->epochs() || !sn->sizes() || !sn->data() || sn->versions()->size() != n ||
      sn->epochs()->size() != n || sn->sizes()->size() != n)
    return Status(Code::kCorruption, where + ": snapshot columns disagree");
  uint64_t off = 0;
  for (size_t j = 0; j < n; ++j) {
    const PageId id = sn->ids()->Get(j);
    const uint64_t size = sn->sizes()->Get(j);
    if (id >= pages_.size() || pages_[id].size != size || off + size > sn->data()->size()) {
      if (mismatch) *mismatch = SnapshotImage{id, sn->versions()->Get(j), sn->epochs()->Get(j), {}};
      return Status(Code::kCorruption, where + ": snapshot " + std::to_string(sn->id()) + " image of page " +
                                           std::to_string(id) + " does not match the page table");
    }
    const SnapshotImage image{id, sn->versions()->Get(j), sn->epochs()->Get(j),
                              {reinterpret_cast<const std::byte*>(sn->data()->data()) + off, size}};
    if (Status s = fn(image); !s.ok()) return s;
    off += size;
  }
  return Status::OK();
}

Status Recording::read_deltas(size_t i, std::vector<std::byte>* raw, format::BatchReader* batch) const {
  if (Status s = read_frame(i, raw); !s.ok()) return s;
  const FrameRef& f = frames_[i];
  const std::string where = describe(f);
  if (Status s = batch->open(as_frame(*raw)->body_as_DeltaBatch(), where); !s.ok()) return s;
  if (batch->first_epoch() != f.header.first_epoch ||
      batch->first_epoch() + batch->count() - 1 != f.header.last_epoch)
    return Status(Code::kCorruption, where + ": batch epochs " + std::to_string(batch->first_epoch()) + ".." +
                                         std::to_string(batch->first_epoch() + batch->count() - 1) +
                                         " disagree with the frame header (" + std::to_string(f.header.first_epoch) +
                                         ".." + std::to_string(f.header.last_epoch) + ")");
  return Status::OK();
}

Status Recording::check_deltas(size_t i, const format::BatchReader& batch, DamageAt* at) const {
  const FrameRef& f = frames_[i];
  for (uint32_t k = 0; k < batch.count(); ++k) {
    const DeltaView d = batch.delta(k);
    std::string why;
    if (d.page >= pages_.size() || pages_[d.page].created >= d.epoch)
      why = " refers to page " + std::to_string(d.page) + ", which does not exist yet";
    else if (Status s = validate(d, pages_[d.page].size); !s.ok())
      why = ": " + s.message();
    if (why.empty()) continue;
    if (at) *at = DamageAt{f.segment, segments_[f.segment].path, f.offset, d.epoch, d.page};
    return Status(Code::kCorruption, describe(f) + ": delta at epoch " + std::to_string(d.epoch) + why);
  }
  return Status::OK();
}

size_t Recording::delta_frame_of(Epoch epoch) const noexcept {
  auto it = std::lower_bound(delta_frames_.begin(), delta_frames_.end(), epoch,
                             [&](size_t fi, Epoch e) { return frames_[fi].header.last_epoch < e; });
  if (it == delta_frames_.end() || frames_[*it].header.first_epoch > epoch) return delta_frames_.size();
  return static_cast<size_t>(it - delta_frames_.begin());
}

}  // namespace mmsb::replay
