// A tiny, independent model of the bus for property tests.
//
// Pages are plain std::vector<uint8_t>; every change is applied with a byte
// loop. Nothing here calls the engine: the model is the reference the engine
// is checked against, so it must stay obviously correct rather than fast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <initializer_list>
#include <unistd.h>
#include <ostream>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace model {

// Bytes from small integers: B({1, 2, 0xff}).
inline std::vector<std::byte> B(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}

// A fresh path under the temp directory, unique per process and call,
// removed (with its contents) on scope exit. Created only when asked.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag, bool create = false) {
    static std::atomic<int> n{0};
    path = std::filesystem::temp_directory_path() /
           ("mmsb-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (create) std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// splitmix64: a tiny seeded PRNG, so random workloads are reproducible.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform-ish in [0, n); n > 0.
  uint64_t below(uint64_t n) { return next() % n; }
  // Uniform-ish in [lo, hi] (inclusive).
  uint64_t between(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  bool chance(unsigned percent) { return below(100) < percent; }
  uint8_t byte() { return static_cast<uint8_t>(next()); }
  std::vector<uint8_t> bytes(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = byte();
    return v;
  }
  // `image` with 0 to 3 runs of 1 to 20 bytes overwritten by random bytes, at
  // random offsets: a whole-page assign that changes a few places (or none).
  std::vector<uint8_t> scribbled(std::vector<uint8_t> image) {
    const uint64_t size = image.size();
    const uint64_t runs = below(4);
    for (uint64_t i = 0; i < runs; ++i) {
      const uint64_t off = below(size);
      const uint64_t len = between(1, std::min<uint64_t>(20, size - off));
      for (uint64_t j = 0; j < len; ++j) image[off + j] = byte();
    }
    return image;
  }

 private:
  uint64_t s_;
};

// A run [offset, offset + length) as plain integers (independent of mmsb::Range).
struct Run {
  uint64_t offset = 0;
  uint64_t length = 0;
  friend bool operator==(const Run&, const Run&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Run& r) {
    return os << "[" << r.offset << "+" << r.length << ")";
  }
};

struct Page {
  std::vector<uint8_t> bytes;
  std::string name;
  uint64_t version = 0;
  uint64_t created_epoch = 0;
  uint64_t last_epoch = 0;
};

// The whole bus, as the contract describes it.
struct Model {
  std::vector<Page> pages;
  uint64_t epoch = 0;  // number of deltas applied so far

  uint32_t create(uint64_t size, std::string name = {}) {
    Page p;
    p.bytes.assign(size, 0);
    p.name = std::move(name);
    p.created_epoch = epoch;
    pages.push_back(std::move(p));
    return static_cast<uint32_t>(pages.size() - 1);
  }

  // One delta: bytes[i] = values[i] for offset <= i < offset + n. Returns its epoch.
  uint64_t write(uint32_t id, uint64_t offset, const std::vector<uint8_t>& values) {
    Page& p = pages.at(id);
    for (size_t i = 0; i < values.size(); ++i) p.bytes.at(offset + i) = values[i];
    return stamp(p);
  }

  // One delta given as runs and the concatenated new values.
  uint64_t apply(uint32_t id, const std::vector<Run>& runs, const std::vector<uint8_t>& values) {
    Page& p = pages.at(id);
    size_t k = 0;
    for (const Run& r : runs)
      for (uint64_t i = 0; i < r.length; ++i) p.bytes.at(r.offset + i) = values.at(k++);
    return stamp(p);
  }

  // One delta: every byte with mask[i] != 0 takes image[i].
  uint64_t apply_mask(uint32_t id, const std::vector<uint8_t>& mask,
                      const std::vector<uint8_t>& image) {
    Page& p = pages.at(id);
    for (size_t i = 0; i < mask.size(); ++i)
      if (mask[i]) p.bytes.at(i) = image.at(i);
    return stamp(p);
  }

  // Replace a page by `image` if anything differs (one delta); returns its
  // epoch, or 0 when nothing differed (no delta).
  uint64_t assign(uint32_t id, const std::vector<uint8_t>& image) {
    Page& p = pages.at(id);
    if (p.bytes == image) return 0;
    p.bytes = image;
    return stamp(p);
  }

 private:
  uint64_t stamp(Page& p) {
    ++p.version;
    p.last_epoch = ++epoch;
    return epoch;
  }
};

// The maximal runs of i where pred(i) holds, for 0 <= i < n: a plain byte loop.
template <class Pred>
std::vector<Run> runs_where(size_t n, Pred pred) {
  std::vector<Run> out;
  size_t i = 0;
  while (i < n) {
    if (!pred(i)) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < n && pred(j)) ++j;
    out.push_back(Run{i, j - i});
    i = j;
  }
  return out;
}

// Maximal runs of differing bytes between two equal-sized arrays.
inline std::vector<Run> diff_runs(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  return runs_where(a.size(), [&](size_t i) { return a[i] != b[i]; });
}

// Maximal runs of non-zero mask bytes.
inline std::vector<Run> mask_runs(const std::vector<uint8_t>& mask) {
  return runs_where(mask.size(), [&](size_t i) { return mask[i] != 0; });
}

// The values of `src` at the given runs, concatenated.
inline std::vector<uint8_t> gather(const std::vector<uint8_t>& src, const std::vector<Run>& runs) {
  std::vector<uint8_t> out;
  for (const Run& r : runs)
    for (uint64_t i = 0; i < r.length; ++i) out.push_back(src.at(r.offset + i));
  return out;
}

// ---- conversions between the model's bytes and the engine's std::byte ----

inline std::vector<std::byte> to_bytes(const std::vector<uint8_t>& v) {
  std::vector<std::byte> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<std::byte>(v[i]);
  return out;
}

inline std::vector<uint8_t> to_u8(std::span<const std::byte> s) {
  std::vector<uint8_t> out(s.size());
  for (size_t i = 0; i < s.size(); ++i) out[i] = static_cast<uint8_t>(s[i]);
  return out;
}

// Index of the first byte where a and b differ; -1 if they are equal (sizes too).
inline long long first_mismatch(std::span<const std::byte> a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return a.size() < b.size() ? static_cast<long long>(a.size())
                                                        : static_cast<long long>(b.size());
  for (size_t i = 0; i < b.size(); ++i)
    if (static_cast<uint8_t>(a[i]) != b[i]) return static_cast<long long>(i);
  return -1;
}

inline bool same(std::span<const std::byte> a, const std::vector<uint8_t>& b) {
  return first_mismatch(a, b) == -1;
}

// "" when equal, else a short description of the first difference (for INFO).
inline std::string describe_mismatch(std::span<const std::byte> got, const std::vector<uint8_t>& want) {
  long long i = first_mismatch(got, want);
  if (i < 0) return {};
  std::string s = "size got " + std::to_string(got.size()) + " want " + std::to_string(want.size());
  if (static_cast<size_t>(i) < got.size() && static_cast<size_t>(i) < want.size())
    s += "; first difference at byte " + std::to_string(i) + ": got " +
         std::to_string(static_cast<unsigned>(got[i])) + " want " + std::to_string(want[i]);
  return s;
}

}  // namespace model

// ---- bridge: reading engine structures into model terms (no expectations here) ----
#include "mmsb/hash.h"
#include "mmsb/tlog.h"
#include "mmsb/types.h"

namespace model {

inline std::vector<Run> to_runs(std::span<const mmsb::Range> ranges) {
  std::vector<Run> out;
  for (const mmsb::Range& r : ranges) out.push_back(Run{r.offset, r.length});
  return out;
}

inline std::vector<mmsb::Range> to_ranges(const std::vector<Run>& runs) {
  std::vector<mmsb::Range> out;
  for (const Run& r : runs)
    out.push_back(mmsb::Range{static_cast<uint32_t>(r.offset), static_cast<uint32_t>(r.length)});
  return out;
}

// A TLog record copied out of the ring (views do not outlive the cursor step).
struct Record {
  mmsb::RecordKind kind = mmsb::RecordKind::kPadding;
  uint32_t page = 0;
  uint64_t size = 0;        // kPageCreated
  std::string name;         // kPageCreated
  uint64_t epoch = 0;
  uint64_t base_version = 0;  // kDelta
  uint64_t cause = 0;         // kDelta
  std::vector<Run> runs;      // kDelta
  std::vector<uint8_t> bytes; // kDelta
};

inline Record copy_record(const mmsb::TLogRecord& r) {
  Record out;
  out.kind = r.kind;
  if (r.kind == mmsb::RecordKind::kDelta) {
    out.page = r.delta.page;
    out.epoch = r.delta.epoch;
    out.base_version = r.delta.base_version;
    out.cause = r.delta.cause;
    out.runs = to_runs(r.delta.ranges);
    out.bytes = to_u8(r.delta.bytes);
  } else if (r.kind == mmsb::RecordKind::kPageCreated) {
    out.page = r.page.page;
    out.size = r.page.size;
    out.epoch = r.page.epoch;
    out.name = std::string(r.page.name);
  }
  return out;
}

// Reads every record up to the head (padding skipped) into `out`. The caller
// holds whatever lock the cursor kind requires. Returns the first non-OK
// status of read(), or OK.
inline mmsb::Status drain(mmsb::TLog& log, mmsb::TLog::Cursor& c, std::vector<Record>& out) {
  for (;;) {
    mmsb::TLogRecord rec;
    bool got = false;
    mmsb::Status s = log.read(c, &rec, &got);
    if (!s.ok()) return s;
    if (!got) return mmsb::Status::OK();
    if (rec.next <= c.position())
      return mmsb::Status(mmsb::Code::kCorruption, "test: record does not move the cursor forward");
    if (rec.kind != mmsb::RecordKind::kPadding) out.push_back(copy_record(rec));
    log.advance(c, rec);
  }
}

// Applies a delta record to a model page with a byte loop (the model's own
// apply, so a record stream can be replayed into a fresh model).
inline void apply_record(Model& m, const Record& r) {
  Page& p = m.pages.at(r.page);
  size_t k = 0;
  for (const Run& run : r.runs)
    for (uint64_t i = 0; i < run.length; ++i) p.bytes.at(run.offset + i) = r.bytes.at(k++);
  ++p.version;
  p.last_epoch = r.epoch;
  m.epoch = r.epoch;
}

}  // namespace model

namespace model {

// The state hash of the model's pages, computed with the engine's hasher over
// the model's own bytes (what a bus or mirror holding the same state reports).
inline uint64_t state_hash(const Model& m) {
  mmsb::StateHasher h;
  for (mmsb::PageId id = 0; id < m.pages.size(); ++id) h.add_page(id, to_bytes(m.pages[id].bytes));
  return h.digest();
}

}  // namespace model
