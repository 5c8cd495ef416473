// Shared by the replay tests: a random workload driven through a Bus and the
// plain byte-array model of engine_model.h at once, with the model's copies of
// every page at chosen epochs, a log of what each delta wrote and the cause of
// each derived delta; and frame boundaries read straight from segment files
// per docs/FORMAT.md (never from the replay library's own frame list).
#pragma once

#include <catch2/catch.hpp>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine_model.h"
#include "mmsb/bus.h"
#include "mmsb/capture/recorder.h"
#include "mmsb/hash.h"
#include "mmsb/replay/recording.h"
#include "mmsb/replay/state.h"
#include "tlog_reader.h"

namespace fs = std::filesystem;
using mmsb::Bus;
using mmsb::Code;
using mmsb::Epoch;
using mmsb::UpdateContext;
using mmsb::capture::Recorder;
using mmsb::capture::RecorderOptions;
using mmsb::replay::Recording;
using mmsb::replay::State;

// Helpers a test file may not use are inline, so that it builds without
// unused-function warnings.
namespace {

using model::TempDir;

// Y[0..4) = X[0..4) reversed: a pure function used by the bus and the model.
std::vector<uint8_t> f_y(const std::vector<uint8_t>& x) { return {x[3], x[2], x[1], x[0]}; }

struct Snap {
  std::vector<model::Page> pages;  // pages that exist at the epoch
};

// Drives a Bus and the model with the same random operations.
class Workload {
 public:
  Workload(Bus& bus, uint64_t seed) : rng(seed), bus_(bus) {}

  model::Model m;
  model::Rng rng;
  std::vector<std::string> errors;
  uint32_t X = 0, Y = 0;
  bool deps = false;
  bool save_all = false;  // a copy after every delta, derived ones included
  std::map<uint64_t, Snap> saved;  // epoch -> copy of every page
  // What each delta wrote: its page, the runs it covers (a write's whole
  // range, an assign's changed bytes) and its cause (0: not derived).
  struct Written {
    uint32_t page = 0;
    std::vector<model::Run> runs;
    Epoch cause = 0;
  };
  std::map<Epoch, Written> log;

  uint32_t create(uint64_t size, const std::string& name = {}) {
    auto id = bus_.create_page(size, name);
    const uint32_t want = m.create(size, name);
    if (!id.ok() || *id != want) errors.push_back("create_page(" + std::to_string(size) + ") -> unexpected id");
    // A page created at epoch E exists at E (docs/FORMAT.md: its creation
    // epoch is the bus epoch then): a copy saved at E must include it.
    if (saved.count(m.epoch)) save();
    return want;
  }

  void add_dependency() {
    X = create(8, "dep.x");
    Y = create(16, "dep.y");
    deps = true;
    const mmsb::Status s = bus_.add_dependency(X, Y, [](UpdateContext& ctx) {
      return ctx.write(0, model::to_bytes(f_y(model::to_u8(ctx.source_bytes()))));
    });
    if (!s.ok()) errors.push_back("add_dependency: " + s.to_string());
  }

  void save() { saved[m.epoch] = Snap{m.pages}; }

  void step(bool may_create) {
    const uint64_t r = rng.below(100);
    if (may_create && r < 3 && m.pages.size() < 40) {
      const uint64_t sizes[] = {1, 5, 64, 65, 1000, 4096, 4099};
      create(sizes[rng.below(std::size(sizes))], rng.chance(50) ? "new" + std::to_string(m.pages.size()) : "");
      return;
    }
    // Bias towards the dependency source so derived deltas are frequent.
    const uint32_t p = (deps && rng.chance(15)) ? X : static_cast<uint32_t>(rng.below(m.pages.size()));
    const uint64_t size = m.pages[p].bytes.size();
    if (r < 65) {
      const uint64_t off = rng.below(size);
      const uint64_t len = rng.between(1, std::min<uint64_t>(48, size - off));
      write(p, off, rng.bytes(len));
    } else {
      assign(p, rng.scribbled(m.pages[p].bytes));
    }
  }

  void write(uint32_t p, uint64_t off, const std::vector<uint8_t>& v) {
    Epoch e = 0;
    const mmsb::Status s = bus_.write(p, off, model::to_bytes(v), &e);
    const uint64_t want = m.write(p, off, v);
    log[want] = Written{p, {model::Run{off, v.size()}}, 0};
    check(s, e, want, "write");
    propagate(p);
  }

  void assign(uint32_t p, const std::vector<uint8_t>& image) {
    Epoch e = 0;
    const mmsb::Status s = bus_.assign(p, model::to_bytes(image), &e);
    const std::vector<model::Run> changed = model::diff_runs(m.pages[p].bytes, image);
    const uint64_t want = m.assign(p, image);
    if (want != 0) log[want] = Written{p, changed, 0};
    check(s, e, want, "assign");
    if (want != 0) propagate(p);
  }

 private:
  void check(const mmsb::Status& s, Epoch got, uint64_t want, const char* what) {
    if (!s.ok()) errors.push_back(std::string(what) + ": " + s.to_string());
    if (got != want)
      errors.push_back(std::string(what) + " returned epoch " + std::to_string(got) + ", want " + std::to_string(want));
  }
  void propagate(uint32_t p) {
    if (save_all) save();
    if (deps && p == X) {
      const Epoch cause = m.epoch;
      log[m.write(Y, 0, f_y(m.pages[X].bytes))] = Written{Y, {model::Run{0, 4}}, cause};
    }
    if (save_all) save();
  }

  Bus& bus_;
};

// State at its epoch against the model's copy: every page's bytes and version.
inline void check_state(const State& st, const Snap& want, Epoch epoch) {
  INFO("epoch " << epoch);
  REQUIRE(st.valid());
  REQUIRE(st.epoch() == epoch);
  REQUIRE(st.page_count() == want.pages.size());
  for (uint32_t id = 0; id < want.pages.size(); ++id) {
    INFO("page " << id);
    const long long mm = model::first_mismatch(st.page(id), want.pages[id].bytes);
    CHECK(mm == -1);
    CHECK(st.version(id) == want.pages[id].version);
  }
  // And the whole-state hash against one computed over the model's bytes.
  mmsb::StateHasher h;
  for (uint32_t id = 0; id < want.pages.size(); ++id) h.add_page(id, model::to_bytes(want.pages[id].bytes));
  CHECK(st.state_hash() == h.digest());
}

RecorderOptions small_options() {
  RecorderOptions opt;
  opt.program = "replay-test";
  opt.batch_deltas = 32;
  opt.flush_interval = std::chrono::milliseconds(5);
  opt.segment_bytes = 24 << 10;
  opt.snapshot_log_ratio = 0;
  opt.snapshot_every_deltas = 150;
  opt.snapshot_part_bytes = 4096;
  return opt;
}

// Runs `ops` random steps, saving model copies now and then and flushing at
// times (so frames land in several segments and snapshots interleave).
void run_workload(Workload& w, Recorder& rec, int ops) {
  for (int i = 0; i < ops; ++i) {
    w.step(/*may_create=*/true);
    if (w.rng.chance(6)) w.save();
    if (i % 250 == 125) REQUIRE(rec.flush().ok());
  }
  w.save();
}

// ---- frame headers read straight from a segment file (docs/FORMAT.md) ----
struct RawFrame {
  uint64_t offset = 0;
  uint8_t kind = 0;
  uint32_t payload = 0;
  uint64_t first = 0, last = 0;
  uint64_t end() const { return offset + 40 + payload; }
};
std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_file(const fs::path& p, const std::vector<uint8_t>& v) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size()));
}
template <class T>
T get(const std::vector<uint8_t>& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}
// Frames walked from offset 32 while the magic says "MMSF" (stops at the trailer).
std::vector<RawFrame> raw_frames(const std::vector<uint8_t>& f) {
  std::vector<RawFrame> out;
  uint64_t off = 32;
  while (off + 40 <= f.size() && std::memcmp(f.data() + off, "MMSF", 4) == 0) {
    RawFrame r;
    r.offset = off;
    r.kind = f[off + 4];
    r.payload = get<uint32_t>(f, off + 8);
    r.first = get<uint64_t>(f, off + 16);
    r.last = get<uint64_t>(f, off + 24);
    if (r.end() > f.size()) break;
    out.push_back(r);
    off = r.end();
  }
  return out;
}
std::vector<fs::path> segment_files(const fs::path& dir) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}
constexpr uint8_t kDeltasKind = 3, kIndexKind = 5;

// A recording made once and shared by the damage tests (copied per test).
struct Recorded {
  TempDir dir{"replay-src"};
  std::map<uint64_t, Snap> saved;
  Epoch last = 0;
};
inline Recorded& shared_recording() {
  static Recorded r;  // removed at exit
  static bool made = false;
  if (!made) {
    Bus bus;
    Workload w(bus, 0xdada01);
    for (uint64_t s : {1, 100, 4096, 777}) w.create(s, s == 100 ? "hundred" : "");
    w.add_dependency();
    w.save();
    auto started = Recorder::start(bus, r.dir.path, small_options());
    REQUIRE(started.ok());
    run_workload(w, **started, 1500);
    REQUIRE(w.errors.empty());
    REQUIRE((*started)->stop().ok());
    r.saved = w.saved;
    r.last = w.m.epoch;
    made = true;
  }
  return r;
}

// The model's copy at `e`: the newest saved copy at or before e must be at e.
inline const Snap* model_at(const std::map<uint64_t, Snap>& saved, Epoch e) {
  auto it = saved.find(e);
  return it == saved.end() ? nullptr : &it->second;
}

}  // namespace
