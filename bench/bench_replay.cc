// seek and replay: reading a recording of the workload back.
//
// Both record the workload once per workload (default Recorder options, pages
// p0..p{P-1}), into --keep DIR/<workload>-replay/ or a temporary directory,
// then time only the reading:
//
//   replay  State::replay_from_start: every delta frame read from the files,
//           checksummed, decompressed, every delta decoded, validated and
//           applied in epoch order, no snapshot used (deltas_per_s). Also
//           Index::build with checkpoints off (index_deltas_per_s): the same
//           work plus copying every delta into the index's arrays.
//   seek    Index::build with default options (its time and memory
//           reported), then scope "state": StateView::seek to 100 random
//           epochs, one after the other (forward and backward moves; the
//           view's image is allocated by one untimed seek first), and
//           scope "page": Index::page_at of 1,000 random (epoch, page) pairs.
//           p50/p99 over the samples of each repeat; the median is reported.
//
// Random epochs and pages come from splitmix64 seeded with 42 (WORKLOADS.md's
// generator), in 1..deltas.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "apply_loop.h"
#include "json.h"
#include "mmsb/bus.h"
#include "mmsb/capture/recorder.h"
#include "mmsb/replay/index.h"
#include "mmsb/replay/state.h"
#include "registry.h"

namespace mmsb::bench {

namespace fs = std::filesystem;

namespace {

// One recording per workload, made on first use and shared by seek and replay.
struct Made {
  std::unique_ptr<TempDir> tmp;
  fs::path dir;
  bool ok = false;
};
std::map<std::string, Made>& made() {
  static std::map<std::string, Made> m;
  return m;
}

const fs::path* recording_of(Context& ctx) {
  const Workload& w = ctx.workload;
  const std::string wl(w.spec.name);
  Made& m = made()[wl];
  if (m.ok) return &m.dir;
  if (const std::string keep = ctx.keep_path(); !keep.empty()) {
    m.dir = keep + "-replay";
    std::error_code ec;
    fs::remove_all(m.dir, ec);
    fs::create_directories(fs::path(m.dir).parent_path(), ec);
  } else {
    m.tmp = std::make_unique<TempDir>("replay");
    if (m.tmp->path().empty()) {
      note("seek/replay %s: cannot create a temporary directory: %s", wl.c_str(), std::strerror(errno));
      return nullptr;
    }
    m.dir = m.tmp->path() / wl;
  }
  note("seek/replay %s: recording %zu deltas to %s", wl.c_str(), w.count(), m.dir.c_str());
  auto bus = std::make_unique<Bus>();
  std::vector<PageId> ids;
  std::vector<Version> versions;
  if (Status s = create_workload_pages(*bus, w, &ids); !s.ok()) {
    note("seek/replay %s: %s", wl.c_str(), s.to_string().c_str());
    return nullptr;
  }
  auto rec = capture::Recorder::start(*bus, m.dir);
  if (!rec.ok()) {
    note("seek/replay %s: Recorder::start: %s", wl.c_str(), rec.status().to_string().c_str());
    return nullptr;
  }
  const ApplyLoop run = apply_workload(*bus, w, ids, versions);
  const Status stopped = (*rec)->stop();
  if (!run.ok() || !stopped.ok()) {
    note("seek/replay %s: recording failed: %s", wl.c_str(),
         (!run.ok() ? run.error : stopped).to_string().c_str());
    return nullptr;
  }
  m.ok = true;
  return &m.dir;
}

// The workload's recording, opened; nullptr (after a note) if that fails.
std::unique_ptr<replay::Recording> open_recording(Context& ctx, const char* bench) {
  const std::string wl(ctx.workload.spec.name);
  const fs::path* dir = recording_of(ctx);
  if (!dir) return nullptr;
  auto rec = replay::Recording::open(*dir);
  if (!rec.ok()) {
    note("%s %s: FAILED: %s", bench, wl.c_str(), rec.status().to_string().c_str());
    return nullptr;
  }
  return std::move(*rec);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

Outcome run_replay(Context& ctx) {
  const Workload& w = ctx.workload;
  const std::string wl(w.spec.name);
  const std::unique_ptr<replay::Recording> rec = open_recording(ctx, "replay");
  if (!rec) return Outcome::kFailed;
  const double n = static_cast<double>(rec->delta_count());
  std::vector<double> index_s, state_s;
  for (int r = 0; r < ctx.repeat(); ++r) {
    replay::IndexOptions opt;
    opt.checkpoint_bytes = 0;  // only the start image
    opt.min_checkpoint_interval = UINT64_MAX;
    const Clock::time_point t0 = Clock::now();
    auto ix = replay::Index::build(*rec, opt);
    index_s.push_back(seconds_since(t0));
    if (!ix.ok() || (*ix)->delta_count() != w.count()) {
      note("replay %s: FAILED: %s", wl.c_str(), ix.ok() ? "wrong delta count" : ix.status().to_string().c_str());
      return Outcome::kFailed;
    }
  }
  for (int r = 0; r < ctx.repeat(); ++r) {
    replay::State st(*rec);
    const Clock::time_point t0 = Clock::now();
    const Status s = st.replay_from_start(rec->last_epoch());
    state_s.push_back(seconds_since(t0));
    if (!s.ok() || st.deltas_applied() != w.count()) {
      note("replay %s: FAILED: %s", wl.c_str(), s.ok() ? "wrong delta count" : s.to_string().c_str());
      return Outcome::kFailed;
    }
  }
  JsonLine("replay", wl)
      .num("deltas_per_s", n / median(state_s))
      .num("mb_per_s", static_cast<double>(w.total_bytes) / kMB / median(state_s))
      .num("index_deltas_per_s", n / median(index_s))
      .integer("repeat", ctx.repeat())
      .emit();
  return Outcome::kOk;
}

Outcome run_seek(Context& ctx) {
  const Workload& w = ctx.workload;
  const std::string wl(w.spec.name);
  const std::unique_ptr<replay::Recording> rec = open_recording(ctx, "seek");
  if (!rec) return Outcome::kFailed;
  const Clock::time_point t0 = Clock::now();
  auto built = replay::Index::build(*rec);
  const double build_s = seconds_since(t0);
  if (!built.ok()) {
    note("seek %s: FAILED: %s", wl.c_str(), built.status().to_string().c_str());
    return Outcome::kFailed;
  }
  const replay::Index& ix = **built;
  const uint64_t last = ix.last_epoch();
  const uint32_t pages = w.spec.pages;

  std::vector<double> state_p50, state_p99, page_p50, page_p99;
  SplitMix64 rng(kWorkloadSeed);
  replay::StateView view(ix);
  std::vector<std::byte> page;
  uint64_t sink = 0;
  // The first seek maps and faults in the view's state image: once per view,
  // not per seek, so it is left out of the timed seeks.
  if (Status s = view.seek(ix.start_epoch()); !s.ok()) {
    note("seek %s: FAILED: %s", wl.c_str(), s.to_string().c_str());
    return Outcome::kFailed;
  }
  for (int r = 0; r < ctx.repeat(); ++r) {
    std::vector<double> ms;
    for (int i = 0; i < 100; ++i) {
      const Epoch e = 1 + rng.next() % last;
      const Clock::time_point t = Clock::now();
      const Status s = view.seek(e);
      ms.push_back(seconds_since(t) * 1e3);
      if (!s.ok()) {
        note("seek %s: FAILED at epoch %llu: %s", wl.c_str(), static_cast<unsigned long long>(e), s.to_string().c_str());
        return Outcome::kFailed;
      }
      sink += static_cast<uint64_t>(view.page(static_cast<PageId>(e % pages))[0]);
    }
    state_p50.push_back(percentile(ms, 0.50));
    state_p99.push_back(percentile(ms, 0.99));
    ms.clear();
    for (int i = 0; i < 1000; ++i) {
      const Epoch e = 1 + rng.next() % last;
      const PageId p = static_cast<PageId>(rng.next() % pages);
      const Clock::time_point t = Clock::now();
      const Status s = ix.page_at(p, e, &page);
      ms.push_back(seconds_since(t) * 1e3);
      if (!s.ok()) {
        note("seek %s: FAILED: page %u at epoch %llu: %s", wl.c_str(), p, static_cast<unsigned long long>(e),
             s.to_string().c_str());
        return Outcome::kFailed;
      }
      sink += static_cast<uint64_t>(page[0]);
    }
    page_p50.push_back(percentile(ms, 0.50));
    page_p99.push_back(percentile(ms, 0.99));
  }
  clobber(&sink);
  JsonLine("seek", wl)
      .str("scope", "state")
      .num("p50_ms", median(state_p50))
      .num("p99_ms", median(state_p99))
      .num("index_build_s", build_s)
      .num("index_mb", static_cast<double>(ix.memory_bytes()) / kMB)
      .integer("checkpoints", static_cast<int64_t>(ix.checkpoint_count()))
      .integer("checkpoint_interval", static_cast<int64_t>(ix.interval()))
      .integer("repeat", ctx.repeat())
      .emit();
  JsonLine("seek", wl)
      .str("scope", "page")
      .num("p50_ms", median(page_p50))
      .num("p99_ms", median(page_p99))
      .integer("repeat", ctx.repeat())
      .emit();
  return Outcome::kOk;
}

}  // namespace mmsb::bench
