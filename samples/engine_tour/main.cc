// mmsb-sample-tour: a short walk through the MMSB engine.
//
// Three pages: a clock, a few particles and a summary that the bus keeps up to
// date from the particles through a dependency. Every step the application
// ticks the clock with Bus::write, moves particles in its own copy and hands
// the whole copy to Bus::assign, which diffs it against the page and applies
// only the bytes that changed. An event subscriber prints every delta; a
// CpuMirror follows the bus and shows that it holds the same state.
#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>
#include <mmsb/capture/recorder.h>
#include <mmsb/mmsb.h>

#include "sample.h"

namespace {

// What the application keeps in its pages. MMSB itself only sees bytes.
struct Particle {
  int32_t x, y;
};
constexpr int kParticles = 8;
using Particles = std::array<Particle, kParticles>;
struct Summary {
  int32_t sum_x, sum_y;  // kParticles times the centroid
  int32_t max_x, max_y;
};

// The sample stops at the first error (sample.h); a real application would
// handle it.
using sample::bytes_of;
using sample::check;

// The summary page's update function. The bus calls it after `particles`
// changed; assign() writes only the summary bytes that differ.
mmsb::Status summarize(mmsb::UpdateContext& ctx) {
  Particles ps;
  std::memcpy(ps.data(), ctx.source_bytes().data(), sizeof ps);
  Summary s{0, 0, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::min()};
  for (const Particle& p : ps) {
    s.sum_x += p.x;
    s.sum_y += p.y;
    s.max_x = std::max(s.max_x, p.x);
    s.max_y = std::max(s.max_y, p.y);
  }
  return ctx.assign(bytes_of(s));
}

using Names = std::map<mmsb::PageId, std::string>;

// Runs inside the bus (writing thread, lock held): it must not call back into
// the bus's locked methods, so page names come from our own table.
void print_event(const mmsb::Event& e, const Names& names) {
  if (e.kind == mmsb::EventKind::kDependencyTriggered) {
    std::printf("    '%s' changed at epoch %" PRIu64 " -> the bus updates '%s'\n",
                names.at(e.source).c_str(), e.cause, names.at(e.page).c_str());
    return;
  }
  const mmsb::DeltaView& d = *e.delta;
  std::string ranges;
  for (size_t i = 0; i < d.ranges.size(); ++i) {
    if (i == 4) {
      ranges += " ...";
      break;
    }
    ranges += " [" + std::to_string(d.ranges[i].offset) + "," + std::to_string(d.ranges[i].end()) + ")";
  }
  std::printf("  epoch %" PRIu64 ": '%s' v%" PRIu64 " -> v%" PRIu64 ", %zu byte(s) changed at%s",
              d.epoch, names.at(d.page).c_str(), d.base_version, d.new_version(), d.bytes.size(),
              ranges.c_str());
  if (d.derived()) std::printf(" (derived, cause epoch %" PRIu64 ")", d.cause);
  std::printf("\n");
}

// Brings the mirror up to date and compares its state hash with the bus's.
bool sync_mirror(mmsb::CpuMirror& mirror, const mmsb::Bus& bus) {
  const uint64_t applied = check(mirror.sync(), "mirror sync");
  const uint64_t mine = mirror.state_hash(), theirs = bus.state_hash();
  std::printf("  mirror: applied %" PRIu64 " delta(s), synced to epoch %" PRIu64
              ", state hash %016" PRIx64 " %s bus %016" PRIx64 "\n",
              applied, mirror.synced_epoch(), mine, mine == theirs ? "==" : "!=", theirs);
  return mine == theirs;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A short tour of the MMSB engine: pages, deltas, the diff engine, a dependency, "
               "events and a CPU mirror."};
  int steps = 3;
  std::string record;
  app.add_option("--steps", steps, "Simulation steps to run")->check(CLI::Range(1, 1000000));
  app.add_option("--record", record, "Record the run into this new directory");
  CLI11_PARSE(app, argc, argv);

  mmsb::Bus bus;  // anonymous mmap'ed pages, dependents updated immediately

  // Pages are zero-filled byte arrays; names are optional.
  Names names;
  const mmsb::PageId clock = check(bus.create_page(sizeof(uint64_t), "clock"), "create_page");
  const mmsb::PageId particles = check(bus.create_page(sizeof(Particles), "particles"), "create_page");
  const mmsb::PageId summary = check(bus.create_page(sizeof(Summary), "summary"), "create_page");
  names = {{clock, "clock"}, {particles, "particles"}, {summary, "summary"}};
  std::printf("pages: %u 'clock' (%zu B), %u 'particles' (%zu B), %u 'summary' (%zu B)\n", clock,
              sizeof(uint64_t), particles, sizeof(Particles), summary, sizeof(Summary));

  // Recording: a writer thread persists every delta from here on; this
  // thread only keeps applying them.
  std::unique_ptr<mmsb::capture::Recorder> recorder;
  if (!record.empty()) {
    mmsb::capture::RecorderOptions options;
    options.labels = {{"sample", "tour"}, {"steps", std::to_string(steps)}};
    recorder = check(mmsb::capture::Recorder::start(bus, record, options), "Recorder::start");
    std::printf("recording into %s\n", record.c_str());
  }

  // 'summary' is derived from 'particles': the bus runs summarize() whenever
  // the particles change, and its deltas carry the triggering delta's epoch.
  check(bus.add_dependency(particles, summary, summarize), "add_dependency");

  const uint32_t kinds = mmsb::mask_of(mmsb::EventKind::kDeltaApplied) |
                         mmsb::mask_of(mmsb::EventKind::kDependencyTriggered);
  const mmsb::SubscriptionId sub =
      check(bus.subscribe(kinds, [&](const mmsb::Event& e) { print_event(e, names); }), "subscribe");

  mmsb::CpuMirror mirror(bus);  // a second copy that catches up from the TLog
  bool coherent = true;

  // write() applies exactly the bytes given, as one delta.
  Particles ps{};
  for (int i = 0; i < kParticles; ++i) ps[i] = {10 * i, 100 + i};
  std::printf("setup: write() all particles\n");
  check(bus.write(particles, 0, bytes_of(ps)), "write");
  coherent &= sync_mirror(mirror, bus);

  for (int step = 1; step <= steps; ++step) {
    const int a = step % kParticles, b = (3 * step + 1) % kParticles;
    std::printf("step %d: write() the clock, move particles %d and %d, assign() them\n", step, a, b);
    const uint64_t tick = static_cast<uint64_t>(step);
    check(bus.write(clock, 0, bytes_of(tick)), "write");
    // Mutate our own copy, then let the diff engine find what changed.
    ps[a].x += 1;
    ps[b].y -= 2;
    check(bus.assign(particles, bytes_of(ps)), "assign");
    coherent &= sync_mirror(mirror, bus);
  }
  check(bus.unsubscribe(sub), "unsubscribe");

  // Deltas are optimistic: one built on an old version is refused, nothing changes.
  const mmsb::PageInfo info = check(bus.info(particles), "info");
  const int32_t bogus = -1;
  const mmsb::Delta stale = mmsb::Delta::from_write(particles, info.version - 1, 0, bytes_of(bogus));
  const mmsb::Status refused = bus.apply(stale.view());
  std::printf("a delta built on v%" PRIu64 " of 'particles' (now v%" PRIu64 "): %s\n",
              stale.base_version, info.version, refused.to_string().c_str());

  if (recorder) {
    check(recorder->stop(), "Recorder::stop");  // last frames, index, trailer
    const mmsb::capture::RecorderStats st = recorder->stats();
    std::printf("recorded %" PRIu64 " deltas (epochs up to %" PRIu64 ") in %" PRIu64 " frame(s), %" PRIu64
                " byte(s), %" PRIu64 " segment(s) under %s\n",
                st.deltas, st.last_epoch, st.frames, st.total_bytes, st.segments, record.c_str());
  }

  Summary s;
  check(bus.read(summary, 0, std::as_writable_bytes(std::span(&s, 1))), "read");
  std::printf("end: epoch %" PRIu64 ", centroid (%.3f, %.3f), max (%d, %d); mirror %s the bus\n",
              bus.epoch(), s.sum_x / double(kParticles), s.sum_y / double(kParticles), s.max_x,
              s.max_y, coherent ? "matched" : "did NOT match");
  return coherent && refused.code() == mmsb::Code::kConflict ? 0 : 1;
}
