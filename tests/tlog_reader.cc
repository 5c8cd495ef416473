// tlogr implementation: see tlog_reader.h. Written from docs/FORMAT.md only.
#include "tlog_reader.h"

#define XXH_INLINE_ALL
#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <flatbuffers/flatbuffers.h>

#include "mmsb/fb/mmsb_tlog_generated.h"

namespace tlogr {

namespace fs = std::filesystem;
namespace fbs = mmsb::fb;

uint32_t checksum(const uint8_t* p, size_t n) { return static_cast<uint32_t>(XXH3_64bits(p, n)); }

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<uint8_t> out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return out;
}

void write_file(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

namespace {

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}
uint64_t le64(const uint8_t* p) { return uint64_t{le32(p)} | (uint64_t{le32(p + 4)} << 32); }

std::string at(const Segment& s, uint64_t off) { return s.name + " offset " + std::to_string(off); }

// Per-vector helpers: the values of a uint vector as uint64 (nullptr -> empty).
template <class V>
std::vector<uint64_t> widen(const V* v) {
  std::vector<uint64_t> out;
  if (v)
    for (auto x : *v) out.push_back(static_cast<uint64_t>(x));
  return out;
}

class Walker {
 public:
  explicit Walker(Recording& r) : r_(r) {}

  void run();

 private:
  void problem(const std::string& s) { r_.problems.push_back(s); }
  // Reads one segment; returns false when nothing after it may be read.
  bool segment(size_t si);
  // Parses the frame at `pos`; "" when readable (fills f, raw), else why not.
  std::string parse(const Segment& s, const std::vector<uint8_t>& file, uint64_t pos, Frame* f,
                    std::vector<uint8_t>* raw);
  // Applies a decoded frame's content; false when it is unusable (a problem
  // was recorded, or the history has a gap).
  bool content(size_t fi, const fbs::Frame* root);
  bool meta(Segment& s, const Frame& f, const fbs::Meta* m);
  bool page_table(const Frame& f, size_t fi, const fbs::PageTable* t);
  bool deltas(const Frame& f, size_t fi, const fbs::DeltaBatch* b);
  bool snapshot(const Frame& f, size_t fi, const fbs::Snapshot* s);

  Recording& r_;
  uint64_t next_epoch_ = 0;  // epoch the next delta must have
  bool stopped_ = false;     // a gap: nothing after it is history
  bool first_segment_ = true;
};

std::string Walker::parse(const Segment& s, const std::vector<uint8_t>& file, uint64_t pos, Frame* f,
                          std::vector<uint8_t>* raw) {
  const uint64_t size = file.size();
  if (size - pos < kFrameHeaderBytes) {
    if (std::memcmp(file.data() + pos, "MMSF", std::min<uint64_t>(4, size - pos)) != 0)
      return "bad frame magic at " + at(s, pos) + " (" + std::to_string(size - pos) + " bytes left)";
    return "torn frame header at " + at(s, pos) + " (" + std::to_string(size - pos) + " bytes left)";
  }
  const uint8_t* h = file.data() + pos;
  if (std::memcmp(h, "MMSF", 4) != 0) return "bad frame magic at " + at(s, pos);
  if (checksum(h, 36) != le32(h + 36)) return "bad frame header checksum at " + at(s, pos);
  f->offset = pos;
  f->kind = h[4];
  f->flags = h[5];
  const uint16_t hsize = le16(h + 6);
  f->payload_bytes = le32(h + 8);
  f->raw_bytes = le32(h + 12);
  f->first_epoch = le64(h + 16);
  f->last_epoch = le64(h + 24);
  if (hsize != kFrameHeaderBytes) return "frame header size " + std::to_string(hsize) + " at " + at(s, pos);
  if (f->payload_bytes > size - pos - kFrameHeaderBytes)
    return "frame payload runs past the end of the file at " + at(s, pos);
  const uint8_t* payload = h + kFrameHeaderBytes;
  if (checksum(payload, f->payload_bytes) != le32(h + 32)) return "bad payload checksum at " + at(s, pos);
  // From here on the frame is what the writer wrote: anything wrong is a problem.
  if (!(f->flags & 1)) return "PROBLEM: flags without the zstd bit at " + at(s, pos);
  if (ZSTD_findFrameCompressedSize(payload, f->payload_bytes) != f->payload_bytes)
    return "PROBLEM: payload is not exactly one zstd frame at " + at(s, pos);
  const unsigned long long content = ZSTD_getFrameContentSize(payload, f->payload_bytes);
  if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != f->raw_bytes)
    return "PROBLEM: zstd content size " + std::to_string(content) + " != raw size " +
           std::to_string(f->raw_bytes) + " at " + at(s, pos);
  raw->assign(f->raw_bytes, 0);
  const size_t n = ZSTD_decompress(raw->data(), raw->size(), payload, f->payload_bytes);
  if (ZSTD_isError(n)) return std::string("PROBLEM: zstd: ") + ZSTD_getErrorName(n) + " at " + at(s, pos);
  if (n != f->raw_bytes) return "PROBLEM: decompressed size differs from raw size at " + at(s, pos);
  return {};
}

bool Walker::meta(Segment& s, const Frame& f, const fbs::Meta* m) {
  s.has_meta = true;
  s.meta_major = m->format_major();
  s.meta_minor = m->format_minor();
  s.program = m->program() ? m->program()->str() : "";
  s.host = m->host() ? m->host()->str() : "";
  s.pid = m->pid();
  s.start_time_ns = m->start_time_ns();
  s.default_page_size = m->default_page_size();
  if (m->labels())
    for (const fbs::Label* l : *m->labels())
      s.labels[l->key() ? l->key()->str() : ""] = l->value() ? l->value()->str() : "";
  s.meta_segment = m->segment();
  s.meta_start_epoch = m->start_epoch();
  bool ok = true;
  if (s.meta_segment != s.number || s.meta_start_epoch != s.start_epoch || f.first_epoch != s.start_epoch ||
      f.last_epoch != s.start_epoch) {
    problem("meta of " + at(s, f.offset) + " says segment " + std::to_string(s.meta_segment) + " start epoch " +
            std::to_string(s.meta_start_epoch) + ", frame epochs " + std::to_string(f.first_epoch) + ".." +
            std::to_string(f.last_epoch) + "; the file header says segment " + std::to_string(s.number) +
            " start epoch " + std::to_string(s.start_epoch));
    ok = false;
  }
  if (s.meta_major != s.major || s.meta_minor != s.minor) {
    problem("meta version " + std::to_string(s.meta_major) + "." + std::to_string(s.meta_minor) +
            " != file header version in " + s.name);
    ok = false;
  }
  return ok;
}

bool Walker::page_table(const Frame& f, size_t fi, const fbs::PageTable* t) {
  const Segment& s = r_.segments[f.segment];
  const auto ids = widen(t->ids());
  const auto sizes = widen(t->sizes());
  const auto epochs = widen(t->epochs());
  const size_t n = ids.size();
  if (n == 0 || sizes.size() != n || epochs.size() != n || !t->names() || t->names()->size() != n) {
    problem("page table at " + at(s, f.offset) + ": columns of different lengths or empty");
    return false;
  }
  if (f.first_epoch != epochs.front() || f.last_epoch != epochs.back()) {
    problem("page table at " + at(s, f.offset) + ": header epochs " + std::to_string(f.first_epoch) + ".." +
            std::to_string(f.last_epoch) + " != creation epochs of its first/last page");
  }
  for (size_t i = 0; i < n; ++i) {
    PageDecl p;
    p.id = static_cast<uint32_t>(ids[i]);
    p.size = sizes[i];
    p.name = t->names()->Get(static_cast<flatbuffers::uoffset_t>(i))->str();
    p.created_epoch = epochs[i];
    p.frame = fi;
    if (p.id < r_.pages.size()) {  // declared again: must agree
      const PageDecl& q = r_.pages[p.id];
      if (q.size != p.size || q.name != p.name || q.created_epoch != p.created_epoch)
        problem("page " + std::to_string(p.id) + " declared again differently at " + at(s, f.offset));
      continue;
    }
    if (p.id != r_.pages.size()) {
      problem("page table at " + at(s, f.offset) + " declares page " + std::to_string(p.id) + " but the next id is " +
              std::to_string(r_.pages.size()));
      return false;
    }
    if (p.size == 0 || p.size > std::numeric_limits<uint32_t>::max()) {
      problem("page " + std::to_string(p.id) + " has size " + std::to_string(p.size));
      return false;
    }
    if (!r_.pages.empty() && p.created_epoch < r_.pages.back().created_epoch)
      problem("page " + std::to_string(p.id) + " created before page " + std::to_string(p.id - 1));
    r_.pages.push_back(std::move(p));
  }
  return true;
}

bool Walker::deltas(const Frame& f, size_t fi, const fbs::DeltaBatch* b) {
  const Segment& s = r_.segments[f.segment];
  const std::string where = "delta frame at " + at(s, f.offset);
  const uint64_t first = b->first_epoch();
  const uint32_t count = b->count();
  if (count == 0 || f.first_epoch != first || f.last_epoch != first + count - 1) {
    problem(where + ": header epochs " + std::to_string(f.first_epoch) + ".." + std::to_string(f.last_epoch) +
            " vs batch first_epoch " + std::to_string(first) + " count " + std::to_string(count));
    return false;
  }
  if (first != next_epoch_) {
    r_.gap = where + ": first epoch " + std::to_string(first) + " does not continue the history (expected " +
             std::to_string(next_epoch_) + ")";
    stopped_ = true;
    return false;
  }
  // Columns: exactly one of the 8/16/32-bit vectors present, the narrowest
  // that holds every value of the batch.
  auto pick = [&](const auto* v8, const auto* v16, const auto* v32, const char* name, std::vector<uint64_t>* out) {
    if ((v8 != nullptr) + (v16 != nullptr) + (v32 != nullptr) != 1) {
      problem(where + ": " + name + ": exactly one of the 8/16/32-bit columns must be present");
      return false;
    }
    *out = v8 ? widen(v8) : v16 ? widen(v16) : widen(v32);
    const uint64_t max = out->empty() ? 0 : *std::max_element(out->begin(), out->end());
    const int width = v8 ? 8 : v16 ? 16 : 32;
    const int narrowest = max < 256 ? 8 : max < 65536 ? 16 : 32;
    if (width != narrowest) {
      problem(where + ": " + name + std::to_string(width) + " used although the narrowest width for max value " +
              std::to_string(max) + " is " + std::to_string(narrowest));
      return false;
    }
    return true;
  };
  std::vector<uint64_t> pages, offsets, lengths;
  if (!pick(b->page8(), b->page16(), b->page32(), "page", &pages)) return false;
  if (pages.size() != count) {
    problem(where + ": " + std::to_string(pages.size()) + " page ids for " + std::to_string(count) + " deltas");
    return false;
  }
  std::vector<uint64_t> range_counts(count, 1);
  if (b->range_counts()) {
    range_counts = widen(b->range_counts());
    if (range_counts.size() != count) {
      problem(where + ": range_counts has " + std::to_string(range_counts.size()) + " entries");
      return false;
    }
  }
  uint64_t nranges = 0;
  for (uint64_t c : range_counts) nranges += c;
  if (!pick(b->offset8(), b->offset16(), b->offset32(), "offset", &offsets)) return false;
  if (!pick(b->length8(), b->length16(), b->length32(), "length", &lengths)) return false;
  if (offsets.size() != nranges || lengths.size() != nranges) {
    problem(where + ": " + std::to_string(offsets.size()) + " offsets / " + std::to_string(lengths.size()) +
            " lengths for " + std::to_string(nranges) + " ranges");
    return false;
  }
  uint64_t total = 0;
  for (uint64_t l : lengths) total += l;
  const uint64_t data_size = b->data() ? b->data()->size() : 0;
  if (data_size != total) {
    problem(where + ": data has " + std::to_string(data_size) + " bytes, lengths sum to " + std::to_string(total));
    return false;
  }
  std::vector<uint64_t> causes(count, 0);
  const auto derived = widen(b->derived());
  const auto cause_col = widen(b->causes());
  if (derived.size() != cause_col.size()) {
    problem(where + ": derived and causes differ in length");
    return false;
  }
  for (size_t k = 0; k < derived.size(); ++k) {
    const uint64_t i = derived[k];
    if (i >= count || (k > 0 && derived[k - 1] >= i)) {
      problem(where + ": derived index " + std::to_string(i) + " out of range or not increasing");
      return false;
    }
    if (cause_col[k] == 0 || cause_col[k] >= first + i) {
      problem(where + ": cause " + std::to_string(cause_col[k]) + " of epoch " + std::to_string(first + i) +
              " is not in (0, epoch)");
      return false;
    }
    causes[i] = cause_col[k];
  }
  std::vector<Delta> out;
  const uint8_t* data = b->data() ? b->data()->data() : nullptr;
  uint64_t r = 0, d = 0;
  for (uint32_t i = 0; i < count; ++i) {
    Delta x;
    x.epoch = first + i;
    x.page = static_cast<uint32_t>(pages[i]);
    x.cause = causes[i];
    x.frame = fi;
    const std::string what = where + ": delta epoch " + std::to_string(x.epoch) + " page " + std::to_string(x.page);
    if (x.page >= r_.pages.size()) {
      problem(what + " refers to a page no earlier page table declared");
      return false;
    }
    const PageDecl& p = r_.pages[x.page];
    if (p.created_epoch >= x.epoch) {
      problem(what + " precedes the page's creation epoch " + std::to_string(p.created_epoch));
      return false;
    }
    if (range_counts[i] == 0) {
      problem(what + " has no range");
      return false;
    }
    uint64_t prev_end = 0;
    for (uint64_t k = 0; k < range_counts[i]; ++k, ++r) {
      const model::Run run{offsets[r], lengths[r]};
      if (run.length == 0 || (k > 0 && run.offset < prev_end) || run.offset + run.length > p.size) {
        problem(what + ": range " + std::to_string(run.offset) + "+" + std::to_string(run.length) +
                " is empty, unsorted, overlapping or outside the page (size " + std::to_string(p.size) + ")");
        return false;
      }
      prev_end = run.offset + run.length;
      x.runs.push_back(run);
      x.bytes.insert(x.bytes.end(), data + d, data + d + run.length);
      d += run.length;
    }
    out.push_back(std::move(x));
  }
  for (Delta& x : out) r_.deltas.push_back(std::move(x));
  next_epoch_ = first + count;
  r_.last_epoch = first + count - 1;
  return true;
}

bool Walker::snapshot(const Frame& f, size_t fi, const fbs::Snapshot* sn) {
  const Segment& s = r_.segments[f.segment];
  const std::string where = "snapshot frame at " + at(s, f.offset);
  SnapshotPart p;
  p.id = sn->id();
  p.part = sn->part();
  p.parts = sn->parts();
  p.page_count = sn->page_count();
  p.epoch = f.first_epoch;
  p.frame = fi;
  if (sn->ids())
    for (uint32_t x : *sn->ids()) p.ids.push_back(x);
  p.versions = widen(sn->versions());
  p.epochs = widen(sn->epochs());
  p.sizes = widen(sn->sizes());
  const size_t n = p.ids.size();
  if (p.versions.size() != n || p.epochs.size() != n || p.sizes.size() != n) {
    problem(where + ": columns of different lengths");
    return false;
  }
  if (f.first_epoch != f.last_epoch) problem(where + ": first epoch != last epoch");
  for (uint64_t e : p.epochs)
    if (e != f.first_epoch) {
      problem(where + ": page epoch " + std::to_string(e) + " != the frame's epoch " + std::to_string(f.first_epoch));
      return false;
    }
  if (p.parts == 0 || p.part >= p.parts) {
    problem(where + ": part " + std::to_string(p.part) + " of " + std::to_string(p.parts));
    return false;
  }
  // "Every delta of epoch <= e is written in frames that precede a snapshot part of epoch e."
  if (p.epoch > r_.last_epoch) {
    problem(where + ": part epoch " + std::to_string(p.epoch) + " but the deltas before it end at " +
            std::to_string(r_.last_epoch));
    return false;
  }
  if (p.epoch < r_.start_epoch) {
    problem(where + ": part epoch " + std::to_string(p.epoch) + " precedes the recording's start");
    return false;
  }
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (p.ids[i] >= r_.pages.size()) {
      problem(where + ": page " + std::to_string(p.ids[i]) + " was never declared");
      return false;
    }
    if (r_.pages[p.ids[i]].size != p.sizes[i]) {
      problem(where + ": page " + std::to_string(p.ids[i]) + " size " + std::to_string(p.sizes[i]) +
              " != declared " + std::to_string(r_.pages[p.ids[i]].size));
      return false;
    }
    if (i > 0 && p.ids[i] != p.ids[i - 1] + 1) {
      problem(where + ": page ids not consecutive");
      return false;
    }
    if (p.ids[i] >= p.page_count) {
      problem(where + ": page " + std::to_string(p.ids[i]) + " >= page_count " + std::to_string(p.page_count));
      return false;
    }
    total += p.sizes[i];
  }
  const uint64_t data_size = sn->data() ? sn->data()->size() : 0;
  if (data_size != total) {
    problem(where + ": data has " + std::to_string(data_size) + " bytes, sizes sum to " + std::to_string(total));
    return false;
  }
  const uint8_t* data = sn->data() ? sn->data()->data() : nullptr;
  uint64_t off = 0;
  for (size_t i = 0; i < n; ++i) {
    p.images.emplace_back(data + off, data + off + p.sizes[i]);
    off += p.sizes[i];
  }
  // Attach to its snapshot.
  if (r_.snapshots.size() <= p.id) {
    if (p.id != r_.snapshots.size()) problem(where + ": snapshot id " + std::to_string(p.id) + " skips ids");
    r_.snapshots.resize(p.id + 1);
  }
  Snapshot& S = r_.snapshots[p.id];
  if (S.part_index.empty()) {
    S.id = p.id;
    S.parts = p.parts;
    S.page_count = p.page_count;
    S.part_index.assign(p.parts, SIZE_MAX);
  } else if (S.parts != p.parts || S.page_count != p.page_count) {
    problem(where + ": parts/page_count disagree with earlier parts of snapshot " + std::to_string(p.id));
    return false;
  }
  if (S.part_index[p.part] != SIZE_MAX) {
    problem(where + ": part " + std::to_string(p.part) + " of snapshot " + std::to_string(p.id) + " appears twice");
    return false;
  }
  // Parts are written in order 0, 1, ..., with non-decreasing epochs.
  if (p.part > 0 && S.part_index[p.part - 1] == SIZE_MAX) {
    problem(where + ": part " + std::to_string(p.part) + " of snapshot " + std::to_string(p.id) +
            " before part " + std::to_string(p.part - 1));
    return false;
  }
  if (p.part > 0 && r_.parts[S.part_index[p.part - 1]].epoch > p.epoch) {
    problem(where + ": part epochs decrease");
    return false;
  }
  if (p.part > 0 && !p.ids.empty() && !r_.parts[S.part_index[p.part - 1]].ids.empty() &&
      p.ids.front() != r_.parts[S.part_index[p.part - 1]].ids.back() + 1) {
    problem(where + ": part does not continue the previous part's page ids");
    return false;
  }
  if (p.part == 0) {
    if (!p.ids.empty() && p.ids.front() != 0) problem(where + ": part 0 does not start at page 0");
    // "A snapshot lists every page that exists at the epoch e0 of its part 0."
    uint32_t existing = 0;
    while (existing < r_.pages.size() && r_.pages[existing].created_epoch < p.epoch) ++existing;
    if (p.page_count < existing)
      problem(where + ": page_count " + std::to_string(p.page_count) + " but " + std::to_string(existing) +
              " pages were created before its epoch " + std::to_string(p.epoch) + " (page " +
              std::to_string(p.page_count) + " created at " + std::to_string(r_.pages[p.page_count].created_epoch) +
              ")");
  }
  S.part_index[p.part] = r_.parts.size();
  r_.parts.push_back(std::move(p));
  return true;
}

bool Walker::content(size_t fi, const fbs::Frame* root) {
  const Frame& f = r_.frames[fi];
  Segment& s = r_.segments[f.segment];
  const fbs::Body want = f.kind == kMeta        ? fbs::Body::Meta
                         : f.kind == kPageTable ? fbs::Body::PageTable
                         : f.kind == kDeltas    ? fbs::Body::DeltaBatch
                         : f.kind == kSnapshot  ? fbs::Body::Snapshot
                                                : fbs::Body::SegmentIndex;
  if (root->body_type() != want || root->body() == nullptr) {
    problem("frame at " + at(s, f.offset) + " of kind " + std::to_string(f.kind) + " holds body type " +
            std::to_string(static_cast<int>(root->body_type())));
    return false;
  }
  const bool first_in_segment = fi == s.first_frame;
  if (first_in_segment != (f.kind == kMeta))
    problem("frame at " + at(s, f.offset) + ": a meta frame must open every segment, and only open it");
  switch (f.kind) {
    case kMeta: return meta(s, f, root->body_as_Meta());
    case kPageTable: return page_table(f, fi, root->body_as_PageTable());
    case kDeltas: return deltas(f, fi, root->body_as_DeltaBatch());
    case kSnapshot: return snapshot(f, fi, root->body_as_Snapshot());
    case kIndex:
      if (f.first_epoch != 0 || f.last_epoch != 0) problem("index frame at " + at(s, f.offset) + ": epochs not 0");
      return true;
  }
  return true;
}

bool Walker::segment(size_t si) {
  Segment& s = r_.segments[si];
  const std::vector<uint8_t> file = read_file(s.path);
  s.file_size = file.size();
  s.first_frame = r_.frames.size();
  if (file.size() < kFileHeaderBytes) {
    s.stop = "torn file header: " + s.name + " has " + std::to_string(file.size()) + " bytes";
    if (first_segment_) r_.error = s.stop + " -- no readable segment";
    return false;
  }
  const uint8_t* h = file.data();
  if (std::memcmp(h, "MMSBTLOG", 8) != 0 || checksum(h, 28) != le32(h + 28)) {
    s.stop = s.name + " offset 0: not a recording segment (bad magic or header checksum)";
    if (first_segment_) r_.error = s.stop;
    return false;
  }
  s.major = le16(h + 8);
  s.minor = le16(h + 10);
  s.number = le32(h + 12);
  s.start_epoch = le64(h + 16);
  if (s.major != 1) {
    s.stop = s.name + ": format version " + std::to_string(s.major) + "." + std::to_string(s.minor) +
             " is not readable by this reader (version 1.0)";
    r_.error = s.stop;
    return false;
  }
  s.header_ok = true;
  if (le32(h + 24) != 0) problem(s.name + ": reserved header field is not 0");
  if (s.number != si) problem(s.name + ": header says segment " + std::to_string(s.number));
  if (first_segment_) {
    r_.start_epoch = r_.last_epoch = s.start_epoch;
    next_epoch_ = s.start_epoch + 1;
    first_segment_ = false;
  } else if (!stopped_ && s.start_epoch != r_.last_epoch) {
    const std::string what = s.name + ": start epoch " + std::to_string(s.start_epoch) +
                             " but the history so far ends at " + std::to_string(r_.last_epoch);
    if (r_.segments[si - 1].stop.empty()) {
      problem(what);
    } else {  // the previous segment is damaged: its lost frames are a gap
      r_.gap = what + " (" + r_.segments[si - 1].name + " is damaged)";
      stopped_ = true;
    }
  }

  // Trailer.
  if (file.size() >= kFileHeaderBytes + kFrameHeaderBytes + kTrailerBytes) {
    const uint8_t* t = file.data() + file.size() - kTrailerBytes;
    if (std::memcmp(t, "MMSBTEND", 8) == 0 && checksum(t, 28) == le32(t + 28)) {
      s.has_trailer = true;
      s.trailer_index_offset = le64(t + 8);
      s.trailer_last_epoch = le64(t + 16);
      s.trailer_frames = le32(t + 24);
    }
  }

  // Scan.
  uint64_t pos = kFileHeaderBytes;
  const uint64_t end = s.has_trailer ? file.size() - kTrailerBytes : file.size();
  std::vector<uint8_t> raw;
  std::vector<fbs::FrameEntry> index_entries;
  bool index_seen = false;
  uint64_t last_delta_in_segment = 0;
  while (pos < end) {
    Frame f;
    f.segment = si;
    std::string why = parse(s, file, pos, &f, &raw);
    if (why.empty()) {
      flatbuffers::Verifier v(raw.data(), raw.size());
      if (!fbs::VerifyFrameBuffer(v)) why = "PROBLEM: payload is not a valid Frame FlatBuffer at " + at(s, pos);
    }
    if (why.rfind("PROBLEM: ", 0) == 0) {
      problem(why.substr(9));
      why = why.substr(9);
    }
    if (!why.empty()) {
      s.stop = why;
      break;
    }
    if (f.first_epoch > f.last_epoch) problem("frame at " + at(s, pos) + ": first epoch > last epoch");
    if (index_seen) problem("frame at " + at(s, pos) + " follows the index frame");
    const size_t fi = r_.frames.size();
    r_.frames.push_back(f);
    s.frame_count = r_.frames.size() - s.first_frame;
    s.readable_end = f.end();
    pos = f.end();
    const fbs::Frame* root = fbs::GetFrame(raw.data());
    if (f.kind == kIndex) {
      index_seen = true;
      const fbs::SegmentIndex* idx = root->body_as_SegmentIndex();
      if (idx && idx->frames())
        for (const fbs::FrameEntry* e : *idx->frames()) index_entries.push_back(*e);
      if (idx) s.last_segment = idx->last_segment();
    }
    if (f.kind == kDeltas) last_delta_in_segment = f.last_epoch;
    if (f.kind < kMeta || f.kind > kIndex) continue;  // a newer minor's kind: skippable
    if (stopped_) continue;
    if (!content(fi, root)) {
      if (stopped_) continue;  // a gap: keep listing frames, apply nothing more
      s.stop = "unusable frame at " + at(s, f.offset) + " (see problems)";
      break;
    }
  }
  if (s.stop.empty()) s.readable_end = pos;

  // Index and trailer against the scan.
  if (s.has_trailer) {
    std::string bad;
    const size_t n = s.frame_count;
    if (!s.stop.empty()) bad = "the scan stopped before the trailer";
    else if (n == 0 || r_.frames[s.first_frame + n - 1].kind != kIndex) bad = "the last frame is not an index";
    else if (r_.frames[s.first_frame + n - 1].offset != s.trailer_index_offset)
      bad = "trailer index offset " + std::to_string(s.trailer_index_offset) + " != index frame at " +
            std::to_string(r_.frames[s.first_frame + n - 1].offset);
    else if (s.trailer_frames != n - 1)
      bad = "trailer counts " + std::to_string(s.trailer_frames) + " frames, the scan " + std::to_string(n - 1);
    else if (index_entries.size() != n - 1)
      bad = "index lists " + std::to_string(index_entries.size()) + " frames, the scan " + std::to_string(n - 1);
    else if (s.trailer_last_epoch != last_delta_in_segment)
      bad = "trailer last epoch " + std::to_string(s.trailer_last_epoch) + " != the segment's last delta epoch " +
            std::to_string(last_delta_in_segment) + " (0 if none)";
    for (size_t i = 0; bad.empty() && i < index_entries.size(); ++i) {
      const Frame& f = r_.frames[s.first_frame + i];
      const fbs::FrameEntry& e = index_entries[i];
      if (e.offset() != f.offset || e.kind() != f.kind || e.first_epoch() != f.first_epoch ||
          e.last_epoch() != f.last_epoch)
        bad = "index entry " + std::to_string(i) + " (offset " + std::to_string(e.offset()) + " kind " +
              std::to_string(e.kind()) + " epochs " + std::to_string(e.first_epoch()) + ".." +
              std::to_string(e.last_epoch()) + ") != scanned frame (offset " + std::to_string(f.offset) + " kind " +
              std::to_string(f.kind) + " epochs " + std::to_string(f.first_epoch) + ".." +
              std::to_string(f.last_epoch) + ")";
    }
    if (bad.empty()) {
      s.index_ok = true;
    } else if (s.stop.empty()) {
      problem(s.name + ": trailer/index disagree with the scan: " + bad);
    }
  } else if (index_seen && s.stop.empty()) {
    problem(s.name + ": an index frame but no trailer after it");
  }
  return true;
}

void Walker::run() {
  std::error_code ec;
  if (!fs::is_directory(r_.dir, ec)) {
    r_.error = r_.dir.string() + ": not a directory";
    return;
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(r_.dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() == 15 && n.rfind("seg-", 0) == 0 && n.substr(10) == ".tlog" &&
        std::all_of(n.begin() + 4, n.begin() + 10, [](char c) { return c >= '0' && c <= '9'; }))
      names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  if (names.empty()) {
    r_.error = r_.dir.string() + ": no segment files";
    return;
  }
  for (size_t i = 0; i < names.size(); ++i) {
    Segment s;
    s.name = names[i];
    s.path = r_.dir / names[i];
    if (names[i] != [&] {
          char b[32];
          std::snprintf(b, sizeof b, "seg-%06zu.tlog", i);
          return std::string(b);
        }())
      problem(names[i] + ": segment numbers are not dense from 0");
    r_.segments.push_back(std::move(s));
  }
  for (size_t i = 0; i < r_.segments.size(); ++i)
    if (!segment(i)) break;
  for (size_t i = 0; i + 1 < r_.segments.size(); ++i)
    if (r_.segments[i].minor >= 1 && r_.segments[i].last_segment)
      problem(r_.segments[i].name + ": its index says the recording ends with it, yet " + r_.segments[i + 1].name +
              " follows");

  // Snapshots: complete when every part is readable.
  for (Snapshot& S : r_.snapshots) {
    S.complete = !S.part_index.empty() &&
                 std::none_of(S.part_index.begin(), S.part_index.end(), [](size_t x) { return x == SIZE_MAX; });
    bool first = true;
    uint32_t covered = 0;
    for (size_t x : S.part_index) {
      if (x == SIZE_MAX) continue;
      const SnapshotPart& p = r_.parts[x];
      S.min_epoch = first ? p.epoch : std::min(S.min_epoch, p.epoch);
      S.max_epoch = first ? p.epoch : std::max(S.max_epoch, p.epoch);
      first = false;
      covered += static_cast<uint32_t>(p.ids.size());
    }
    if (S.complete && covered != S.page_count)
      problem("snapshot " + std::to_string(S.id) + " covers " + std::to_string(covered) + " pages of " +
              std::to_string(S.page_count));
  }
  if (r_.start_epoch > 0 && (r_.snapshots.empty() || r_.parts.empty() || r_.parts.front().id != 0))
    if (!r_.deltas.empty()) problem("a recording starting at epoch > 0 must start with a snapshot");

  // Base versions: count deltas per page from a known basis.
  std::vector<std::optional<uint64_t>> version(r_.pages.size());
  std::vector<uint64_t> image_epoch(r_.pages.size(), 0);
  const Snapshot* basis = nullptr;
  if (r_.start_epoch == 0) {
    for (auto& v : version) v = 0;
  } else {
    for (const Snapshot& S : r_.snapshots)
      if (S.complete) {
        basis = &S;
        break;
      }
  }
  if (basis) {
    // Pages the snapshot lists: counted back and forth from the image.
    // Pages it does not list were created after it began: from 0.
    std::vector<bool> listed(r_.pages.size(), false);
    for (size_t x : basis->part_index) {
      const SnapshotPart& p = r_.parts[x];
      for (size_t i = 0; i < p.ids.size(); ++i) {
        listed[p.ids[i]] = true;
        image_epoch[p.ids[i]] = p.epoch;
        // version at the image's epoch minus the deltas at or before it
        uint64_t before = 0;
        for (const Delta& d : r_.deltas)
          if (d.page == p.ids[i] && d.epoch <= p.epoch) ++before;
        version[p.ids[i]] = p.versions[i] >= before ? std::optional<uint64_t>(p.versions[i] - before) : std::nullopt;
      }
    }
    for (size_t id = 0; id < r_.pages.size(); ++id)
      if (!listed[id] && r_.pages[id].created_epoch >= r_.start_epoch) version[id] = 0;
  }
  for (Delta& d : r_.deltas) {
    if (d.page < version.size() && version[d.page]) {
      d.base_version = *version[d.page];
      version[d.page] = *version[d.page] + 1;
    }
  }
}

// Applies d to st (which holds every page id < st.size()).
void apply(State& st, const Delta& d) {
  PageState& p = st[d.page];
  size_t k = 0;
  for (const model::Run& r : d.runs)
    for (uint64_t i = 0; i < r.length; ++i) p.bytes[r.offset + i] = d.bytes[k++];
  ++p.version;
}

}  // namespace

bool Recording::clean() const {
  return ok() && gap.empty() &&
         std::all_of(segments.begin(), segments.end(), [](const Segment& s) { return s.stop.empty(); });
}

std::string Recording::summary() const {
  std::ostringstream os;
  os << "recording " << dir.string() << ": ";
  if (!error.empty()) os << "ERROR " << error << "; ";
  os << segments.size() << " segments, " << frames.size() << " frames, " << pages.size() << " pages, "
     << deltas.size() << " deltas (epochs " << start_epoch << ".." << last_epoch << "), " << snapshots.size()
     << " snapshots";
  for (const Segment& s : segments) {
    os << "\n  " << s.name << ": " << s.file_size << " bytes, start " << s.start_epoch << ", " << s.frame_count
       << " frames, readable to " << s.readable_end << (s.has_trailer ? ", trailer" : ", no trailer")
       << (s.index_ok ? " (index ok)" : "");
    if (!s.stop.empty()) os << ", STOP: " << s.stop;
  }
  if (!gap.empty()) os << "\n  GAP: " << gap;
  for (const std::string& p : problems) os << "\n  PROBLEM: " << p;
  return os.str();
}

std::vector<Frame> Recording::frames_of(uint8_t kind) const {
  std::vector<Frame> out;
  for (const Frame& f : frames)
    if (f.kind == kind) out.push_back(f);
  return out;
}

std::optional<State> Recording::state_at(uint64_t n, int snapshot, std::string* why) const {
  auto fail = [&](const std::string& w) -> std::optional<State> {
    if (why) *why = w;
    return std::nullopt;
  };
  if (!ok()) return fail(error);
  if (n > last_epoch) return fail("epoch " + std::to_string(n) + " is past the durable history (" +
                                  std::to_string(last_epoch) + ")");
  const Snapshot* snap = nullptr;
  if (snapshot == -2) {
    for (const Snapshot& S : snapshots)
      if (S.complete && S.max_epoch <= n) snap = &S;  // ids grow with time: the last one wins
    if (!snap && start_epoch > 0) return fail("no complete snapshot at or before epoch " + std::to_string(n));
  } else if (snapshot >= 0) {
    if (static_cast<size_t>(snapshot) >= snapshots.size() || !snapshots[snapshot].complete)
      return fail("snapshot " + std::to_string(snapshot) + " is not complete");
    snap = &snapshots[snapshot];
    if (snap->max_epoch > n)
      return fail("snapshot " + std::to_string(snapshot) + " ends at epoch " + std::to_string(snap->max_epoch));
  } else if (start_epoch > 0) {
    return fail("the recording starts at epoch " + std::to_string(start_epoch) + ": no state from epoch 0");
  } else if (n < start_epoch) {
    return fail("before the recording");
  }
  if (!snap && n < start_epoch) return fail("before the recording");

  State st;
  std::vector<uint64_t> image_epoch;
  std::vector<bool> has_image;
  for (const PageDecl& p : pages) {
    if (p.created_epoch > n) break;  // pages are declared in creation order
    PageState s;
    s.id = p.id;
    s.bytes.assign(p.size, 0);
    s.name = p.name;
    s.created_epoch = p.created_epoch;
    st.push_back(std::move(s));
  }
  image_epoch.assign(st.size(), 0);
  has_image.assign(st.size(), false);
  if (snap) {
    for (size_t x : snap->part_index) {
      const SnapshotPart& p = parts[x];
      for (size_t i = 0; i < p.ids.size(); ++i) {
        const uint32_t id = p.ids[i];
        if (id >= st.size()) return fail("snapshot lists page " + std::to_string(id) + " not created by epoch " +
                                         std::to_string(n));
        st[id].bytes = p.images[i];
        st[id].version = p.versions[i];
        image_epoch[id] = p.epochs[i];
        has_image[id] = true;
      }
    }
    // A page created before the recording began and absent from the snapshot
    // has no known content.
    for (size_t id = 0; id < st.size(); ++id)
      if (!has_image[id] && st[id].created_epoch < start_epoch)
        return fail("page " + std::to_string(id) + " predates the recording and is not in snapshot " +
                    std::to_string(snap->id));
  }
  const uint64_t e0 = snap ? snap->min_epoch : 0;  // part 0's epoch (parts' epochs do not decrease)
  for (const Delta& d : deltas) {
    if (d.epoch > n) break;
    if (snap && d.epoch <= e0) continue;
    if (d.page >= st.size()) return fail("delta " + std::to_string(d.epoch) + " to a page not yet created");
    if (has_image[d.page] && image_epoch[d.page] >= d.epoch) continue;
    apply(st, d);
  }
  return st;
}

std::vector<std::string> Recording::verify_snapshots() const {
  std::vector<std::string> out;
  if (!ok()) return {error};
  // The basis: epoch 0 when the recording starts there, else the first
  // complete snapshot (whose own parts are then not checked).
  int basis = -1;
  uint64_t from = 0;
  if (start_epoch > 0) {
    for (const Snapshot& S : snapshots)
      if (S.complete) {
        basis = static_cast<int>(S.id);
        from = S.max_epoch;
        break;
      }
    if (basis < 0) return out;  // nothing to check against
  }
  std::vector<const SnapshotPart*> todo;
  for (const SnapshotPart& p : parts)
    if (static_cast<int>(p.id) != basis && p.epoch >= from) todo.push_back(&p);
  std::stable_sort(todo.begin(), todo.end(),
                   [](const SnapshotPart* a, const SnapshotPart* b) { return a->epoch < b->epoch; });
  std::string why;
  std::optional<State> st = state_at(from, basis, &why);
  if (!st) return {"cannot rebuild the basis at epoch " + std::to_string(from) + ": " + why};
  size_t next = 0;  // index of the first delta past the state's epoch
  while (next < deltas.size() && deltas[next].epoch <= from) ++next;
  for (const SnapshotPart* p : todo) {
    while (next < deltas.size() && deltas[next].epoch <= p->epoch) {
      const Delta& d = deltas[next++];
      while (st->size() <= d.page) {  // pages created since
        const PageDecl& decl = pages[st->size()];
        PageState s;
        s.id = decl.id;
        s.bytes.assign(decl.size, 0);
        st->push_back(std::move(s));
      }
      apply(*st, d);
    }
    for (size_t i = 0; i < p->ids.size(); ++i) {
      const uint32_t id = p->ids[i];
      const std::string where = "snapshot " + std::to_string(p->id) + " part " + std::to_string(p->part) +
                                " (epoch " + std::to_string(p->epoch) + ") page " + std::to_string(id);
      if (id >= st->size()) {
        if (p->versions[i] != 0 || std::any_of(p->images[i].begin(), p->images[i].end(), [](uint8_t b) { return b; }))
          out.push_back(where + ": image of an untouched page is not zeros at version 0");
        continue;
      }
      if ((*st)[id].bytes != p->images[i]) out.push_back(where + ": image differs from the deltas' state");
      if ((*st)[id].version != p->versions[i])
        out.push_back(where + ": version " + std::to_string(p->versions[i]) + ", the deltas count " +
                      std::to_string((*st)[id].version));
    }
  }
  return out;
}

Recording read_recording(const fs::path& dir) {
  Recording r;
  r.dir = dir;
  Walker(r).run();
  return r;
}

}  // namespace tlogr
