// The recorder, round trip: random workloads on a Bus are recorded, then read
// back with the independent reader of tlog_reader.h and compared with the
// plain byte-array model of engine_model.h (and with what a kDeltaApplied
// subscription saw). Nothing here trusts the recorder's own description of
// what it wrote.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine_model.h"
#include "mmsb/bus.h"
#include "mmsb/capture/recorder.h"
#include "mmsb/format.h"
#include "tlog_reader.h"

namespace fs = std::filesystem;
using mmsb::Bus;
using mmsb::Code;
using mmsb::Epoch;
using mmsb::PageId;
using mmsb::UpdateContext;
using mmsb::capture::Recorder;
using mmsb::capture::RecorderOptions;
using mmsb::capture::RecorderStats;

namespace {

using model::TempDir;

// One delta as the test expects it, saw it (subscription) or read it back.
struct Seen {
  uint64_t epoch = 0;
  uint64_t page = 0;
  uint64_t cause = 0;
  uint64_t base = 0;
  std::vector<model::Run> runs;
  std::vector<uint8_t> bytes;
  friend bool operator==(const Seen&, const Seen&) = default;
};
std::ostream& operator<<(std::ostream& os, const Seen& s) {
  os << "{epoch " << s.epoch << " page " << s.page << " cause " << s.cause << " base " << s.base << " runs";
  for (const model::Run& r : s.runs) os << " " << r;
  return os << " bytes " << s.bytes.size() << "}";
}

Seen from_reader(const tlogr::Delta& d) {
  return Seen{d.epoch, d.page, d.cause, d.base_version.value_or(~uint64_t{0}), d.runs, d.bytes};
}

// "" when equal, else where the first difference is.
std::string first_difference(const std::vector<Seen>& got, const std::vector<Seen>& want, const char* what) {
  const size_t n = std::min(got.size(), want.size());
  for (size_t i = 0; i < n; ++i)
    if (!(got[i] == want[i])) {
      std::ostringstream os;
      os << what << ": delta #" << i << " is " << got[i] << ", want " << want[i];
      return os.str();
    }
  if (got.size() != want.size())
    return std::string(what) + ": " + std::to_string(got.size()) + " deltas, want " + std::to_string(want.size());
  return {};
}

// ---- dependency functions: pure functions of bytes, used by the bus's update
// functions and by the model alike ----
constexpr uint64_t kBSize = 64, kCSize = 32, kYSize = 16;

// B gets 8 bytes derived from A at an offset that depends on A.
std::vector<uint8_t> f_b(const std::vector<uint8_t>& a, uint64_t* offset) {
  uint32_t sum = 0;
  uint8_t x = 0, nz = 0;
  for (uint8_t v : a) {
    sum += v;
    x ^= v;
    nz = static_cast<uint8_t>(nz + (v != 0));
  }
  *offset = sum % (kBSize - 8 + 1);
  return {static_cast<uint8_t>(sum), static_cast<uint8_t>(sum >> 8), static_cast<uint8_t>(sum >> 16), x,
          a.front(), a.back(), nz, 0x5a};
}
// C is the xor of B's two halves (written with assign: only what differs).
std::vector<uint8_t> f_c(const std::vector<uint8_t>& b) {
  std::vector<uint8_t> c(kCSize);
  for (size_t i = 0; i < kCSize; ++i) c[i] = b[i] ^ b[i + kCSize];
  return c;
}
// Y[0..4) is X[0..4) reversed.
std::vector<uint8_t> f_y(const std::vector<uint8_t>& x) { return {x[3], x[2], x[1], x[0]}; }

// Drives the bus and the model with the same random operations.
class Workload {
 public:
  Workload(Bus& bus, uint64_t seed) : rng(seed), bus_(bus) {}

  model::Model m;
  model::Rng rng;
  std::vector<Seen> expected;       // every delta, as the model predicts it
  std::vector<std::string> errors;  // the engine disagreed with the model (engine bug or test bug)
  uint32_t A = 0, B = 0, C = 0, X = 0, Y = 0;
  uint32_t big = 0;  // the 65536-byte page
  uint32_t max_pages = 48;

  uint32_t create(uint64_t size, const std::string& name = {}) {
    auto id = bus_.create_page(size, name);
    const uint32_t want = m.create(size, name);
    if (!id.ok() || *id != want) errors.push_back("create_page(" + std::to_string(size) + ") -> unexpected id");
    return want;
  }

  void create_initial_pages() {
    const uint64_t sizes[] = {1, 3, 17, 100, 255, 4095, 4096, 4097, 777};
    for (size_t i = 0; i < std::size(sizes); ++i) create(sizes[i], i % 3 == 0 ? "page" + std::to_string(i) : "");
    big = create(65536, "big");
  }

  void add_dependencies() {
    A = create(200, "dep.a");
    B = create(kBSize, "dep.b");
    C = create(kCSize, "dep.c");
    X = create(8, "dep.x");
    Y = create(kYSize);
    auto ok = [&](const mmsb::Status& s) {
      if (!s.ok()) errors.push_back("add_dependency: " + s.to_string());
    };
    ok(bus_.add_dependency(A, B, [](UpdateContext& ctx) {
      uint64_t off = 0;
      const std::vector<uint8_t> v = f_b(model::to_u8(ctx.source_bytes()), &off);
      return ctx.write(off, model::to_bytes(v));
    }));
    ok(bus_.add_dependency(B, C, [](UpdateContext& ctx) {
      return ctx.assign(model::to_bytes(f_c(model::to_u8(ctx.source_bytes()))));
    }));
    ok(bus_.add_dependency(X, Y, [](UpdateContext& ctx) {
      return ctx.write(0, model::to_bytes(f_y(model::to_u8(ctx.source_bytes()))));
    }));
  }

  // One random operation (creating pages only when allowed).
  void step(bool may_create) {
    const uint64_t r = rng.below(100);
    if (may_create && r < 3 && m.pages.size() < max_pages) {
      const uint64_t sizes[] = {1, 2, 5, 63, 64, 65, 1000, 4096, 4099, 9000};
      create(sizes[rng.below(std::size(sizes))], rng.chance(50) ? "new" + std::to_string(m.pages.size()) : "");
      return;
    }
    const uint32_t p = static_cast<uint32_t>(rng.below(m.pages.size()));
    const uint64_t size = m.pages[p].bytes.size();
    if (r < 55) {  // write
      uint64_t off = rng.below(size);
      uint64_t len = rng.between(1, std::min<uint64_t>(48, size - off));
      write(p, off, rng.bytes(len));
    } else if (r < 75) {  // apply: several sorted, disjoint, non-adjacent ranges
      std::vector<model::Run> runs;
      uint64_t cur = rng.below(std::min<uint64_t>(size, 32));
      const uint64_t k = rng.between(1, 5);
      while (runs.size() < k && cur < size) {
        const uint64_t len = rng.between(1, std::min<uint64_t>(16, size - cur));
        runs.push_back({cur, len});
        cur += len + 1 + rng.below(64);
      }
      uint64_t total = 0;
      for (const auto& run : runs) total += run.length;
      apply(p, runs, rng.bytes(total));
    } else if (r < 80) {  // a conflicting apply: refused, nothing recorded
      const std::vector<mmsb::Range> ranges{{0, 1}};
      const std::vector<std::byte> one{std::byte{1}};
      const uint64_t base = m.pages[p].version + 1 + rng.below(3);
      mmsb::DeltaView d{p, base, 0, 0, ranges, one};
      if (bus_.apply(d).code() != Code::kConflict) errors.push_back("a conflicting apply was not refused");
    } else {  // assign: a few changed runs (sometimes none)
      assign(p, rng.scribbled(m.pages[p].bytes));
    }
  }

  void write(uint32_t p, uint64_t off, const std::vector<uint8_t>& v) {
    Epoch e = 0;
    const mmsb::Status s = bus_.write(p, off, model::to_bytes(v), &e);
    const uint64_t base = m.pages[p].version;
    const uint64_t want = m.write(p, off, v);
    expected.push_back({want, p, 0, base, {{off, v.size()}}, v});
    check(s, e, want, "write");
    propagate(p, want);
  }

  void apply(uint32_t p, const std::vector<model::Run>& runs, const std::vector<uint8_t>& v) {
    const std::vector<mmsb::Range> ranges = model::to_ranges(runs);
    const std::vector<std::byte> bytes = model::to_bytes(v);
    const uint64_t base = m.pages[p].version;
    Epoch e = 0;
    const mmsb::Status s = bus_.apply(mmsb::DeltaView{p, base, 0, 0, ranges, bytes}, &e);
    const uint64_t want = m.apply(p, runs, v);
    expected.push_back({want, p, 0, base, runs, v});
    check(s, e, want, "apply");
    propagate(p, want);
  }

  void assign(uint32_t p, const std::vector<uint8_t>& image) {
    const std::vector<model::Run> runs = model::diff_runs(m.pages[p].bytes, image);
    const uint64_t base = m.pages[p].version;
    Epoch e = 0;
    const mmsb::Status s = bus_.assign(p, model::to_bytes(image), &e);
    const uint64_t want = m.assign(p, image);
    check(s, e, want, "assign");
    if (want == 0) return;  // nothing differed: no delta
    expected.push_back({want, p, 0, base, runs, model::gather(image, runs)});
    propagate(p, want);
  }

  // Copies of the model's pages at chosen epochs.
  std::map<uint64_t, std::vector<model::Page>> saved;
  void save() { saved[m.epoch] = m.pages; }

 private:
  void check(const mmsb::Status& s, Epoch got, uint64_t want, const char* what) {
    if (!s.ok()) errors.push_back(std::string(what) + ": " + s.to_string());
    if (got != want)
      errors.push_back(std::string(what) + " returned epoch " + std::to_string(got) + ", want " + std::to_string(want));
  }

  // What the update functions write after an application delta to `p` at
  // epoch `e` (the engine's immediate propagation, modelled by hand: a chain
  // A -> B -> C and an edge X -> Y, so the order is unambiguous).
  void propagate(uint32_t p, uint64_t e) {
    if (A == B) return;  // no dependencies set up
    if (p == A) {
      uint64_t off = 0;
      const std::vector<uint8_t> v = f_b(m.pages[A].bytes, &off);
      const uint64_t base = m.pages[B].version;
      const uint64_t eb = m.write(B, off, v);
      expected.push_back({eb, B, e, base, {{off, v.size()}}, v});
      derive_c(eb);
    } else if (p == B) {
      derive_c(e);
    } else if (p == X) {
      const std::vector<uint8_t> v = f_y(m.pages[X].bytes);
      const uint64_t base = m.pages[Y].version;
      const uint64_t ey = m.write(Y, 0, v);
      expected.push_back({ey, Y, e, base, {{0, v.size()}}, v});
    }
  }
  void derive_c(uint64_t cause) {
    const std::vector<uint8_t> img = f_c(m.pages[B].bytes);
    const std::vector<model::Run> runs = model::diff_runs(m.pages[C].bytes, img);
    const uint64_t base = m.pages[C].version;
    if (m.assign(C, img) == 0) return;
    expected.push_back({m.epoch, C, cause, base, runs, model::gather(img, runs)});
  }

  Bus& bus_;
};

// Every kDeltaApplied event, copied.
struct Observer {
  std::vector<Seen> seen;
  void attach(Bus& bus) {
    auto sub = bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied), [this](const mmsb::Event& e) {
      Seen s;
      s.epoch = e.epoch;
      s.page = e.page;
      if (e.delta) {
        s.cause = e.delta->cause;
        s.base = e.delta->base_version;
        s.runs = model::to_runs(e.delta->ranges);
        s.bytes = model::to_u8(e.delta->bytes);
      }
      seen.push_back(std::move(s));
    });
    REQUIRE(sub.ok());
  }
};

std::vector<Seen> reader_deltas(const tlogr::Recording& rec) {
  std::vector<Seen> out;
  for (const tlogr::Delta& d : rec.deltas) out.push_back(from_reader(d));
  return out;
}

uint64_t sum_file_sizes(const tlogr::Recording& rec) {
  uint64_t n = 0;
  for (const auto& s : rec.segments) n += s.file_size;
  return n;
}
uint64_t frame_bytes(const tlogr::Recording& rec, uint8_t kind) {
  uint64_t n = 0;
  for (const auto& f : rec.frames)
    if (f.kind == kind) n += f.bytes();
  return n;
}
size_t complete_snapshots(const tlogr::Recording& rec) {
  return static_cast<size_t>(std::count_if(rec.snapshots.begin(), rec.snapshots.end(),
                                           [](const tlogr::Snapshot& s) { return s.complete; }));
}

// The stats against what the reader found on disk.
void check_stats(const RecorderStats& st, const tlogr::Recording& rec) {
  INFO("stats: deltas " << st.deltas << " last_epoch " << st.last_epoch << " frames " << st.frames << " segments "
                        << st.segments << " snapshots " << st.snapshots << " delta_bytes " << st.delta_bytes
                        << " snapshot_bytes " << st.snapshot_bytes << " total_bytes " << st.total_bytes);
  CHECK(st.deltas == rec.deltas.size());
  CHECK(st.last_epoch == rec.last_epoch);
  CHECK(st.segments == rec.segments.size());
  CHECK(st.snapshots == complete_snapshots(rec));
  CHECK(st.delta_bytes == frame_bytes(rec, tlogr::kDeltas));
  CHECK(st.snapshot_bytes == frame_bytes(rec, tlogr::kSnapshot));
  // "every byte of every segment"
  CHECK(st.total_bytes == sum_file_sizes(rec));
  // Frames: whether index frames count is not pinned down; either reading is fine.
  const uint64_t all = rec.frames.size();
  const uint64_t data = all - rec.frames_of(tlogr::kIndex).size();
  CHECK((st.frames == all || st.frames == data));
}

std::string hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

struct Config {
  uint64_t seed;
  uint32_t batch_deltas;
  size_t batch_bytes;
  int flush_ms;
  uint64_t segment_bytes;
  uint64_t snapshot_every;
  double snapshot_ratio;
  size_t part_bytes;
  int ops;
};

}  // namespace

TEST_CASE("round trip: random workloads read back equal the model, delta by delta and at every saved epoch",
          "[capture][roundtrip]") {
  const Config configs[] = {
      // seed  batch bytes     flush seg       snap  ratio part   ops
      {0xc0ffee01, 7, size_t{1} << 20, 1, 24 << 10, 150, 0.0, 3000, 1500},
      {0xc0ffee02, 1, size_t{1} << 20, 1, 8 << 10, 0, 0.5, 5000, 700},
      {0xc0ffee03, 64, 512, 0, 48 << 10, 400, 0.0, 100, 1500},
  };
  const int which = GENERATE(0, 1, 2);
  const Config& cfg = configs[which];
  INFO("config " << which << " seed " << cfg.seed);

  TempDir dir("roundtrip");
  Bus bus;
  Workload w(bus, cfg.seed);
  w.create_initial_pages();
  w.add_dependencies();
  Observer obs;
  obs.attach(bus);
  w.save();  // epoch 0

  RecorderOptions opt;
  opt.program = "capture-test";
  opt.labels = {{"run", "roundtrip"}, {"seed", std::to_string(cfg.seed)}};
  opt.batch_deltas = cfg.batch_deltas;
  opt.batch_bytes = cfg.batch_bytes;
  opt.flush_interval = std::chrono::milliseconds(cfg.flush_ms);
  opt.segment_bytes = cfg.segment_bytes;
  opt.snapshot_every_deltas = cfg.snapshot_every;
  opt.snapshot_log_ratio = cfg.snapshot_ratio;
  opt.snapshot_part_bytes = cfg.part_bytes;
  auto started = Recorder::start(bus, dir.path, opt);
  REQUIRE(started.ok());
  std::unique_ptr<Recorder> rec = std::move(*started);

  for (int i = 0; i < cfg.ops; ++i) {
    w.step(/*may_create=*/true);
    if (i == cfg.ops / 3) {  // one whole-page write of the 64 KiB page: a 65536-byte range
      const std::vector<uint8_t> v = w.rng.bytes(65536);
      w.write(w.big, 0, v);
    }
    if (i % 97 == 0) w.save();
    if (i % 401 == 200) REQUIRE(rec->flush().ok());
  }
  // The writer takes a due snapshot before it serves a flush.
  REQUIRE(rec->flush().ok());
  w.save();
  REQUIRE(w.errors.empty());
  REQUIRE(rec->stop().ok());
  REQUIRE(rec->status().ok());
  const RecorderStats stats = rec->stats();

  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  CHECK(r.problems.empty());
  CHECK(r.clean());
  for (const auto& s : r.segments) {
    CHECK(s.has_trailer);
    CHECK(s.index_ok);
    CHECK(s.has_meta);
    CHECK(s.program == "capture-test");
    CHECK(s.labels == std::map<std::string, std::string>(opt.labels.begin(), opt.labels.end()));
    CHECK(s.pid == static_cast<uint32_t>(::getpid()));
    CHECK(s.host == hostname());
    CHECK(s.default_page_size == mmsb::kDefaultPageSize);
    CHECK(s.meta_major == 1);
    CHECK(s.start_time_ns > 0);
    CHECK(s.minor == 1);
    // FORMAT.md 1.1: the writer marks the segment it closes last, and no other.
    CHECK(s.last_segment == (&s == &r.segments.back()));
  }

  // The history: epochs 1..N, each delta exactly as the model and the
  // subscription describe it.
  CHECK(r.start_epoch == 0);
  CHECK(r.last_epoch == w.m.epoch);
  REQUIRE(r.deltas.size() == w.m.epoch);
  for (size_t i = 0; i < r.deltas.size(); ++i) REQUIRE(r.deltas[i].epoch == i + 1);
  const std::vector<Seen> got = reader_deltas(r);
  CHECK(first_difference(obs.seen, w.expected, "subscription vs model") == "");
  CHECK(first_difference(got, w.expected, "recording vs model") == "");
  CHECK(first_difference(got, obs.seen, "recording vs subscription") == "");

  // Pages.
  REQUIRE(r.pages.size() == w.m.pages.size());
  for (size_t id = 0; id < r.pages.size(); ++id) {
    INFO("page " << id);
    CHECK(r.pages[id].id == id);
    CHECK(r.pages[id].size == w.m.pages[id].bytes.size());
    CHECK(r.pages[id].name == w.m.pages[id].name);
    CHECK(r.pages[id].created_epoch == w.m.pages[id].created_epoch);
  }

  // The final state, byte for byte, and every saved epoch: from the best
  // snapshot, from epoch 0, and from every usable snapshot.
  std::string why;
  auto final_state = r.state_at(r.last_epoch, -2, &why);
  INFO(why);
  REQUIRE(final_state);
  CHECK(tlogr::compare_state(*final_state, w.m.pages, r.last_epoch, /*exact_count=*/true) == "");
  size_t via_snapshot = 0;
  for (const auto& [n, pages] : w.saved) {
    INFO("epoch " << n);
    auto best = r.state_at(n, -2, &why);
    INFO(why);
    REQUIRE(best);
    CHECK(tlogr::compare_state(*best, pages, n) == "");
    auto zero = r.state_at(n, -1, &why);
    REQUIRE(zero);
    CHECK(tlogr::compare_state(*zero, pages, n) == "");
    for (const auto& s : r.snapshots) {
      if (!s.complete || s.max_epoch > n) continue;
      INFO("from snapshot " << s.id << " (epochs " << s.min_epoch << ".." << s.max_epoch << ")");
      auto st = r.state_at(n, static_cast<int>(s.id), &why);
      REQUIRE(st);
      CHECK(tlogr::compare_state(*st, pages, n) == "");
      ++via_snapshot;
    }
  }
  const std::vector<std::string> snap_problems = r.verify_snapshots();
  CHECK(snap_problems.empty());
  for (const std::string& p : snap_problems) UNSCOPED_INFO(p);

  // The workload really exercised what it is meant to.
  CHECK(r.segments.size() >= 2);
  CHECK(complete_snapshots(r) >= 1);
  CHECK(via_snapshot >= 1);
  CHECK(std::any_of(r.snapshots.begin(), r.snapshots.end(), [](const tlogr::Snapshot& s) { return s.parts >= 2; }));
  CHECK(std::any_of(r.deltas.begin(), r.deltas.end(), [](const tlogr::Delta& d) { return d.cause != 0; }));
  CHECK(std::any_of(r.deltas.begin(), r.deltas.end(), [](const tlogr::Delta& d) { return d.runs.size() >= 2; }));
  CHECK(std::any_of(r.deltas.begin(), r.deltas.end(),
                    [](const tlogr::Delta& d) { return d.runs.size() == 1 && d.runs[0].length == 65536; }));
  CHECK(std::any_of(r.pages.begin(), r.pages.end(), [](const tlogr::PageDecl& p) { return p.created_epoch > 0; }));

  check_stats(stats, r);
}

TEST_CASE("a recorder started on a bus past epoch 0 snapshots first and its fuzzy parts rebuild exactly",
          "[capture][roundtrip]") {
  TempDir dir("late");
  Bus bus;
  Workload w(bus, 0x1a7e0001);
  w.create_initial_pages();
  w.add_dependencies();
  for (int i = 0; i < 400; ++i) w.step(/*may_create=*/true);
  REQUIRE(w.errors.empty());
  const uint64_t e0 = w.m.epoch;
  REQUIRE(e0 > 0);
  const size_t pages_before = w.m.pages.size();
  Observer obs;
  obs.attach(bus);
  const size_t expected_before = w.expected.size();

  RecorderOptions opt;
  opt.batch_deltas = 5;
  opt.flush_interval = std::chrono::milliseconds(1);
  opt.segment_bytes = 32 << 10;
  opt.snapshot_every_deltas = 200;
  opt.snapshot_log_ratio = 0;
  opt.snapshot_part_bytes = 1000;  // nearly one part per page: the application runs between parts
  auto started = Recorder::start(bus, dir.path, opt);
  REQUIRE(started.ok());
  std::unique_ptr<Recorder> rec = std::move(*started);
  w.save();
  for (int i = 0; i < 1200; ++i) {
    w.step(/*may_create=*/true);
    if (i % 50 == 0) w.save();
  }
  w.save();
  REQUIRE(w.errors.empty());
  REQUIRE(rec->stop().ok());

  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  CHECK(r.problems.empty());
  CHECK(r.clean());
  CHECK(r.start_epoch == e0);
  CHECK(r.segments.front().start_epoch == e0);
  CHECK(r.last_epoch == w.m.epoch);

  // Every page that existed is declared, with its original creation epoch.
  REQUIRE(r.pages.size() == w.m.pages.size());
  for (size_t id = 0; id < pages_before; ++id) {
    CHECK(r.pages[id].created_epoch == w.m.pages[id].created_epoch);
    CHECK(r.pages[id].name == w.m.pages[id].name);
  }
  // The first snapshot (id 0) covers every page that existed at the start,
  // and comes before any delta frame.
  REQUIRE(!r.snapshots.empty());
  REQUIRE(r.snapshots[0].complete);
  CHECK(r.snapshots[0].page_count >= pages_before);
  CHECK(r.snapshots[0].min_epoch >= e0);
  const auto first_delta_frame =
      std::find_if(r.frames.begin(), r.frames.end(), [](const tlogr::Frame& f) { return f.kind == tlogr::kDeltas; });
  const auto first_snapshot_frame =
      std::find_if(r.frames.begin(), r.frames.end(), [](const tlogr::Frame& f) { return f.kind == tlogr::kSnapshot; });
  REQUIRE(first_snapshot_frame != r.frames.end());
  if (first_delta_frame != r.frames.end() && r.snapshots[0].min_epoch == e0)
    CHECK(first_snapshot_frame < first_delta_frame);

  // Deltas from e0 + 1 on, as the model and the subscription say, with base
  // versions counted from the snapshot.
  const std::vector<Seen> want(w.expected.begin() + static_cast<long>(expected_before), w.expected.end());
  REQUIRE(r.deltas.size() == want.size());
  for (size_t i = 0; i < r.deltas.size(); ++i) REQUIRE(r.deltas[i].epoch == e0 + 1 + i);
  CHECK(first_difference(reader_deltas(r), want, "recording vs model") == "");
  CHECK(first_difference(reader_deltas(r), obs.seen, "recording vs subscription") == "");

  // States: unknown before the first snapshot is complete; exact from then on.
  std::string why;
  size_t checked = 0;
  for (const auto& [n, pages] : w.saved) {
    INFO("epoch " << n);
    auto st = r.state_at(n, -2, &why);
    if (n < r.snapshots[0].max_epoch) {
      CHECK_FALSE(st);
      continue;
    }
    INFO(why);
    REQUIRE(st);
    CHECK(tlogr::compare_state(*st, pages, n) == "");
    ++checked;
    CHECK_FALSE(r.state_at(n, -1));  // no state from epoch 0 in this recording
  }
  CHECK(checked >= 1);  // at least the final state; more when the first snapshot completed early
  auto fin = r.state_at(r.last_epoch, 0, &why);
  INFO(why);
  REQUIRE(fin);
  CHECK(tlogr::compare_state(*fin, w.m.pages, r.last_epoch, true) == "");
  const std::vector<std::string> snap_problems = r.verify_snapshots();
  CHECK(snap_problems.empty());
  for (const std::string& p : snap_problems) UNSCOPED_INFO(p);
  check_stats(rec->stats(), r);
}

TEST_CASE("flush() makes every applied delta readable while recording goes on", "[capture][flush]") {
  TempDir dir("flush");
  Bus bus;
  Workload w(bus, 0xf1005);
  w.create_initial_pages();
  RecorderOptions opt;
  opt.batch_deltas = 100000;                         // never full
  opt.flush_interval = std::chrono::milliseconds(3600 * 1000);  // never old
  opt.snapshot_log_ratio = 0;                        // the writer is idle between flushes
  opt.snapshot_every_deltas = 0;
  auto started = Recorder::start(bus, dir.path, opt);
  REQUIRE(started.ok());
  std::unique_ptr<Recorder> rec = std::move(*started);

  for (int round = 1; round <= 3; ++round) {
    INFO("round " << round);
    for (int i = 0; i < 60 * round; ++i) w.step(/*may_create=*/round == 2);
    REQUIRE(w.errors.empty());
    REQUIRE(rec->flush().ok());
    CHECK(rec->status().ok());
    const RecorderStats st = rec->stats();
    CHECK(st.deltas == w.m.epoch);
    CHECK(st.last_epoch == w.m.epoch);

    const tlogr::Recording r = tlogr::read_recording(dir.path);
    INFO(r.summary());
    REQUIRE(r.ok());
    CHECK(r.problems.empty());
    CHECK(r.clean());  // every frame written so far is whole
    REQUIRE(r.segments.size() == 1);
    CHECK_FALSE(r.segments.back().has_trailer);  // still open
    CHECK(r.last_epoch == w.m.epoch);
    CHECK(first_difference(reader_deltas(r), w.expected, "recording vs model") == "");
    std::string why;
    auto s = r.state_at(r.last_epoch, -2, &why);
    INFO(why);
    REQUIRE(s);
    CHECK(tlogr::compare_state(*s, w.m.pages, r.last_epoch, /*exact_count=*/true) == "");
  }
  REQUIRE(rec->stop().ok());
  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  CHECK(r.clean());
  CHECK(r.problems.empty());
  CHECK(r.segments.back().has_trailer);
  CHECK(r.segments.back().index_ok);
  CHECK(r.last_epoch == w.m.epoch);
  check_stats(rec->stats(), r);
}

TEST_CASE("page ids past 65535 and 32-bit columns", "[capture][roundtrip]") {
  TempDir dir("wide");
  Bus bus;
  model::Model m;
  std::vector<Seen> want;
  for (int i = 0; i < 65540; ++i) REQUIRE(*bus.create_page(1) == m.create(1));
  auto started = Recorder::start(bus, dir.path, RecorderOptions{});
  REQUIRE(started.ok());
  std::unique_ptr<Recorder> rec = std::move(*started);
  const uint32_t pages[] = {65539, 2, 65536, 65535, 0};
  for (uint32_t p : pages) {
    const std::vector<uint8_t> v{static_cast<uint8_t>(p * 7 + 1)};
    REQUIRE(bus.write(p, 0, model::to_bytes(v)).ok());
    const uint64_t base = m.pages[p].version;
    want.push_back({m.write(p, 0, v), p, 0, base, {{0, 1}}, v});
  }
  REQUIRE(rec->stop().ok());
  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  CHECK(r.problems.empty());
  CHECK(r.clean());
  CHECK(r.pages.size() == 65540u);
  CHECK(first_difference(reader_deltas(r), want, "recording vs model") == "");
  auto st = r.state_at(r.last_epoch);
  REQUIRE(st);
  CHECK(tlogr::compare_state(*st, m.pages, r.last_epoch, true) == "");
}

TEST_CASE("a recording of nothing: one segment, meta and page table, closed", "[capture]") {
  TempDir dir("empty");
  Bus bus;
  REQUIRE(bus.create_page(10, "only").ok());
  auto started = Recorder::start(bus, dir.path, RecorderOptions{});
  REQUIRE(started.ok());
  REQUIRE((*started)->stop().ok());
  REQUIRE((*started)->stop().ok());  // idempotent
  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  CHECK(r.problems.empty());
  CHECK(r.clean());
  REQUIRE(r.segments.size() == 1);
  CHECK(r.segments[0].has_trailer);
  CHECK(r.segments[0].index_ok);
  CHECK(r.segments[0].trailer_last_epoch == 0);
  CHECK(r.deltas.empty());
  REQUIRE(r.pages.size() == 1);
  CHECK(r.pages[0].name == "only");
  CHECK(r.pages[0].size == 10);
  auto st = r.state_at(0);
  REQUIRE(st);
  REQUIRE(st->size() == 1);
  CHECK((*st)[0].bytes == std::vector<uint8_t>(10, 0));
}

TEST_CASE("start: an existing non-empty directory is refused and left untouched", "[capture][errors]") {
  TempDir dir("exists");
  fs::create_directories(dir.path);
  const std::vector<uint8_t> content{'k', 'e', 'e', 'p', '\n'};
  tlogr::write_file(dir.path / "notes.txt", content);
  Bus bus;
  REQUIRE(bus.create_page(16).ok());
  auto r = Recorder::start(bus, dir.path, RecorderOptions{});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kAlreadyExists);
  CHECK(r.status().message().find(dir.path.string()) != std::string::npos);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename().string());
  CHECK(names == std::vector<std::string>{"notes.txt"});
  CHECK(tlogr::read_file(dir.path / "notes.txt") == content);
  // The bus is not held by a failed start: it keeps working, unbounded.
  for (int i = 0; i < 20000; ++i) REQUIRE(bus.write(0, i % 16, model::to_bytes({static_cast<uint8_t>(i)})).ok());
}

TEST_CASE("start: an existing empty directory is fine", "[capture][errors]") {
  TempDir dir("empty-ok");
  fs::create_directories(dir.path);
  Bus bus;
  auto r = Recorder::start(bus, dir.path, RecorderOptions{});
  REQUIRE(r.ok());
  REQUIRE((*r)->stop().ok());
  CHECK(fs::exists(dir.path / "seg-000000.tlog"));
}

TEST_CASE("the writer lock: held from start to stop, one holder at a time", "[capture][errors]") {
  TempDir dir("writer-lock");
  using mmsb::format::DirLock;
  CHECK_FALSE(DirLock::held(dir.path));  // no directory yet: nobody holds it
  Bus bus;
  REQUIRE(bus.create_page(16).ok());
  auto r = Recorder::start(bus, dir.path, RecorderOptions{});
  REQUIRE(r.ok());
  CHECK(DirLock::held(dir.path));
  // Another holder is refused, in this process too (flock is per open).
  DirLock other;
  const mmsb::Status s = other.acquire(dir.path);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find(dir.path.string()) != std::string::npos);
  REQUIRE(bus.write(0, 0, model::to_bytes({1, 2, 3})).ok());
  REQUIRE((*r)->stop().ok());
  CHECK_FALSE(DirLock::held(dir.path));
  REQUIRE(other.acquire(dir.path).ok());
  CHECK(DirLock::held(dir.path));
  other.release();
  CHECK_FALSE(DirLock::held(dir.path));
  // A missing directory cannot be locked: an I/O error naming it.
  const mmsb::Status missing = other.acquire(dir.path / "nope");
  CHECK(missing.code() == Code::kIOError);
  CHECK(missing.message().find("nope") != std::string::npos);
}

TEST_CASE("start: a path that is a file, or whose parent is a file, is a clear error", "[capture][errors]") {
  TempDir dir("parent-file");
  fs::create_directories(dir.path);
  const fs::path file = dir.path / "plain";
  const std::vector<uint8_t> content{'x'};
  tlogr::write_file(file, content);
  Bus bus;
  SECTION("the path itself is a regular file") {
    auto r = Recorder::start(bus, file, RecorderOptions{});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kAlreadyExists);
    CHECK(r.status().message().find(file.string()) != std::string::npos);
  }
  SECTION("the parent is a regular file") {
    const fs::path under = file / "rec";
    auto r = Recorder::start(bus, under, RecorderOptions{});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kIOError);
    CHECK(r.status().message().find(under.string()) != std::string::npos);
  }
  CHECK(tlogr::read_file(file) == content);
  CHECK(fs::is_regular_file(file));
}

TEST_CASE("every segment's trailer names its own last delta epoch, 0 when it holds none", "[capture][segments]") {
  // segment_bytes = 1: the writer rotates after every delta frame, so the
  // last segment (opened by the rotation, closed by stop) holds no delta.
  TempDir dir("trailer");
  Bus bus;
  model::Model m;
  REQUIRE(*bus.create_page(64) == m.create(64));
  RecorderOptions opt;
  opt.segment_bytes = 1;
  opt.snapshot_log_ratio = 0;
  auto started = Recorder::start(bus, dir.path, opt);
  REQUIRE(started.ok());
  std::unique_ptr<Recorder> rec = std::move(*started);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 4; ++i) {
      const std::vector<uint8_t> v{static_cast<uint8_t>(round * 10 + i)};
      REQUIRE(bus.write(0, static_cast<uint64_t>(i), model::to_bytes(v)).ok());
      m.write(0, static_cast<uint64_t>(i), v);
    }
    REQUIRE(rec->flush().ok());
  }
  REQUIRE(rec->stop().ok());
  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  REQUIRE(r.segments.size() >= 2);
  CHECK(r.last_epoch == 12);
  for (const tlogr::Segment& s : r.segments) {
    INFO(s.name);
    REQUIRE(s.has_trailer);
    // Hand-computed: the last delta frame of this segment, or 0.
    uint64_t want = 0;
    for (size_t i = s.first_frame; i < s.first_frame + s.frame_count; ++i)
      if (r.frames[i].kind == tlogr::kDeltas) want = r.frames[i].last_epoch;
    CHECK(s.trailer_last_epoch == want);
  }
  CHECK(r.problems.empty());
  auto st = r.state_at(r.last_epoch);
  REQUIRE(st);
  CHECK(tlogr::compare_state(*st, m.pages, r.last_epoch, true) == "");
}

TEST_CASE("pages created while snapshots are being taken", "[capture][snapshots]") {
  // Many small pages, created at a high rate and written right away, while
  // the writer snapshots every few deltas in many parts: a page created
  // between two parts, or just before part 0, must still rebuild exactly.
  TempDir dir("create-during-snapshot");
  Bus bus;
  Workload w(bus, 0x5a9e0001);
  w.max_pages = 400;
  for (int i = 0; i < 4; ++i) w.create(50 + i);
  RecorderOptions opt;
  opt.batch_deltas = 3;
  opt.flush_interval = std::chrono::milliseconds(0);
  opt.snapshot_every_deltas = 20;
  opt.snapshot_log_ratio = 0;
  opt.snapshot_part_bytes = 64;  // ~one page per part
  opt.segment_bytes = 64 << 10;
  auto started = Recorder::start(bus, dir.path, opt);
  REQUIRE(started.ok());
  std::unique_ptr<Recorder> rec = std::move(*started);
  for (int i = 0; i < 1500; ++i) {
    if (i % 4 == 0 && w.m.pages.size() < w.max_pages) {
      const uint32_t p = w.create(w.rng.between(1, 80), i % 8 ? "" : "n" + std::to_string(i));
      const uint64_t size = w.m.pages[p].bytes.size();
      w.write(p, 0, w.rng.bytes(std::min<uint64_t>(size, 5)));
    } else {
      w.step(/*may_create=*/false);
    }
    if (i % 25 == 0) w.save();
  }
  // A flush runs the writer's loop once more, snapshot included when one is
  // due: after 25 more deltas one is (every 20), so at least one completes.
  REQUIRE(rec->flush().ok());
  for (int i = 0; i < 25; ++i) w.write(0, 0, w.rng.bytes(1));
  REQUIRE(rec->flush().ok());
  w.save();
  REQUIRE(w.errors.empty());
  REQUIRE(rec->stop().ok());

  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  CHECK(r.problems.empty());
  CHECK(r.clean());
  CHECK(first_difference(reader_deltas(r), w.expected, "recording vs model") == "");
  CHECK(complete_snapshots(r) >= 1);
  std::string why;
  for (const auto& [n, pages] : w.saved) {
    INFO("epoch " << n);
    auto best = r.state_at(n, -2, &why);
    INFO(why);
    REQUIRE(best);
    CHECK(tlogr::compare_state(*best, pages, n) == "");
    for (const auto& s : r.snapshots) {
      if (!s.complete || s.max_epoch > n) continue;
      INFO("from snapshot " << s.id);
      auto st = r.state_at(n, static_cast<int>(s.id), &why);
      REQUIRE(st);
      CHECK(tlogr::compare_state(*st, pages, n) == "");
    }
  }
  const std::vector<std::string> snap_problems = r.verify_snapshots();
  CHECK(snap_problems.empty());
  for (const std::string& p : snap_problems) UNSCOPED_INFO(p);
}

TEST_CASE("several application threads and a small TLog ring: back-pressure drops nothing", "[capture][threads]") {
  // Each thread owns its pages, so every page's final bytes are known
  // whatever the interleaving; the order is what the subscription saw.
  TempDir dir("threads");
  mmsb::BusOptions bo;
  bo.tlog_capacity = 64 << 10;  // the smallest ring: the writer falls behind often
  Bus bus(std::move(bo));
  constexpr int kThreads = 3, kPagesPer = 3, kWrites = 1500;
  std::vector<model::Model> own(kThreads);  // per-thread models (page k of thread t = id t*kPagesPer+k)
  for (int t = 0; t < kThreads; ++t)
    for (int k = 0; k < kPagesPer; ++k) {
      REQUIRE(*bus.create_page(3000 + 7 * k) == static_cast<PageId>(t * kPagesPer + k));
      own[t].create(3000 + 7 * k);
    }
  Observer obs;
  obs.attach(bus);
  RecorderOptions opt;
  opt.batch_deltas = 16;
  opt.flush_interval = std::chrono::milliseconds(2);
  opt.segment_bytes = 128 << 10;
  opt.snapshot_every_deltas = 700;
  opt.snapshot_log_ratio = 0;
  opt.snapshot_part_bytes = 4000;
  auto started = Recorder::start(bus, dir.path, opt);
  REQUIRE(started.ok());
  std::unique_ptr<Recorder> rec = std::move(*started);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      model::Rng rng(0x7e5d0000 + static_cast<uint64_t>(t));
      for (int i = 0; i < kWrites; ++i) {
        const uint32_t k = static_cast<uint32_t>(rng.below(kPagesPer));
        const uint64_t size = own[t].pages[k].bytes.size();
        const uint64_t off = rng.below(size);
        // Some big writes fill the ring quickly.
        const uint64_t len = rng.between(1, std::min<uint64_t>(rng.chance(10) ? 2500 : 40, size - off));
        const std::vector<uint8_t> v = rng.bytes(len);
        const mmsb::Status s = bus.write(static_cast<PageId>(t * kPagesPer) + k, off, model::to_bytes(v));
        if (!s.ok()) {
          errors[t] = s.to_string();
          return;
        }
        own[t].write(k, off, v);
      }
    });
  for (auto& th : threads) th.join();
  for (const std::string& e : errors) REQUIRE(e.empty());
  REQUIRE(rec->stop().ok());

  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  CHECK(r.problems.empty());
  CHECK(r.clean());
  REQUIRE(r.last_epoch == uint64_t{kThreads} * kWrites);
  CHECK(first_difference(reader_deltas(r), obs.seen, "recording vs subscription") == "");
  // The final state against the per-thread models.
  std::vector<model::Page> pages;
  for (int t = 0; t < kThreads; ++t)
    for (int k = 0; k < kPagesPer; ++k) pages.push_back(own[t].pages[k]);
  auto st = r.state_at(r.last_epoch);
  REQUIRE(st);
  // Creation epochs and names are all 0 / "": compare bytes and versions.
  CHECK(tlogr::compare_state(*st, pages, r.last_epoch, true) == "");
  const std::vector<std::string> snap_problems = r.verify_snapshots();
  CHECK(snap_problems.empty());
  for (const std::string& p : snap_problems) UNSCOPED_INFO(p);
}

TEST_CASE("two recorders of one bus write the same history", "[capture]") {
  TempDir d1("twin-a"), d2("twin-b");
  Bus bus;
  Workload w(bus, 0x7ee17);
  w.create_initial_pages();
  w.add_dependencies();
  RecorderOptions a;
  a.batch_deltas = 5;
  a.flush_interval = std::chrono::milliseconds(1);
  RecorderOptions b;
  b.batch_deltas = 300;
  b.segment_bytes = 16 << 10;
  b.zstd_level = 9;
  auto ra = Recorder::start(bus, d1.path, a);
  auto rb = Recorder::start(bus, d2.path, b);
  REQUIRE(ra.ok());
  REQUIRE(rb.ok());
  for (int i = 0; i < 600; ++i) w.step(true);
  REQUIRE(w.errors.empty());
  REQUIRE((*ra)->stop().ok());
  REQUIRE((*rb)->stop().ok());
  const tlogr::Recording x = tlogr::read_recording(d1.path);
  const tlogr::Recording y = tlogr::read_recording(d2.path);
  INFO(x.summary());
  INFO(y.summary());
  REQUIRE(x.ok());
  REQUIRE(y.ok());
  CHECK(x.problems.empty());
  CHECK(y.problems.empty());
  CHECK(first_difference(reader_deltas(x), w.expected, "first recording vs model") == "");
  CHECK(first_difference(reader_deltas(y), w.expected, "second recording vs model") == "");
}

TEST_CASE("durability modes and the destructor close segments properly", "[capture][durability]") {
  using mmsb::capture::Durability;
  const Durability mode = GENERATE(Durability::kProcess, Durability::kFsyncSegment, Durability::kFsyncFlush);
  INFO("durability " << static_cast<int>(mode));
  TempDir dir("durability");
  Bus bus;
  Workload w(bus, 0xd00b + static_cast<uint64_t>(mode));
  w.create_initial_pages();
  {
    RecorderOptions opt;
    opt.durability = mode;
    opt.batch_deltas = 9;
    opt.flush_interval = std::chrono::milliseconds(1);
    opt.segment_bytes = 4 << 10;
    auto started = Recorder::start(bus, dir.path, opt);
    REQUIRE(started.ok());
    for (int i = 0; i < 300; ++i) {
      w.step(true);
      if (i % 100 == 0) REQUIRE((*started)->flush().ok());
    }
    REQUIRE(w.errors.empty());
    // No stop(): the destructor stops.
  }
  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  CHECK(r.problems.empty());
  CHECK(r.clean());
  CHECK(r.segments.size() >= 2);
  for (const auto& s : r.segments) CHECK(s.has_trailer);
  CHECK(first_difference(reader_deltas(r), w.expected, "recording vs model") == "");
  auto st = r.state_at(r.last_epoch);
  REQUIRE(st);
  CHECK(tlogr::compare_state(*st, w.m.pages, r.last_epoch, true) == "");
}

TEST_CASE("a bus destroyed before its recorder: the recording still ends whole", "[capture][durability]") {
  TempDir dir("bus-first");
  auto bus = std::make_unique<Bus>();
  Workload w(*bus, 0xb05f);
  w.create_initial_pages();
  RecorderOptions opt;
  opt.batch_deltas = 7;
  opt.segment_bytes = 4 << 10;
  auto started = Recorder::start(*bus, dir.path, opt);
  REQUIRE(started.ok());
  for (int i = 0; i < 300; ++i) w.step(true);
  REQUIRE(w.errors.empty());
  bus.reset();  // e.g. a member declared after the recorder: destroyed first
  CHECK((*started)->status().ok());
  CHECK((*started)->flush().ok());
  CHECK((*started)->stop().ok());
  // stats() reads what the recorder kept, not the gone bus's TLog (ASan).
  CHECK((*started)->stats().deltas == w.expected.size());
  CHECK((*started)->stats().app_waits == 0u);
  started->reset();
  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  CHECK(r.problems.empty());
  CHECK(r.clean());
  for (const auto& s : r.segments) CHECK(s.has_trailer);
  CHECK(first_difference(reader_deltas(r), w.expected, "recording vs model") == "");
  auto st = r.state_at(r.last_epoch);
  REQUIRE(st);
  CHECK(tlogr::compare_state(*st, w.m.pages, r.last_epoch, true) == "");
}

TEST_CASE("a recorder stopped right after starting on a bus past epoch 0 still holds the state", "[capture]") {
  TempDir dir("late-stop");
  Bus bus;
  Workload w(bus, 0x57a1);
  w.create_initial_pages();
  for (int i = 0; i < 120; ++i) w.step(true);
  REQUIRE(w.errors.empty());
  RecorderOptions opt;
  opt.snapshot_part_bytes = 5000;
  auto started = Recorder::start(bus, dir.path, opt);
  REQUIRE(started.ok());
  REQUIRE((*started)->stop().ok());
  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  CHECK(r.problems.empty());
  CHECK(r.clean());
  CHECK(r.start_epoch == w.m.epoch);
  CHECK(r.deltas.empty());
  REQUIRE(r.snapshots.size() == 1);
  CHECK(r.snapshots[0].complete);
  CHECK(r.snapshots[0].parts >= 2);
  CHECK(r.snapshots[0].min_epoch == w.m.epoch);
  CHECK(r.snapshots[0].max_epoch == w.m.epoch);
  std::string why;
  auto st = r.state_at(w.m.epoch, -2, &why);
  INFO(why);
  REQUIRE(st);
  CHECK(tlogr::compare_state(*st, w.m.pages, w.m.epoch, true) == "");
}

TEST_CASE("deferred propagation: derived deltas and their causes are recorded", "[capture][deps]") {
  TempDir dir("deferred");
  mmsb::BusOptions bo;
  bo.propagation = mmsb::Propagation::kDeferred;
  Bus bus(std::move(bo));
  model::Model m;
  // Unicode and long names survive the page table too.
  const std::string long_name(300, 'n');
  REQUIRE(*bus.create_page(40, "s\xc3\xa9lection") == m.create(40, "s\xc3\xa9lection"));
  REQUIRE(*bus.create_page(40, long_name) == m.create(40, long_name));
  REQUIRE(*bus.create_page(8) == m.create(8));
  // 1 = bytes of 0 + 1; 2 = sum of 1's bytes (one byte), via assign.
  REQUIRE(bus.add_dependency(0, 1, [](UpdateContext& ctx) {
    std::vector<uint8_t> v = model::to_u8(ctx.source_bytes());
    for (uint8_t& b : v) b = static_cast<uint8_t>(b + 1);
    return ctx.assign(model::to_bytes(v));
  }).ok());
  REQUIRE(bus.add_dependency(1, 2, [](UpdateContext& ctx) {
    uint8_t sum = 0;
    for (std::byte b : ctx.source_bytes()) sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(b));
    return ctx.write(3, model::to_bytes({sum}));
  }).ok());
  Observer obs;
  obs.attach(bus);
  auto started = Recorder::start(bus, dir.path, RecorderOptions{});
  REQUIRE(started.ok());
  model::Rng rng(0xdefe);
  std::vector<Seen> want;
  for (int round = 0; round < 20; ++round) {
    // A few application writes to page 0, then one propagation.
    Epoch last_app = 0;
    for (int k = 0; k < 3; ++k) {
      const uint64_t off = rng.below(36);
      const std::vector<uint8_t> v = rng.bytes(4);
      const uint64_t base = m.pages[0].version;
      REQUIRE(bus.write(0, off, model::to_bytes(v)).ok());
      last_app = m.write(0, off, v);
      want.push_back({last_app, 0, 0, base, {{off, 4}}, v});
    }
    REQUIRE(bus.propagate().ok());
    // Hand-modelled: page 1 = page 0 + 1 (assign: only differing runs),
    // caused by the last delta of page 0; then page 2 from page 1.
    std::vector<uint8_t> img = m.pages[0].bytes;
    for (uint8_t& b : img) b = static_cast<uint8_t>(b + 1);
    const std::vector<model::Run> runs = model::diff_runs(m.pages[1].bytes, img);
    const uint64_t base1 = m.pages[1].version;
    const uint64_t e1 = m.assign(1, img);
    REQUIRE(e1 != 0);
    want.push_back({e1, 1, last_app, base1, runs, model::gather(img, runs)});
    uint8_t sum = 0;
    for (uint8_t b : m.pages[1].bytes) sum = static_cast<uint8_t>(sum + b);
    const uint64_t base2 = m.pages[2].version;
    want.push_back({m.write(2, 3, {sum}), 2, e1, base2, {{3, 1}}, {sum}});
  }
  REQUIRE((*started)->stop().ok());
  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  CHECK(r.clean());
  CHECK(first_difference(reader_deltas(r), want, "recording vs model") == "");
  CHECK(first_difference(reader_deltas(r), obs.seen, "recording vs subscription") == "");
  REQUIRE(r.pages.size() == 3);
  CHECK(r.pages[0].name == "s\xc3\xa9lection");
  CHECK(r.pages[1].name == long_name);
  auto st = r.state_at(r.last_epoch);
  REQUIRE(st);
  CHECK(tlogr::compare_state(*st, m.pages, r.last_epoch, true) == "");
}

// snapshot_every_deltas counts the deltas the writer has taken from the ring,
// not only those already in a frame: with a batch that is neither full nor
// aged (an application writing less than batch_deltas between flushes), the
// recording still gets a snapshot every N deltas.
TEST_CASE("snapshot_every_deltas holds while the batch is not yet written", "[capture][snapshots]") {
  TempDir dir("snap-every");
  Bus bus;
  const PageId p = bus.create_page(64, "p").value();
  RecorderOptions opt;
  opt.snapshot_every_deltas = 100;
  opt.snapshot_log_ratio = 0;
  opt.flush_interval = std::chrono::seconds(60);  // the batch never ages
  opt.batch_deltas = 8192;                         // nor fills
  auto started = Recorder::start(bus, dir.path, opt);
  REQUIRE(started.ok());
  std::unique_ptr<Recorder> rec = std::move(*started);
  // 1000 deltas at a pace the writer keeps up with (it drains every ~1 ms).
  for (int i = 0; i < 1000; ++i) {
    const std::byte b{static_cast<unsigned char>(i)};
    REQUIRE(bus.write(p, static_cast<uint64_t>(i % 64), std::span(&b, 1)).ok());
    if (i % 10 == 9) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  REQUIRE(rec->stop().ok());

  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  REQUIRE(r.ok());
  CHECK(r.problems.empty());
  REQUIRE(r.last_epoch == 1000);
  // Ideally one every 100 deltas (9 or 10); allow for a slow writer, but
  // the first must come long before the 1000 deltas are over.
  std::vector<uint64_t> epochs;
  for (const tlogr::Snapshot& s : r.snapshots)
    if (s.complete) epochs.push_back(s.min_epoch);
  INFO("snapshots: " << epochs.size());
  REQUIRE(epochs.size() >= 4);
  CHECK(epochs.front() <= 400);
  CHECK(rec->stats().snapshots == r.snapshots.size());
}

TEST_CASE("start, flush and stop from an event callback are refused, not a deadlock", "[capture][errors]") {
  TempDir dir("callback");
  Bus bus;
  const mmsb::PageId p = bus.create_page(8).value();
  auto started = Recorder::start(bus, dir.path / "rec");
  REQUIRE(started.ok());
  std::unique_ptr<Recorder> rec = std::move(*started);
  mmsb::Status flush_there, stop_there, start_there;
  REQUIRE(bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied), [&](const mmsb::Event&) {
               flush_there = rec->flush();
               stop_there = rec->stop();
               start_there = Recorder::start(bus, dir.path / "other").status();
             }).ok());
  const std::byte v[1] = {std::byte{5}};
  REQUIRE(bus.write(p, 0, v).ok());
  for (const mmsb::Status* s : {&flush_there, &stop_there, &start_there}) {
    INFO(s->to_string());
    CHECK(s->code() == mmsb::Code::kFailedPrecondition);
    CHECK(s->message().find("called from an event callback") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(dir.path / "other"));  // refused before making anything
  // The recording goes on and ends normally, the write included.
  REQUIRE(rec->stop().ok());
  const tlogr::Recording r = tlogr::read_recording(dir.path / "rec");
  CHECK(r.last_epoch == 1u);
  CHECK(r.deltas.size() == 1u);
}

TEST_CASE("a recorder destroyed from an event callback while it owes a snapshot: no deadlock", "[capture][errors]") {
  TempDir dir("callback-dtor");
  Bus bus;
  const mmsb::PageId p = bus.create_page(64).value();
  const std::byte v[1] = {std::byte{5}};
  REQUIRE(bus.write(p, 0, v).ok());  // past epoch 0: the writer owes an initial snapshot
  auto started = Recorder::start(bus, dir.path);
  REQUIRE(started.ok());
  std::unique_ptr<Recorder> rec = std::move(*started);
  REQUIRE(bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied), [&](const mmsb::Event&) { rec.reset(); }).ok());
  REQUIRE(bus.write(p, 1, v).ok());  // returns: the destructor did not wait for the bus lock
  CHECK(rec == nullptr);
  REQUIRE(bus.write(p, 2, v).ok());
  // What was written is there: the segment's file header and first frames.
  const tlogr::Recording r = tlogr::read_recording(dir.path);
  INFO(r.summary());
  CHECK_FALSE(r.segments.empty());
}

TEST_CASE("stop() and flush() from several threads at once", "[capture][threads]") {
  for (int round = 0; round < 20; ++round) {
    TempDir dir("stop-race");
    Bus bus;
    const mmsb::PageId p = bus.create_page(16).value();
    auto started = Recorder::start(bus, dir.path);
    REQUIRE(started.ok());
    std::unique_ptr<Recorder> rec = std::move(*started);
    for (int i = 0; i < 100; ++i) {
      const std::byte v[1] = {std::byte(i)};
      REQUIRE(bus.write(p, static_cast<uint64_t>(i % 16), v).ok());
    }
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        const mmsb::Status s = t % 2 ? rec->flush() : rec->stop();
        if (!s.ok()) ++failures;
        (void)rec->stats();
      });
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
    REQUIRE(rec->stop().ok());
    const tlogr::Recording r = tlogr::read_recording(dir.path);
    CHECK(r.clean());
    CHECK(r.deltas.size() == 100u);
  }
}

TEST_CASE("start: options out of range are refused, naming the option, and nothing is created", "[capture][errors]") {
  Bus bus;
  REQUIRE(bus.create_page(8).ok());
  struct Bad {
    const char* name;
    std::function<void(RecorderOptions&)> set;
  };
  const std::vector<Bad> bad = {
      {"batch_deltas", [](RecorderOptions& o) { o.batch_deltas = 0; }},
      {"batch_bytes", [](RecorderOptions& o) { o.batch_bytes = 0; }},
      {"snapshot_part_bytes", [](RecorderOptions& o) { o.snapshot_part_bytes = 0; }},
      {"flush_interval", [](RecorderOptions& o) { o.flush_interval = std::chrono::milliseconds::max(); }},
      {"flush_interval", [](RecorderOptions& o) { o.flush_interval = std::chrono::milliseconds(-1); }},
      {"snapshot_log_ratio", [](RecorderOptions& o) { o.snapshot_log_ratio = -1; }},
      {"snapshot_log_ratio", [](RecorderOptions& o) { o.snapshot_log_ratio = std::nan(""); }},
      {"durability", [](RecorderOptions& o) { o.durability = static_cast<mmsb::capture::Durability>(9); }},
  };
  for (const Bad& b : bad) {
    TempDir dir("bad-options");
    RecorderOptions o;
    b.set(o);
    auto r = Recorder::start(bus, dir.path, o);
    INFO(b.name << ": " << r.status().to_string());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK(r.status().message().find(b.name) != std::string::npos);
    CHECK_FALSE(fs::exists(dir.path));
  }
}
