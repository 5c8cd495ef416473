#include "mmsb/replay/tools.h"
#include "mmsb/replay/text.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "mmsb/diff.h"
#include "mmsb/fb/mmsb_tlog_generated.h"
#include "mmsb/hash.h"
#include "mmsb/json.h"
#include "index_builder.h"

namespace mmsb::replay {

namespace fs = std::filesystem;

namespace {

std::string num(uint64_t v) { return std::to_string(v); }

// ---- verify helpers ----

void fail(VerifyReport* r, std::string problem, const fs::path& file, uint64_t offset, Epoch epoch,
          PageId page = kNoPage) {
  if (!r->ok) return;  // the first problem wins
  r->ok = false;
  r->problem = std::move(problem);
  r->file = file.string();
  r->offset = offset;
  r->epoch = epoch;
  r->page = page;
}

// Reads frame i and checks what it holds, as far as it can be checked on
// its own: a delta frame of the durable history (`deltas`) is decoded and
// each delta checked against the page table, a snapshot part's columns
// against each other and the page table. On a problem, *at says where
// (file, offset, and the epoch and page when known).
Status check_frame(const Recording& rec, size_t i, bool deltas, std::vector<std::byte>* raw,
                   format::BatchReader* batch, DamageAt* at) {
  const FrameRef& f = rec.frames()[i];
  *at = DamageAt{f.segment, rec.segments()[f.segment].path, f.offset, f.header.first_epoch, kNoPage};
  if (deltas) {
    if (Status s = rec.read_deltas(i, raw, batch); !s.ok()) return s;
    return rec.check_deltas(i, *batch, at);
  }
  if (f.header.kind == format::FrameKind::kSnapshot) {
    SnapshotImage bad;
    const Status s = rec.read_snapshot_part(i, raw, [](const SnapshotImage&) { return Status::OK(); }, &bad);
    if (!s.ok() && bad.page != kNoPage) at->page = bad.page;
    return s;
  }
  return rec.read_frame(i, raw);
}

// What walk_frames() got through: the frames that passed their checks,
// their bytes (headers included) and the deltas they hold.
struct Walked {
  uint64_t frames = 0, bytes = 0, deltas = 0;
};

// Reads and checks frames 0..end-1 in file order (check_frame). Every good
// delta frame of the history is fed to `builder` while *build is OK, so a
// caller that checks every frame decodes each delta frame once. `bad` hears
// of each frame that fails (its index, the problem, where) and says whether
// to go on. progress: (payload bytes walked, every frame's payload).
using BadFrame = std::function<bool(size_t, const Status&, const DamageAt&)>;
Walked walk_frames(const Recording& rec, size_t end, IndexBuilder& builder, Status* build, const Progress& progress,
                   const BadFrame& bad) {
  Walked w;
  std::vector<std::byte> raw;
  format::BatchReader batch;
  uint64_t total = 0, done = 0;
  for (const FrameRef& f : rec.frames()) total += f.header.payload_bytes;
  const std::vector<size_t>& dframes = rec.delta_frames();
  size_t next_delta = 0;  // dframes[next_delta] is the next delta frame of the history
  for (size_t i = 0; i < end; ++i) {
    const FrameRef& f = rec.frames()[i];
    const bool deltas = next_delta < dframes.size() && dframes[next_delta] == i;
    next_delta += deltas;
    done += f.header.payload_bytes;
    if (progress && i % 64 == 0) progress(done, total);
    DamageAt at;
    if (Status s = check_frame(rec, i, deltas, &raw, &batch, &at); !s.ok()) {
      if (!bad(i, s, at)) break;
      continue;
    }
    if (deltas && build->ok()) *build = builder.add(batch);
    if (deltas) w.deltas += batch.count();
    ++w.frames;
    w.bytes += format::kFrameHeaderBytes + f.header.payload_bytes;
  }
  if (progress) progress(done, total);
  return w;
}

// Every image of every complete snapshot within `ix`'s history equals the
// replayed page at the image's epoch, with the same version. Images come in
// epoch order (one snapshot at a time, its parts in turn), so one StateView
// walks forward through the history once; `ix` needs no checkpoints. For a
// snapshot that disagrees, `bad` gets it, the part's frame, the image and
// the problem, and says whether to go on. Returns how many agreed;
// *images counts the images read.
using BadSnapshot = std::function<bool(const SnapshotInfo&, const FrameRef&, const SnapshotImage&, const Status&)>;
uint64_t check_snapshots(const Recording& rec, const Index& ix, uint64_t* images, const BadSnapshot& bad) {
  std::vector<std::byte> raw;
  StateView view(ix);
  uint64_t agreed = 0;
  for (const SnapshotInfo& s : rec.snapshots()) {
    if (!s.complete || s.last_epoch > ix.last_epoch()) continue;
    bool ok = true;
    for (size_t fi : s.parts) {
      const FrameRef& f = rec.frames()[fi];
      // The image being checked, for the report (the frame's first epoch
      // before the first one).
      SnapshotImage where{kNoPage, 0, f.header.first_epoch, {}};
      const Status st = rec.read_snapshot_part(
          fi, &raw,
          [&](const SnapshotImage& im) -> Status {
            where = im;
            ++*images;
            if (im.epoch < ix.start_epoch()) return Status::OK();  // the recording's own starting point
            const std::string what = rec.describe(f) + ": snapshot " + num(s.id) + " ";
            if (Status e = view.seek(im.epoch); !e.ok())
              return Status(Code::kCorruption, what + "page " + num(im.page) + ": " + e.message());
            if (im.page >= view.page_count())
              return Status(Code::kCorruption, what + "page " + num(im.page) + ": page " + num(im.page) +
                                                   " does not exist at epoch " + num(im.epoch) + " (" +
                                                   num(view.page_count()) + " pages then)");
            // read_snapshot_part checked the image's size against the page table.
            const std::span<const std::byte> page = view.page(im.page);
            if (std::memcmp(page.data(), im.bytes.data(), im.bytes.size()) != 0) {
              size_t b = 0;
              while (page[b] == im.bytes[b]) ++b;
              return Status(Code::kCorruption, what + "image of page " + num(im.page) + " at epoch " + num(im.epoch) +
                                                   " differs from the replayed page at byte " + num(b));
            }
            if (ix.version_at(im.page, im.epoch) != im.version)
              return Status(Code::kCorruption, what + "says page " + num(im.page) + " is at version " +
                                                   num(im.version) + " at epoch " + num(im.epoch) +
                                                   "; its deltas give version " +
                                                   num(ix.version_at(im.page, im.epoch)));
            return Status::OK();
          },
          &where);
      if (!st.ok()) {
        ok = false;
        if (!bad(s, f, where, st)) return agreed;
        break;
      }
    }
    agreed += ok;
  }
  return agreed;
}

// ---- compare helpers ----

// "page 7 'clock'", or "page 7" for an unnamed page.
std::string page_label(const PageMeta& p) {
  return p.name.empty() ? "page " + num(p.id) : "page " + num(p.id) + " '" + printable(p.name) + "'";
}

// Bytes of one page that are not compared.
struct Ignore {
  bool whole = false;
  std::vector<Range> ranges;  // sorted
};

// What to ignore, per page of A. A page (by name or id) must exist in A or
// B, and a range on one page must start inside it: a typo is an error, not
// an ignore that ignores nothing.
Result<std::vector<Ignore>> resolve_ignores(const Index& a, const Index& b, const CompareOptions& o) {
  const auto& pages = a.recording().pages();
  const auto& b_pages = b.recording().pages();
  std::vector<Ignore> out(pages.size());
  for (const std::string& name : o.ignore_pages) {
    std::optional<PageId> id = a.recording().find_page(name);
    if (!id) id = b.recording().find_page(name);
    if (!id)
      return Status(Code::kInvalidArgument, "ignore_pages: neither recording has a page named (or numbered) '" +
                                                printable(name) + "'");
    if (*id < out.size()) out[*id].whole = true;  // a page only B has is compared by the page tables alone
  }
  for (const ByteRange& br : o.ignore_ranges) {
    if (br.page != kNoPage) {
      const PageMeta* meta = br.page < pages.size() ? &pages[br.page] : br.page < b_pages.size() ? &b_pages[br.page] : nullptr;
      if (!meta)
        return Status(Code::kInvalidArgument, "ignore_ranges: neither recording has page " + num(br.page));
      if (br.offset >= meta->size)
        return Status(Code::kInvalidArgument, "ignore_ranges: offset " + num(br.offset) + " is past the end of " +
                                                  page_label(*meta) + " (" + num(meta->size) + " bytes)");
    }
    if (br.length == 0) continue;
    for (PageId p = 0; p < pages.size(); ++p) {
      if (br.page != kNoPage && br.page != p) continue;
      if (br.offset >= pages[p].size) continue;
      const uint64_t len = std::min(br.length, pages[p].size - br.offset);
      out[p].ranges.push_back(Range{static_cast<uint32_t>(br.offset), static_cast<uint32_t>(len)});
    }
  }
  for (Ignore& ig : out) std::sort(ig.ranges.begin(), ig.ranges.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
  return out;
}

bool ignored(const Ignore& ig, uint64_t offset) {
  if (ig.whole) return true;
  for (const Range& r : ig.ranges)
    if (offset >= r.offset && offset < r.end()) return true;
  return false;
}

// The differing, unignored runs of two images of one page.
void differing_runs(std::span<const std::byte> a, std::span<const std::byte> b, const Ignore& ig, uint64_t from,
                    uint64_t to, CompareReport* r) {
  r->ranges.clear();
  r->a_bytes.clear();
  r->b_bytes.clear();
  for (uint64_t i = from; i < to; ++i) {
    if (a[i] == b[i] || ignored(ig, i)) continue;
    if (!r->ranges.empty() && r->ranges.back().end() == i)
      ++r->ranges.back().length;
    else
      r->ranges.push_back(Range{static_cast<uint32_t>(i), 1});
    r->a_bytes.push_back(a[i]);
    r->b_bytes.push_back(b[i]);
  }
}

std::string hex(std::span<const std::byte> b, size_t max = 16) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < b.size() && i < max; ++i) {
    s += d[static_cast<uint8_t>(b[i]) >> 4];
    s += d[static_cast<uint8_t>(b[i]) & 15];
  }
  if (b.size() > max) s += "...";
  return s;
}

// `head` leads the summary; empty: "diverged at epoch E".
void diverged_at(CompareReport* r, Epoch e, const PageMeta& p, const std::string& why, const std::string& head = "") {
  r->outcome = CompareReport::Outcome::kDiverged;
  r->epoch = e;
  r->page = p.id;
  r->page_name = p.name;
  r->summary = (head.empty() ? "diverged at epoch " + num(e) : head) + ": " + page_label(p) + " " + why;
}

// The first differing range of r with both runs' bytes, and how many more
// there are (their bytes are never run together).
std::string first_range_text(const CompareReport& r) {
  const Range& g = r.ranges.front();
  const std::span<const std::byte> a(r.a_bytes.data(), g.length), b(r.b_bytes.data(), g.length);
  std::string s = "differs at offset " + num(g.offset) + " (" + num(g.length) + " byte(s)): A " + hex(a) + ", B " + hex(b);
  if (r.ranges.size() > 1) s += " (and " + num(r.ranges.size() - 1) + " more range(s))";
  return s;
}

// "; page 7 'clock' differs too" for r.also_differ (at most three named).
std::string also_text(const CompareReport& r, const std::vector<PageMeta>& pages) {
  if (r.also_differ.empty()) return "";
  std::string s = "; ";
  for (size_t i = 0; i < r.also_differ.size() && i < 3; ++i) s += (i ? ", " : "") + page_label(pages[r.also_differ[i]]);
  if (r.also_differ.size() > 3) s += " and " + num(r.also_differ.size() - 3) + " more page(s)";
  return s + (r.also_differ.size() == 1 ? " differs too" : " differ too");
}

// Page tables: the i-th page must have the same size and name in both.
bool same_page(const PageMeta& a, const PageMeta& b) { return a.size == b.size && a.name == b.name; }

// The same page, ranges and bytes: applied to equal states, equal states.
bool same_delta(const std::optional<DeltaInfo>& a, const std::optional<DeltaInfo>& b) {
  if (!a || !b) return !a && !b;
  return a->page == b->page && a->ranges.size() == b->ranges.size() && a->bytes.size() == b->bytes.size() &&
         std::equal(a->ranges.begin(), a->ranges.end(), b->ranges.begin(),
                    [](const Range& x, const Range& y) { return x.offset == y.offset && x.length == y.length; }) &&
         std::memcmp(a->bytes.data(), b->bytes.data(), a->bytes.size()) == 0;
}

// Pages created at or before epoch e, counting on from `n` (page tables are
// in creation order): Index::page_count_at as a forward walk, for
// compare's per-epoch loop (instead of two binary searches every epoch).
uint32_t pages_by(const std::vector<PageMeta>& pages, uint32_t n, Epoch e) {
  while (n < pages.size() && pages[n].created <= e) ++n;
  return n;
}

// ---- recover helpers ----

Status io_error(const fs::path& p, const std::string& what) {
  return Status(Code::kIOError, p.string() + ": " + what + ": " + std::strerror(errno));
}

// Copies bytes [from, end) of `path` to `to` (which must not exist).
Status save_tail(const fs::path& path, uint64_t from, const fs::path& to) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error(path, "cannot read the bytes to cut");
  in.seekg(static_cast<std::streamoff>(from));
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  if (!out) return io_error(to, "cannot save the cut bytes of " + path.string() + " here");
  out << in.rdbuf();
  out.flush();
  if (!out) return io_error(to, "cannot write the cut bytes");
  return Status::OK();
}

// The bytes a file holds: 0 for anything that is not a regular file (a
// directory, a FIFO, a dangling link named like a segment holds no frames).
uint64_t regular_file_bytes(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return 0;
  const uintmax_t n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

fs::path free_name(const fs::path& base) {
  fs::path p = base;
  for (int i = 1; fs::exists(p); ++i) p = base.string() + "." + num(i);
  return p;
}

// Writes `bytes` at offset `at` of `fd` (short writes retried), syncs it
// and closes it; false with errno set when any of that failed.
bool write_sync_close(int fd, std::span<const std::byte> bytes, uint64_t at) {
  size_t done = 0;
  bool ok = true;
  while (ok && done < bytes.size()) {
    const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(at + done));
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  errno = err;
  return ok;
}

// Rewrites segment `seg` of `rec` with the frames `kept` (in file order,
// all before `end`) back to back, then an index and a trailer: frames at
// the offsets `dropped`, and the bytes from `end` on, are left out and
// saved, in that order, to <segment>.damaged. The new file is written
// beside the old one and renamed over it once synced.
Status rewrite_without(const Recording& rec, uint32_t seg, const std::vector<format::IndexEntry>& kept,
                       const std::vector<uint64_t>& dropped, uint64_t end, Epoch seg_last, bool last_segment,
                       format::Compressor& zstd, bool dry_run, RecoverReport* r) {
  const SegmentInfo& s = rec.segments()[seg];
  std::map<uint64_t, uint64_t> size_at;  // frame offset -> its bytes, header included
  for (const FrameRef& f : rec.frames())
    if (f.segment == seg) size_at[f.offset] = format::kFrameHeaderBytes + f.header.payload_bytes;
  uint64_t cut = s.file_bytes - end;
  for (uint64_t off : dropped) cut += off < end ? size_at[off] : 0;  // those after `end` are in the old end
  const fs::path aside = free_name(s.path.string() + ".damaged");
  r->actions.push_back((dry_run ? "would rewrite " : "rewrote ") + s.path.filename().string() + " without " +
                       num(dropped.size()) + " frame(s) (" + num(cut) + " bytes with its old end, " +
                       (dry_run ? "to be saved to " : "saved to ") + aside.filename().string() +
                       "), with an index of " + num(kept.size()) + " frames and a trailer");
  r->bytes_cut += cut;
  r->set_aside.push_back(aside);
  if (dry_run) return Status::OK();

  std::vector<std::byte> old(s.file_bytes);
  {
    std::ifstream in(s.path, std::ios::binary);
    if (!in.read(reinterpret_cast<char*>(old.data()), static_cast<std::streamsize>(old.size())))
      return io_error(s.path, "cannot read the segment to rewrite");
  }
  std::vector<std::byte> out(old.begin(), old.begin() + format::kFileHeaderBytes), saved;
  std::vector<format::IndexEntry> entries;
  for (const format::IndexEntry& e : kept) {
    entries.push_back(e);
    entries.back().offset = out.size();
    out.insert(out.end(), old.begin() + e.offset, old.begin() + e.offset + size_at[e.offset]);
  }
  for (uint64_t off : dropped)
    if (off < end) saved.insert(saved.end(), old.begin() + off, old.begin() + off + size_at[off]);
  saved.insert(saved.end(), old.begin() + end, old.end());
  std::vector<std::byte> tail;
  if (Status st = format::segment_end(entries, out.size(), seg_last, last_segment, zstd, &tail); !st.ok()) return st;
  out.insert(out.end(), tail.begin(), tail.end());

  auto write_synced = [](const fs::path& p, std::span<const std::byte> bytes) -> Status {
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return io_error(p, "cannot create");
    return write_sync_close(fd, bytes, 0) ? Status::OK() : io_error(p, "cannot write");
  };
  if (Status st = write_synced(aside, saved); !st.ok()) return st;
  // Not named like a segment: readers never see it half written.
  const fs::path tmp = free_name(s.path.parent_path() / ("." + s.path.filename().string() + ".rewrite"));
  if (Status st = write_synced(tmp, out); !st.ok()) return st;
  std::error_code ec;
  fs::rename(tmp, s.path, ec);
  if (ec) return Status(Code::kIOError, "cannot rename " + tmp.string() + " to " + s.path.string() + ": " + ec.message());
  return Status::OK();
}

}  // namespace

// ---- verify ----

VerifyReport verify(const fs::path& dir, const Progress& progress) {
  VerifyReport r;
  Result<std::unique_ptr<Recording>> opened = Recording::open(dir);
  if (!opened.ok()) {
    r.opened = false;
    fail(&r, opened.status().message(), dir, 0, 0);
    return r;
  }
  const Recording& rec = **opened;
  r.live = rec.live();
  r.recoverable = !r.live;  // recover() refuses a recording whose writer runs
  // Every frame: checksum, zstd frame, FlatBuffer, and what it holds. Each
  // delta frame of the history, once checked, feeds the index (for the
  // snapshot checks below): it is read and decoded once. The index's own
  // errors come after any damage the walk finds: a start state that cannot
  // be built from a damaged snapshot is that damage, which recover cuts.
  // No checkpoints: the snapshot checks walk forward (check_snapshots).
  IndexOptions index_options;
  index_options.checkpoint_bytes = 0;
  IndexBuilder builder(rec, index_options);
  Status build = builder.start();
  // The deltas checked count toward a failed report too.
  const Walked w = walk_frames(rec, rec.frames().size(), builder, &build, progress,
                               [&](size_t, const Status& s, const DamageAt& at) {
                                 fail(&r, s.message(), at.file, at.offset, at.epoch, at.page);
                                 return false;
                               });
  r.frames = w.frames;
  r.bytes = w.bytes;
  r.deltas = w.deltas;
  if (!r.ok) return r;
  const Status end = rec.missing_end();
  if (!rec.damage().ok()) {
    const DamageAt& d = rec.damage_at();
    r.end_missing = !end.ok() && rec.damage().message() == end.message();
    fail(&r, rec.damage().message() + (r.live ? " (a process is still writing the recording: this may be a frame in flight)"
                                              : " (run 'mmsb-replay recover' to keep the intact part)"),
         d.file, d.offset, d.epoch);
    return r;
  }
  // The walk added every delta frame of the history, so the index has no
  // damage of its own; finish() checks that their epochs cover the history.
  Result<std::unique_ptr<Index>> ix = build;
  if (build.ok()) ix = builder.finish(Status::OK());
  if (!ix.ok()) {  // every frame's content was checked above: this is not damage recover could cut
    fail(&r, ix.status().message(), dir, 0, 0);
    r.recoverable = false;
    return r;
  }
  r.deltas = (*ix)->delta_count();
  // Well-formed frames that disagree with the replay: recover drops that
  // snapshot (not the one the recording starts from: its images are not
  // checked against deltas, there are none before it).
  r.snapshots = check_snapshots(rec, **ix, &r.snapshot_pages,
                                [&](const SnapshotInfo&, const FrameRef& f, const SnapshotImage& where, const Status& st) {
                                  fail(&r, st.message(), rec.segments()[f.segment].path, f.offset, where.epoch,
                                       where.page);
                                  return false;
                                });
  if (!r.ok) return r;
  for (const SegmentInfo& s : rec.segments())
    if (!s.problem.empty()) {
      fail(&r, s.problem, s.path, s.file_bytes - format::kTrailerBytes, 0);
      return r;
    }
  for (const SegmentInfo& s : rec.segments())
    if (!s.closed) {
      fail(&r, s.path.string() + (r.live ? ": segment has no index and trailer yet: a process is still recording into it"
                                         : ": segment has no index and trailer (its writer died before closing it; "
                                           "'mmsb-replay recover' closes it)"),
           s.path, s.good_bytes, 0);
      return r;
    }
  // Only the last segment may say the recording ends with it. One that does
  // with more after it (files put back after a recover, say) is read on
  // into the next; recover clears the mark.
  for (size_t i = 0; i + 1 < rec.segments().size(); ++i) {
    const SegmentInfo& s = rec.segments()[i];
    if (s.format_minor >= format::kMinorLastSegment && s.last_segment == true) {
      fail(&r, s.path.string() + ": its index marks it as the recording's last segment, yet " +
                   rec.segments()[i + 1].path.filename().string() +
                   " follows (readers go on into it; 'mmsb-replay recover' clears the mark)",
           s.path, s.file_bytes - format::kTrailerBytes, 0);
      return r;
    }
  }
  // A live recording's closed last segment that says more follows: its
  // writer is between two files (open() leaves that out of damage()).
  if (r.live && !end.ok()) {
    fail(&r, end.message() + " (a process is still writing the recording: it may be between two segment files)",
         rec.dir(), 0, 0);
    r.end_missing = true;
  }
  return r;
}

// ---- compare ----

Result<CompareReport> compare(const Index& a, const Index& b, const CompareOptions& options,
                              const Progress& progress) {
  CompareReport r;
  r.a_last = a.last_epoch();
  r.b_last = b.last_epoch();
  Result<std::vector<Ignore>> ig_a = resolve_ignores(a, b, options);
  if (!ig_a.ok()) return ig_a.status();
  const auto& pa = a.recording().pages();
  const auto& pb = b.recording().pages();

  StateView sa(a), sb(b);
  CompareReport scratch;  // the differing runs of pages after the first
  // Compares whole states at (ea, eb); true if they differ (r filled, its
  // summary led by `head`, or "diverged at epoch E" when empty).
  auto whole_states_differ = [&](Epoch ea, Epoch eb, Epoch report_epoch, const std::string& head) -> Result<bool> {
    if (Status s = sa.seek(ea); !s.ok()) return s;
    if (Status s = sb.seek(eb); !s.ok()) return s;
    const uint32_t na = sa.page_count(), nb = sb.page_count();
    PageId first = kNoPage;
    for (PageId p = 0; p < std::min(na, nb); ++p) {
      if (!same_page(pa[p], pb[p])) {
        if (first != kNoPage) break;  // an earlier page differs: that one is reported
        diverged_at(&r, report_epoch, pa[p], "has size " + num(pa[p].size) + " in A and " + num(pb[p].size) +
                                                 (pa[p].name != pb[p].name ? " (named '" + printable(pb[p].name) + "')" : "") +
                                                 " in B",
                    head);
        return true;
      }
      if ((*ig_a)[p].whole) continue;
      std::span<const std::byte> x = sa.page(p), y = sb.page(p);
      if (std::memcmp(x.data(), y.data(), x.size()) == 0) continue;
      // The first differing page is reported; the others are listed.
      CompareReport& into = first == kNoPage ? r : scratch;
      differing_runs(x, y, (*ig_a)[p], 0, x.size(), &into);
      if (into.ranges.empty()) continue;
      if (first == kNoPage) first = p;
      else r.also_differ.push_back(p);
    }
    if (first != kNoPage) {
      diverged_at(&r, report_epoch, pa[first], first_range_text(r) + also_text(r, pa), head);
      return true;
    }
    if (na != nb) {
      const PageMeta& extra = na > nb ? pa[nb] : pb[na];
      diverged_at(&r, report_epoch, extra, std::string("exists only in ") + (na > nb ? "A" : "B"), head);
      return true;
    }
    return false;
  };

  if (options.final_only) {
    // Runs of different lengths: the epoch of each run's final state.
    const std::string head = a.last_epoch() == b.last_epoch()
                                 ? ""
                                 : "final states differ (A at epoch " + num(a.last_epoch()) + ", B at epoch " +
                                       num(b.last_epoch()) + ")";
    Result<bool> d = whole_states_differ(a.last_epoch(), b.last_epoch(), a.last_epoch(), head);
    if (!d.ok()) return d.status();
    r.epochs_compared = 1;
    if (!*d) r.summary = "identical final states (A at epoch " + num(a.last_epoch()) + ", B at epoch " +
                         num(b.last_epoch()) + ")";
    return r;
  }

  if (a.start_epoch() != b.start_epoch()) {
    r.outcome = CompareReport::Outcome::kDiverged;
    r.epoch = std::min(a.start_epoch(), b.start_epoch());
    r.summary = "the recordings start at different epochs (A " + num(a.start_epoch()) + ", B " +
                num(b.start_epoch()) + ")";
    return r;
  }
  const Epoch start = a.start_epoch();
  {
    Result<bool> d = whole_states_differ(start, start, start, "");
    if (!d.ok()) return d.status();
    if (*d) return r;
  }
  const Epoch end = std::min(a.last_epoch(), b.last_epoch());
  uint32_t na = sa.page_count(), nb = sb.page_count();
  uint32_t pages_seen = std::min(na, nb);
  // Invariant: the states agree (outside what is ignored) up to e - 1. Equal
  // deltas at e keep them so, and cost a compare of the deltas alone; only
  // where they differ do the StateViews move up to e (applying what they
  // skipped) and the pages the deltas wrote get compared byte by byte.
  for (Epoch e = start + 1; e <= end; ++e) {
    ++r.epochs_compared;
    if (progress && (e & 0xffff) == 0) progress(e - start, end - start);
    // Pages created since the last epoch: same sizes and names in both.
    na = pages_by(pa, na, e);
    nb = pages_by(pb, nb, e);
    for (; pages_seen < std::max(na, nb); ++pages_seen) {
      if (pages_seen >= na || pages_seen >= nb) {
        const PageMeta& p = pages_seen >= na ? pb[pages_seen] : pa[pages_seen];
        diverged_at(&r, e, p, std::string("is created only in ") + (pages_seen >= na ? "B" : "A"));
        return r;
      }
      if (!same_page(pa[pages_seen], pb[pages_seen])) {
        diverged_at(&r, e, pa[pages_seen], "is created with size " + num(pa[pages_seen].size) + " in A and " +
                                                num(pb[pages_seen].size) + " in B" +
                                                (pa[pages_seen].name != pb[pages_seen].name
                                                     ? " (named '" + printable(pb[pages_seen].name) + "')"
                                                     : ""));
        return r;
      }
    }
    // The states agreed before e, so only bytes the two deltas wrote can differ.
    const std::optional<DeltaInfo> da = a.delta(e), db = b.delta(e);
    if (same_delta(da, db)) continue;
    if (Status s = sa.seek(e); !s.ok()) return s;
    if (Status s = sb.seek(e); !s.ok()) return s;
    PageId touched[2] = {da ? da->page : kNoPage, db ? db->page : kNoPage};
    if (touched[0] > touched[1]) std::swap(touched[0], touched[1]);
    if (touched[1] == touched[0]) touched[1] = kNoPage;
    PageId first = kNoPage;  // reported; a second page that differs is listed
    for (PageId p : touched) {
      if (p == kNoPage || p >= na || (*ig_a)[p].whole) continue;
      std::span<const std::byte> x = sa.page(p), y = sb.page(p);
      uint64_t lo = x.size(), hi = 0;
      for (const std::optional<DeltaInfo>& d : {da, db})
        if (d && d->page == p && !d->ranges.empty()) {
          lo = std::min<uint64_t>(lo, d->ranges.front().offset);
          hi = std::max<uint64_t>(hi, d->ranges.back().end());
        }
      if (lo >= hi || std::memcmp(x.data() + lo, y.data() + lo, hi - lo) == 0) continue;
      CompareReport& into = first == kNoPage ? r : scratch;
      differing_runs(x, y, (*ig_a)[p], lo, hi, &into);
      if (into.ranges.empty()) continue;
      if (first == kNoPage) first = p;
      else r.also_differ.push_back(p);
    }
    if (first != kNoPage) {
      diverged_at(&r, e, pa[first], first_range_text(r) + also_text(r, pa));
      return r;
    }
  }
  if (a.last_epoch() != b.last_epoch()) {
    r.outcome = CompareReport::Outcome::kPrefix;
    r.shorter = a.last_epoch() < b.last_epoch() ? "a" : "b";
    r.epoch = end;
    r.summary = std::string("identical up to epoch ") + num(end) + ", where " + (r.shorter == "a" ? "A" : "B") +
                " ends; the other run goes on to epoch " + num(std::max(a.last_epoch(), b.last_epoch())) +
                " (a strict prefix is not identical)";
    return r;
  }
  r.summary = "identical: " + num(r.epochs_compared) + " epochs (" + num(start + 1) + ".." + num(end) +
              "), same states after each";
  if (progress) progress(end - start, end - start);
  return r;
}

// ---- recover ----

Result<RecoverReport> recover(const fs::path& dir, bool dry_run, const Progress& progress) {
  RecoverReport r;
  std::error_code ec;
  // The same words as Recording::open's, for a path that is not a directory.
  if (!fs::exists(dir, ec)) return Status(Code::kNotFound, "no recording at " + dir.string() + " (no such directory)");
  if (!fs::is_directory(dir, ec))
    return Status(Code::kCorruption, dir.string() + " is not a recording directory (it is a file)");
  // Held to the end: no Recorder writes while segments are cut and closed.
  format::DirLock lock;
  if (Status s = lock.acquire(dir); !s.ok()) {
    if (s.code() != Code::kFailedPrecondition) return s;
    std::string who;
    if (auto rec = Recording::open(dir); rec.ok() && (*rec)->meta().pid != 0)
      who = " (its metadata names " + printable((*rec)->meta().program) + ", pid " + num((*rec)->meta().pid) +
            " on host " + printable((*rec)->meta().host) + ")";
    return Status(Code::kFailedPrecondition,
                  s.message() + who + "; recover would cut the frames it is writing: let the program end, or stop it, "
                                      "then recover");
  }
  Result<std::unique_ptr<Recording>> opened = Recording::open(dir);
  if (!opened.ok()) {
    if (opened.status().code() == Code::kUnsupported || opened.status().code() == Code::kIOError) return opened.status();
    r.outcome = RecoverReport::Outcome::kNothing;
    r.summary = "nothing recoverable: " + opened.status().message();
    return r;
  }
  const Recording& rec = **opened;
  // The first damage: what open() met, or an earlier frame whose payload
  // or content fails its checks (open() trusts a closed segment's index;
  // payloads are read here, every one, and what they hold is checked as
  // verify checks it).
  bool damaged = !rec.damage().ok();
  DamageAt dmg = rec.damage_at();
  std::string damage_text = damaged ? rec.damage().message() : "";
  // open() saw the lock held (by this process) and left this out of damage().
  // end_lost: that is all that is wrong so far (damage found in a frame
  // below replaces it).
  bool end_lost = false;
  if (!damaged) {
    if (Status s = rec.missing_end(&dmg); !s.ok()) {
      damaged = end_lost = true;
      damage_text = s.message();
    }
  }
  // Snapshot parts that fail their checks, and are not the recording's
  // start state: dropped (their segment is rewritten without them), the
  // history after them kept. Readers already skip them.
  std::set<size_t> drop;
  // The walk feeds an index (no checkpoints) with the deltas it checks, for
  // the snapshot checks after it: each delta frame is decoded once.
  IndexOptions io;
  io.checkpoint_bytes = 0;
  IndexBuilder builder(rec, io);
  Status build = builder.start();
  size_t end = 0;  // the first frame at or past what open() found
  while (end < rec.frames().size() &&
         !(damaged && (rec.frames()[end].segment > dmg.segment ||
                       (rec.frames()[end].segment == dmg.segment && rec.frames()[end].offset >= dmg.offset))))
    ++end;
  walk_frames(rec, end, builder, &build, progress, [&](size_t i, const Status& st, const DamageAt& at) {
    const FrameRef& f = rec.frames()[i];
    if (f.header.kind == format::FrameKind::kSnapshot &&
        (rec.start_epoch() == 0 || f.header.first_epoch > rec.start_epoch())) {
      drop.insert(i);
      r.actions.push_back((dry_run ? "would drop " : "dropped ") + rec.describe(f) + ", an unreadable snapshot part (" +
                          st.message() + ")");
      return true;
    }
    damaged = true;
    end_lost = false;
    dmg = at;
    damage_text = st.message();
    return false;
  });

  // Snapshots whose well-formed images disagree with the deltas before
  // them (verify's check) are dropped the same way, every part.
  if (build.ok()) {
    Result<std::unique_ptr<Index>> ix =
        builder.finish(damaged ? Status(Code::kCorruption, damage_text) : Status::OK());
    if (ix.ok()) {
      uint64_t images = 0;
      check_snapshots(rec, **ix, &images,
                      [&](const SnapshotInfo& s, const FrameRef&, const SnapshotImage&, const Status& st) {
                        size_t n = 0;
                        for (size_t fi : s.parts) n += drop.insert(fi).second;
                        if (n > 0)
                          r.actions.push_back((dry_run ? "would drop snapshot " : "dropped snapshot ") + num(s.id) +
                                              " (" + num(n) + " part(s)), which disagrees with the deltas (" +
                                              st.message() + ")");
                        return true;
                      });
    }
  }

  // Which segments stay (keep[i] is segment i), where each ends, and the
  // whole frames it keeps.
  struct Keep {
    uint32_t index;
    uint64_t end;  // bytes kept
    bool needs_close;
    std::vector<format::IndexEntry> frames;
    std::vector<uint64_t> dropped;  // offsets of frames left out: the segment is rewritten
    bool only_mark = false;         // whole and closed, closed again only to set its last-segment mark right
  };
  std::vector<Keep> keep;
  for (uint32_t i = 0; i < rec.segments().size(); ++i) {
    const SegmentInfo& s = rec.segments()[i];
    if (damaged && i > dmg.segment) break;
    uint64_t end = s.closed ? s.file_bytes : s.good_bytes;
    if (damaged && i == dmg.segment && dmg.offset > 0) end = std::min(end, dmg.offset);
    const bool cut = end < s.file_bytes;
    keep.push_back(Keep{i, end, !s.closed || cut || !s.problem.empty(), {}, {}, false});
  }
  std::vector<uint64_t> frames_end(keep.size(), format::kFileHeaderBytes);  // end of each one's last kept frame
  for (size_t i = 0; i < rec.frames().size(); ++i) {
    const FrameRef& f = rec.frames()[i];
    const uint64_t f_end = f.offset + format::kFrameHeaderBytes + f.header.payload_bytes;
    if (drop.count(i) && f.segment < keep.size()) {
      keep[f.segment].dropped.push_back(f.offset);
      keep[f.segment].needs_close = true;
      continue;
    }
    if (f.segment < keep.size() && f_end <= keep[f.segment].end) {
      keep[f.segment].frames.push_back(
          format::IndexEntry{f.offset, f.header.first_epoch, f.header.last_epoch, f.header.kind});
      frames_end[f.segment] = std::max(frames_end[f.segment], f_end);
    }
  }
  // A segment rewritten ends with its last kept frame: an old index frame or
  // trailer after it is cut, so the new index frame is the only one.
  for (Keep& k : keep)
    if (k.needs_close) k.end = frames_end[k.index];
  // A segment left with no frame (only its header, or nothing) is set aside.
  while (!keep.empty() && keep.back().frames.empty()) keep.pop_back();
  // The recording now ends with the last segment kept: from format 1.1 on its
  // index must say so, or readers take the segments after it for lost, and
  // no other index may (files put back after a recover bring such a mark).
  for (Keep& k : keep) {
    const SegmentInfo& s = rec.segments()[k.index];
    const bool last = &k == &keep.back();
    if (!k.needs_close && s.format_minor >= format::kMinorLastSegment && s.last_segment != last) {
      k.needs_close = k.only_mark = true;
      k.end = frames_end[k.index];
    }
  }
  // The last segment's old index could not be read: whether it said more
  // follows cannot be told.
  const bool mark_unknown = !keep.empty() &&
                            rec.segments()[keep.back().index].format_minor >= format::kMinorLastSegment &&
                            !rec.segments()[keep.back().index].last_segment.has_value();
  // Nothing of the state survives without a page table, a snapshot or a delta.
  bool any_state = false;
  for (const Keep& k : keep)
    for (const format::IndexEntry& e : k.frames)
      any_state |= e.kind == format::FrameKind::kPageTable || e.kind == format::FrameKind::kSnapshot ||
                   e.kind == format::FrameKind::kDeltas;
  if (!any_state) {
    r.outcome = RecoverReport::Outcome::kNothing;
    r.summary = "nothing recoverable: " + (damaged ? damage_text : "the recording holds no page table or delta");
    return r;
  }

  // Files to set aside: every segment file after the last one kept.
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (format::is_segment_file_name(e.path().filename().string())) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  const fs::path last_kept = rec.segments()[keep.back().index].path;

  Epoch last_delta = rec.last_epoch();
  format::Compressor zstd(1);
  for (const Keep& k : keep) {
    if (!k.needs_close) continue;
    const SegmentInfo& s = rec.segments()[k.index];
    Epoch seg_last = 0;
    for (const format::IndexEntry& e : k.frames)
      if (e.kind == format::FrameKind::kDeltas && e.last_epoch <= last_delta) seg_last = std::max(seg_last, e.last_epoch);
    const bool last_segment = &k == &keep.back();
    if (!k.dropped.empty()) {
      if (Status st = rewrite_without(rec, k.index, k.frames, k.dropped, k.end, seg_last, last_segment, zstd, dry_run,
                                      &r);
          !st.ok())
        return st;
      continue;
    }
    const uint64_t cut = s.file_bytes - k.end;
    if (k.only_mark) {  // its old index and trailer hold nothing the new ones lack: not saved
      r.actions.push_back(last_segment ? (dry_run ? "would mark " : "marked ") + s.path.filename().string() +
                                             " as the recording's last segment (a new index and trailer)"
                                       : (dry_run ? "would clear " : "cleared ") + s.path.filename().string() +
                                             "'s last-segment mark: more segments follow it (a new index and "
                                             "trailer)");
    } else {
      if (cut > 0) {
        const fs::path aside = free_name(s.path.string() + ".damaged");
        r.actions.push_back((dry_run ? "would cut " : "cut ") + s.path.filename().string() + " at offset " +
                            num(k.end) + " (" + num(cut) + " damaged bytes, " +
                            (dry_run ? "to be saved to " : "saved to ") + aside.filename().string() + ")");
        r.bytes_cut += cut;
        r.set_aside.push_back(aside);
        if (!dry_run) {
          if (Status st = save_tail(s.path, k.end, aside); !st.ok()) return st;
        }
      }
      r.actions.push_back((dry_run ? "would close " : "closed ") + s.path.filename().string() + " with an index of " +
                          num(k.frames.size()) + " frames and a trailer");
    }
    if (dry_run) continue;
    std::vector<std::byte> tail;
    if (Status st = format::segment_end(k.frames, k.end, seg_last, last_segment, zstd, &tail); !st.ok()) return st;
    const int fd = ::open(s.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return io_error(s.path, "cannot open for writing");
    if (::ftruncate(fd, static_cast<off_t>(k.end)) != 0) {
      const int err = errno;
      ::close(fd);
      errno = err;
      return io_error(s.path, "cannot cut the segment");
    }
    if (!write_sync_close(fd, tail, k.end)) return io_error(s.path, "cannot rewrite the segment's end");
  }
  // A segment that holds no whole frame (created just before its writer
  // died) takes nothing with it.
  std::vector<bool> has_frames(rec.segments().size(), false);
  for (const FrameRef& f : rec.frames()) has_frames[f.segment] = true;
  std::set<fs::path> frameless;
  for (size_t j = 0; j < rec.segments().size(); ++j)
    if (!has_frames[j]) frameless.insert(rec.segments()[j].path);
  for (const fs::path& f : files) {
    if (f <= last_kept) continue;
    const fs::path aside = free_name(f.string() + ".orphan");
    r.actions.push_back((dry_run ? "would set aside " : "set aside ") + f.filename().string() + " as " +
                        aside.filename().string() +
                        (frameless.count(f) ? " (it holds no whole frame)"
                                            : " (it follows the damage, so its history cannot be joined)"));
    r.bytes_cut += regular_file_bytes(f);
    r.set_aside.push_back(aside);
    if (!dry_run) {
      fs::rename(f, aside, ec);
      if (ec) return Status(Code::kIOError, "cannot rename " + f.string() + ": " + ec.message());
    }
  }

  r.outcome = r.bytes_cut > 0 || end_lost ? RecoverReport::Outcome::kCut : RecoverReport::Outcome::kIntact;
  Epoch kept_last = rec.start_epoch();
  for (const Keep& k : keep)
    for (const format::IndexEntry& e : k.frames)
      if (e.kind == format::FrameKind::kDeltas) kept_last = std::max(kept_last, e.last_epoch);
  r.last_good_epoch = std::min(rec.last_epoch(), kept_last);
  for (const FrameRef& f : rec.frames())
    if (f.header.kind == format::FrameKind::kDeltas && f.header.last_epoch > r.last_good_epoch)
      r.lost_last = std::max(r.lost_last, f.header.last_epoch);
  r.deltas_kept = r.last_good_epoch >= rec.first_delta_epoch() && rec.delta_count()
                      ? r.last_good_epoch - rec.first_delta_epoch() + 1
                      : 0;
  if (!dry_run) {  // what a reader now sees
    Result<std::unique_ptr<Recording>> again = Recording::open(dir);
    if (!again.ok()) return again.status();
    if (!(*again)->damage().ok())
      return Status(Code::kCorruption, "recovery left damage behind: " + (*again)->damage().message());
    r.last_good_epoch = (*again)->last_epoch();
    r.deltas_kept = (*again)->delta_count();
  }
  if (r.outcome == RecoverReport::Outcome::kIntact)
    r.summary = r.actions.empty() ? "intact: nothing to do; last epoch " + num(r.last_good_epoch)
                                  : (dry_run ? "nothing would be lost; last epoch " : "nothing lost; last epoch ") +
                                        num(r.last_good_epoch);
  else if (end_lost) {
    r.summary = damage_text + (dry_run ? "; would mark " : "; marked ") +
                rec.segments()[keep.back().index].path.filename().string() + " as the last segment" +
                (r.bytes_cut > 0 ? " and set aside " + num(r.bytes_cut) + " bytes" : "") + "; every epoch up to " +
                num(r.last_good_epoch) + (dry_run ? " would be kept" : " kept");
  } else if (!damaged) {  // an index, a trailer, snapshot parts, a mark: every delta stays
    r.summary = (dry_run ? "would repair, losing no epoch: " : "repaired, no epoch lost: ") + num(r.bytes_cut) +
                (dry_run ? " bytes would be set aside" : " bytes set aside") + "; every epoch up to " +
                num(r.last_good_epoch) + (dry_run ? " would be kept" : " kept");
  } else {
    r.summary = (dry_run ? "would cut from the first damage on: " : "cut from the first damage on: ") +
                num(r.bytes_cut) + (dry_run ? " bytes would be set aside" : " bytes set aside");
    if (r.lost_last > r.last_good_epoch)
      r.summary += ", holding epochs " + num(r.last_good_epoch + 1) + ".." + num(r.lost_last);
    r.summary += "; every epoch up to " + num(r.last_good_epoch) + (dry_run ? " would be kept" : " kept");
  }
  if (mark_unknown && !end_lost)
    r.summary += " (" + rec.segments()[keep.back().index].path.filename().string() +
                 "'s old index could not be read, so whether segment files followed it cannot be told)";
  return r;
}

// ---- export / restore ----

Result<ExportReport> export_state(const Index& index, Epoch epoch, const fs::path& out_dir) {
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_directory(out_dir, ec))
    return Status(Code::kAlreadyExists, out_dir.string() + " exists and is not a directory; export into a new directory");
  if (fs::exists(out_dir, ec) && !fs::is_empty(out_dir, ec))
    return Status(Code::kAlreadyExists, out_dir.string() + " is a directory that is not empty; export into a new or empty directory");
  fs::create_directories(out_dir, ec);
  if (ec) return Status(Code::kIOError, "cannot create " + out_dir.string() + ": " + ec.message());
  StateView view(index);
  if (Status s = view.seek(epoch); !s.ok()) return s;
  ExportReport r;
  r.epoch = epoch;
  r.manifest = out_dir / "manifest.json";
  const auto& pages = index.recording().pages();
  // Laid out by hand, one page per line; names and paths are escaped by the
  // project's JSON writer (arbitrary bytes included).
  std::string m = "{\n  \"recording\": " + json_string(index.recording().dir().string()) + ",\n  \"epoch\": " +
                  num(epoch) + ",\n  \"state_hash\": \"" + [&] {
                    char b[24];
                    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(view.state_hash()));
                    return std::string(b);
                  }() + "\",\n  \"pages\": [";
  for (PageId p = 0; p < view.page_count(); ++p) {
    std::span<const std::byte> bytes = view.page(p);
    const std::string file = "page-" + num(p) + ".bin";
    std::ofstream out(out_dir / file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) return Status(Code::kIOError, "cannot write " + (out_dir / file).string());
    char h[24];
    std::snprintf(h, sizeof h, "%016llx", static_cast<unsigned long long>(hash_bytes(bytes)));
    m += std::string(p ? "," : "") + "\n    {\"id\": " + num(p) + ", \"name\": " + json_string(pages[p].name) +
         ", \"size\": " + num(bytes.size()) + ", \"version\": " + num(view.version(p)) + ", \"file\": \"" + file +
         "\", \"xxh3_64\": \"" + h + "\"}";
    ++r.pages;
    r.bytes += bytes.size();
  }
  m += "\n  ]\n}\n";
  std::ofstream out(r.manifest, std::ios::trunc);
  out << m;
  if (!out) return Status(Code::kIOError, "cannot write " + r.manifest.string());
  return r;
}

Status restore(const Index& index, Epoch epoch, Bus& bus) {
  if (bus.page_count() != 0)
    return Status(Code::kFailedPrecondition, "restore needs a bus with no pages; this one has " +
                                                 num(bus.page_count()));
  StateView view(index);
  if (Status s = view.seek(epoch); !s.ok()) return s;
  const auto& pages = index.recording().pages();
  for (PageId p = 0; p < view.page_count(); ++p) {
    Result<PageId> id = bus.create_page(pages[p].size, pages[p].name);
    if (!id.ok()) return id.status();
    if (*id != p)
      return Status(Code::kFailedPrecondition, "restore: the bus gave page id " + num(*id) + ", expected " + num(p));
    std::span<const std::byte> bytes = view.page(p);
    // All-zero pages need no delta: a new page is zero.
    if (std::any_of(bytes.begin(), bytes.end(), [](std::byte b) { return b != std::byte{0}; }))
      if (Status s = bus.assign(p, bytes); !s.ok()) return s;
  }
  return Status::OK();
}

}  // namespace mmsb::replay
