// The mirror's two sync paths (SyncPath: deltas, pages, kAuto's choice
// between them) under adversarial interleavings, checked against a shadow of
// the mirror's two images that is computed only from what the test did (bus writes, kernel edits, track,
// writeback, sync), per the contract in mirror.h:
//   delta path:  every non-echo bus delta since the last sync writes its
//                ranges into live (and synced when the page is tracked);
//   page path:   every page the bus wrote (non-echo) since the last sync is
//                shipped whole: untracked -> live = bus; tracked -> per byte
//                live = (live != synced && bus == synced) ? live : bus,
//                synced = bus;
//   resync:      live = synced = bus for every page.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <set>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "cuda_scenarios.h"

using namespace cuda_test;

namespace {

using model::Run;

struct Rig {
  struct Shadow {
    std::vector<uint8_t> live, synced;
    uint64_t version = 0;
    bool tracked = false;
  };
  struct Pending {
    mmsb::PageId page;
    std::vector<Run> runs;
    std::vector<uint8_t> bytes;
  };

  mmsb::Bus bus;
  model::Model m;
  model::Rng rng;
  std::unique_ptr<DeviceMirror> mirror;
  std::vector<Shadow> s;
  bool track_all = false;
  bool resync_requested = false;
  std::vector<Pending> pending;  // non-echo bus deltas since the last sync (bus order)
  // Called after every bus change in immediate mode (and by the test after
  // propagate() in deferred mode): applies derived changes to m and pending.
  std::function<void(mmsb::PageId)> derive;  // the page the application changed
  bool immediate = true;
  SyncPath path = SyncPath::kAuto;
  uint64_t head_at_sync = 0;    // TLog head when the mirror last packed
  uint64_t echoes_pending = 0;  // writebacks applied since the last sync
  uint64_t by_pages = 0, by_deltas = 0, resyncs = 0, merges_kept = 0;

  explicit Rig(uint64_t seed, mmsb::BusOptions bo = {}) : bus(std::move(bo)), rng(seed) {}

  void open(MirrorOptions o) {
    o.backend = Backend::kCpu;
    track_all = o.track_all;
    path = o.sync_path;
    mirror = open_mirror(bus, Backend::kCpu, o);
    s.clear();
    for (mmsb::PageId id = 0; id < m.pages.size(); ++id) {
      Shadow sh;
      sh.live = m.pages[id].bytes;
      sh.synced = track_all ? m.pages[id].bytes : std::vector<uint8_t>(m.pages[id].bytes.size(), 0);
      sh.version = m.pages[id].version;
      sh.tracked = track_all;
      s.push_back(std::move(sh));
    }
    pending.clear();
    head_at_sync = bus.tlog().head();
    check();
  }

  mmsb::PageId make(uint64_t size) { return create(bus, m, size); }

  // ---- bus ----
  void record(mmsb::PageId id, std::vector<Run> runs, std::vector<uint8_t> bytes) {
    pending.push_back(Pending{id, std::move(runs), std::move(bytes)});
  }
  void bw(mmsb::PageId id, uint64_t off, const std::vector<uint8_t>& v) {
    must(bus.write(id, off, model::to_bytes(v)));
    m.write(id, off, v);
    record(id, {Run{off, v.size()}}, v);
    if (immediate && derive) derive(id);
  }
  std::vector<uint8_t> letters(uint64_t n, int alphabet) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = alphabet > 0 ? static_cast<uint8_t>(rng.below(static_cast<uint64_t>(alphabet))) : rng.byte();
    return v;
  }
  void random_write(mmsb::PageId id, uint64_t max_run, int alphabet) {
    const uint64_t size = m.pages[id].bytes.size();
    const uint64_t len = rng.between(1, std::min(max_run, size));
    const uint64_t off = rng.below(size - len + 1);
    bw(id, off, letters(len, alphabet));
  }
  // Pages the bus has whose write may be triggered by derive: the test says
  // which pages are free for random writes.
  void random_writes(int n, uint64_t max_run, int alphabet, const std::vector<mmsb::PageId>& ids) {
    for (int i = 0; i < n; ++i) random_write(ids[rng.below(ids.size())], max_run, alphabet);
  }

  // ---- device ----
  void kernel(mmsb::PageId id, uint64_t off, const std::vector<uint8_t>& v) {
    REQUIRE(id < s.size());
    must(mirror->write_page(id, off, model::to_bytes(v)));
    std::copy(v.begin(), v.end(), s[id].live.begin() + static_cast<std::ptrdiff_t>(off));
  }
  void random_kernel(mmsb::PageId id, int runs, uint64_t max_run, int alphabet) {
    for (int r = 0; r < runs; ++r) {
      const uint64_t size = s[id].live.size();
      const uint64_t len = rng.between(1, std::min(max_run, size));
      const uint64_t off = rng.below(size - len + 1);
      kernel(id, off, letters(len, alphabet));
    }
  }
  void track(mmsb::PageId id) {
    must(mirror->track(id));
    if (!s[id].tracked) {
      s[id].synced = s[id].live;
      s[id].tracked = true;
    }
  }
  void do_track_all() {
    must(mirror->track_all());
    for (Shadow& sh : s)
      if (!sh.tracked) {
        sh.synced = sh.live;
        sh.tracked = true;
      }
    track_all = true;
  }
  // Puts untracked pages' kernel changes back as the bus has them.
  void repair_untracked() {
    for (mmsb::PageId id = 0; id < s.size(); ++id) {
      if (s[id].tracked || s[id].live == m.pages[id].bytes) continue;
      kernel(id, 0, m.pages[id].bytes);
    }
  }

  // writeback of `ids` (sorted, tracked). Returns the first refusal code.
  mmsb::Code writeback(const std::vector<mmsb::PageId>& ids) {
    uint64_t applied = 0, refused = 0, changed = 0;
    mmsb::Code first = mmsb::Code::kOk;
    // Expected, computed before the call (in id order, as the bus sees them).
    struct Exp {
      mmsb::PageId id;
      std::vector<Run> runs;
      std::vector<uint8_t> bytes;
    };
    std::vector<Exp> want;
    for (mmsb::PageId id : ids) {
      REQUIRE(s[id].tracked);
      std::vector<Run> runs = model::diff_runs(s[id].synced, s[id].live);
      if (runs.empty()) continue;
      want.push_back(Exp{id, runs, model::gather(s[id].live, runs)});
    }
    mmsb::cuda::WritebackStats st;
    const mmsb::Status got = mirror->writeback(ids, &st);
    for (const Exp& e : want) {
      ++changed;
      if (s[e.id].version != m.pages[e.id].version) {
        ++refused;
        if (first == mmsb::Code::kOk) first = mmsb::Code::kConflict;
        continue;
      }
      m.apply(e.id, e.runs, e.bytes);  // an echo: not pending
      size_t k = 0;
      for (const Run& r : e.runs)
        for (uint64_t i = 0; i < r.length; ++i) s[e.id].synced[r.offset + i] = e.bytes[k++];
      s[e.id].version = m.pages[e.id].version;
      ++applied;
      ++echoes_pending;
      if (immediate && derive) derive(e.id);
    }
    INFO(got.to_string());
    REQUIRE(st.changed == changed);
    REQUIRE(st.applied == applied);
    REQUIRE(st.refused == refused);
    REQUIRE(got.code() == first);
    for (mmsb::PageId id = 0; id < m.pages.size(); ++id) {
      INFO("bus page " << id);
      REQUIRE(model::same(bus.page_bytes(id), m.pages[id].bytes));
    }
    return first;
  }
  mmsb::Code writeback_all() {
    std::vector<mmsb::PageId> ids;
    for (mmsb::PageId id = 0; id < s.size(); ++id)
      if (s[id].tracked) ids.push_back(id);
    return writeback(ids);
  }

  void request_resync() {
    mirror->request_resync();
    resync_requested = true;
  }

  // ---- sync ----
  // Applies to the shadow what the sync did, as the stats say it chose.
  // What the sync must have chosen, from the TLog span (engine fact) and the
  // pages the bus wrote (model fact).
  void check_decision(const mmsb::cuda::SyncStats& st, uint64_t span, uint64_t echoes_before) {
    std::set<mmsb::PageId> written;
    for (const Pending& p : pending) written.insert(p.page);
    uint64_t changed = 0;
    for (mmsb::PageId id : written) changed += m.pages[id].bytes.size();
    const uint64_t cap = bus.tlog().capacity();
    INFO("span " << span << " pages " << m.pages.size() << " changed bytes " << changed << " resync asked "
                 << resync_requested);
    if (resync_requested) {
      REQUIRE(st.resynced);
      return;
    }
    if (span > cap) {  // lagged
      REQUIRE(st.resynced == (path == SyncPath::kDeltas));
      REQUIRE(st.by_pages == (path != SyncPath::kDeltas));
    } else if (span + (64 << 10) < cap) {  // surely not lagged
      REQUIRE_FALSE(st.resynced);
      bool pages = path == SyncPath::kPages;
      if (path == SyncPath::kAuto)
        pages = span >= (256 << 10) && span >= 32 * m.pages.size() && changed <= span;
      if (span > 0) REQUIRE(st.by_pages == pages);
    }
    if (!st.resynced) REQUIRE(mirror->stats().echoes == echoes_before + echoes_pending);
  }

  void model_sync(const mmsb::cuda::SyncStats& st, uint64_t n) {
    for (mmsb::PageId id = static_cast<mmsb::PageId>(s.size()); id < m.pages.size(); ++id) {
      Shadow sh;
      sh.live.assign(m.pages[id].bytes.size(), 0);
      sh.synced.assign(m.pages[id].bytes.size(), 0);
      sh.tracked = track_all;
      s.push_back(std::move(sh));
    }
    if (st.resynced) {
      ++resyncs;
      REQUIRE(n == 0);
      for (mmsb::PageId id = 0; id < s.size(); ++id) {
        s[id].live = m.pages[id].bytes;
        s[id].synced = m.pages[id].bytes;
      }
    } else if (st.by_pages) {
      ++by_pages;
      REQUIRE(n == pending.size());
      std::set<mmsb::PageId> written;
      for (const Pending& p : pending) written.insert(p.page);
      REQUIRE(st.pages == written.size());
      uint64_t bytes = 0;
      for (mmsb::PageId id : written) {
        Shadow& sh = s[id];
        const std::vector<uint8_t>& b = m.pages[id].bytes;
        bytes += b.size();
        if (!sh.tracked) {
          sh.live = b;
          continue;
        }
        std::vector<uint8_t> rewritten(b.size(), 0);  // bytes a pending delta wrote
        for (const Pending& pd : pending)
          if (pd.page == id)
            for (const Run& run : pd.runs)
              for (uint64_t i = 0; i < run.length; ++i) rewritten[run.offset + i] = 1;
        for (size_t k = 0; k < b.size(); ++k) {
          const bool keep = sh.live[k] != sh.synced[k] && b[k] == sh.synced[k];
          if (keep && rewritten[k]) ++merges_kept;
          if (!keep) sh.live[k] = b[k];
          sh.synced[k] = b[k];
        }
      }
      REQUIRE(st.bytes == bytes);
    } else {
      ++by_deltas;
      REQUIRE(n == pending.size());
      uint64_t bytes = 0;
      for (const Pending& p : pending) {
        Shadow& sh = s[p.page];
        size_t k = 0;
        for (const Run& r : p.runs)
          for (uint64_t i = 0; i < r.length; ++i, ++k) {
            sh.live[r.offset + i] = p.bytes[k];
            if (sh.tracked) sh.synced[r.offset + i] = p.bytes[k];
          }
        bytes += p.bytes.size();
      }
      REQUIRE(st.bytes == bytes);
    }
    for (mmsb::PageId id = 0; id < s.size(); ++id) s[id].version = m.pages[id].version;
    pending.clear();
    resync_requested = false;
    echoes_pending = 0;
    head_at_sync = bus.tlog().head();
  }

  // The harness's own check: the model holds the bus's bytes and versions.
  void check_model() {
    for (mmsb::PageId id = 0; id < m.pages.size(); ++id) {
      INFO("model page " << id);
      REQUIRE(bus.info(id)->version == m.pages[id].version);
      REQUIRE(model::same(bus.page_bytes(id), m.pages[id].bytes));
    }
    REQUIRE(bus.epoch() == m.epoch);
  }

  // Runs `start` (the mirror's sync() or sync_async()) and applies to the
  // shadow what it packed.
  void packed_by(const std::function<mmsb::Result<uint64_t>()>& start) {
    check_model();
    const uint64_t span = bus.tlog().head() - head_at_sync, echoes = mirror->stats().echoes;
    auto n = start();
    INFO(n.status().to_string());
    REQUIRE(n.ok());
    const mmsb::cuda::SyncStats st = mirror->stats().last_sync;
    check_decision(st, span, echoes);
    model_sync(st, *n);
  }

  void sync() {
    packed_by([this] { return mirror->sync(); });
    check();
  }

  // sync_async(), then `between` (bus writes that belong to the next batch),
  // then wait().
  void sync_async(const std::function<void()>& between) {
    const uint64_t epoch = m.epoch;
    packed_by([this] { return mirror->sync_async(); });
    between();
    must(mirror->wait());
    REQUIRE(mirror->synced_epoch() == epoch);
    check_images();
  }

  void check_images() {
    REQUIRE(mirror->page_count() == s.size());
    std::vector<std::byte> got;
    std::vector<mmsb::PageId> tracked;
    for (mmsb::PageId id = 0; id < s.size(); ++id) {
      must(mirror->read_page(id, &got));
      INFO("page " << id << (s[id].tracked ? " (tracked)" : "") << " size " << s[id].live.size() << ": "
                   << model::describe_mismatch(got, s[id].live));
      REQUIRE(model::same(got, s[id].live));
      REQUIRE(mirror->page_version(id) == s[id].version);
      REQUIRE(mirror->tracked(id) == s[id].tracked);
      if (s[id].tracked) tracked.push_back(id);
    }
    // The synced images, through diff(): live vs synced runs.
    mmsb::cuda::DiffResult dr;
    must(mirror->diff(tracked, &dr));
    size_t k = 0;
    for (mmsb::PageId id : tracked) {
      const std::vector<Run> want = model::diff_runs(s[id].synced, s[id].live);
      if (want.empty()) continue;
      INFO("diff of page " << id);
      REQUIRE(k < dr.pages.size());
      const mmsb::DeltaView d = dr.delta(k++);
      REQUIRE(d.page == id);
      REQUIRE(d.base_version == s[id].version);
      REQUIRE(model::to_runs(d.ranges) == want);
      REQUIRE(model::to_u8(d.bytes) == model::gather(s[id].live, want));
    }
    REQUIRE(k == dr.pages.size());
  }

  void check() {
    REQUIRE(mirror->synced_epoch() == m.epoch);
    check_images();
    bool coherent = true;
    for (mmsb::PageId id = 0; id < s.size(); ++id) {
      const std::vector<uint8_t>& mine = s[id].tracked ? s[id].synced : s[id].live;
      if (mine != m.pages[id].bytes || s[id].version != m.pages[id].version) coherent = false;
    }
    const mmsb::Status c = mirror->check_coherence();
    INFO(c.to_string());
    REQUIRE(c.ok() == coherent);
    if (!coherent) REQUIRE(c.code() == mmsb::Code::kCorruption);
  }

  std::vector<mmsb::PageId> all_ids() const {
    std::vector<mmsb::PageId> v;
    for (mmsb::PageId id = 0; id < m.pages.size(); ++id) v.push_back(id);
    return v;
  }
};

}  // namespace

// kAuto switches between the page path and the delta path from one sync to
// the next; kernels edit tracked and untracked pages, pages appear, track()
// and track_all() come between syncs, writebacks before and after bus
// writes (some refused).
TEST_CASE("sync paths: kAuto alternates deltas and pages with device edits in between", "[cuda][mirror]") {
  const uint64_t seed = 101;
  const SyncPath path = GENERATE(SyncPath::kAuto, SyncPath::kPages, SyncPath::kDeltas);
  const unsigned threads = GENERATE(1u, 3u);
  Rig r(seed, ring(size_t{16} << 20));
  const uint64_t sizes[] = {1, 2, 15, 16, 17, 31, 255, 256, 257, 4095, 4096, 4097, 5000, 8191, 12289, 70001};
  for (uint64_t sz : sizes) r.make(sz);
  for (int i = 0; i < 10; ++i) r.make(r.rng.between(1, 6000));
  r.open(MirrorOptions{.pack_threads = threads, .sync_path = path});
  for (mmsb::PageId id = 0; id < r.s.size(); id += 2) r.track(id);
  for (int round = 0; round < 24; ++round) {
    INFO("round " << round);
    if (r.rng.chance(30)) r.make(r.rng.chance(50) ? r.rng.between(1, 40) : r.rng.between(1, 9000));
    if (round == 12) r.do_track_all();
    if (r.rng.chance(30)) r.track(static_cast<mmsb::PageId>(r.rng.below(r.s.size())));
    const int alphabet = r.rng.chance(50) ? 3 : 0;
    for (mmsb::PageId id = 0; id < r.s.size(); ++id)
      if (r.rng.chance(40)) r.random_kernel(id, static_cast<int>(r.rng.between(1, 3)), 200, alphabet);
    if (r.rng.chance(30)) r.writeback_all();
    const bool heavy = r.rng.chance(50);
    r.random_writes(heavy ? 3500 : static_cast<int>(r.rng.between(1, 40)), 64, alphabet, r.all_ids());
    if (r.rng.chance(40)) r.writeback_all();  // some refused (the bus wrote them)
    for (mmsb::PageId id = 0; id < r.s.size(); ++id)
      if (r.rng.chance(20)) r.random_kernel(id, 1, 50, alphabet);
    if (r.rng.chance(20)) r.random_writes(static_cast<int>(r.rng.between(1, 10)), 64, alphabet, r.all_ids());
    r.sync();
    if (r.rng.chance(30)) r.repair_untracked();
  }
  INFO("by pages " << r.by_pages << ", by deltas " << r.by_deltas << ", kept by merge " << r.merges_kept);
  if (path == SyncPath::kAuto) {
    REQUIRE(r.by_pages > 0);
    REQUIRE(r.by_deltas > 0);
  }
  // The merge's one difference from the delta path (a byte the bus left at
  // its synced value keeps the device's change) happened.
  if (path != SyncPath::kDeltas) REQUIRE(r.merges_kept > 0);
  REQUIRE(r.resyncs == 0);
}

// Dependencies: a writeback's propagation moves a tracked dependent's
// version (its own writeback then conflicts); derived deltas count as
// deltas; deferred mode coalesces. B = 8-byte sum of A; C = A's first 300
// bytes reversed, written twice per update (version +2 per fire).
TEST_CASE("sync paths: propagation across writeback and sync, both modes, every path", "[cuda][mirror]") {
  const bool immediate = GENERATE(true, false);
  const SyncPath path = GENERATE(SyncPath::kAuto, SyncPath::kPages, SyncPath::kDeltas);
  mmsb::BusOptions bo;
  bo.propagation = immediate ? mmsb::Propagation::kImmediate : mmsb::Propagation::kDeferred;
  Rig r(7 + immediate, std::move(bo));
  r.immediate = immediate;
  const mmsb::PageId a = r.make(5000), b = r.make(8), c = r.make(300), d = r.make(4100);
  must(r.bus.add_dependency(a, b, [](mmsb::UpdateContext& ctx) {
    uint64_t sum = 0;
    for (std::byte x : ctx.source_bytes()) sum += static_cast<uint8_t>(x);
    return ctx.assign(std::as_bytes(std::span(&sum, 1)));
  }));
  must(r.bus.add_dependency(a, c, [](mmsb::UpdateContext& ctx) {
    std::vector<std::byte> v(300);
    for (size_t i = 0; i < 300; ++i) v[i] = ctx.source_bytes()[299 - i];
    std::vector<std::byte> first(v.begin(), v.begin() + 150), second(v.begin() + 150, v.end());
    if (mmsb::Status s = ctx.write(0, first); !s.ok()) return s;
    return ctx.write(150, second);
  }));
  // Independent derivation: from the model's A.
  r.derive = [&r, a, b, c](mmsb::PageId changed) {
    if (changed != a) return;
    const std::vector<uint8_t>& A = r.m.pages[a].bytes;
    uint64_t sum = 0;
    for (uint8_t x : A) sum += x;
    std::vector<uint8_t> nb(8);
    for (int i = 0; i < 8; ++i) nb[i] = static_cast<uint8_t>(sum >> (8 * i));
    const std::vector<Run> runs = model::diff_runs(r.m.pages[b].bytes, nb);
    if (!runs.empty()) {
      r.m.apply(b, runs, model::gather(nb, runs));
      r.record(b, runs, model::gather(nb, runs));
    }
    std::vector<uint8_t> nc(300);
    for (size_t i = 0; i < 300; ++i) nc[i] = A[299 - i];
    std::vector<uint8_t> c1(nc.begin(), nc.begin() + 150), c2(nc.begin() + 150, nc.end());
    r.m.write(c, 0, c1);
    r.record(c, {Run{0, 150}}, c1);
    r.m.write(c, 150, c2);
    r.record(c, {Run{150, 150}}, c2);
  };
  r.open(MirrorOptions{.track_all = true, .sync_path = path});
  uint64_t a_at_propagate = r.m.pages[a].version;
  auto propagate = [&] {
    if (immediate) return;
    must(r.bus.propagate());
    if (r.m.pages[a].version != a_at_propagate) r.derive(a);  // A changed since: one pass
    a_at_propagate = r.m.pages[a].version;
  };
  for (int round = 0; round < 4; ++round) {
    INFO("round " << round);
    // Kernels change A, B and C and D; writeback: A's propagation makes B's
    // and C's writebacks conflict in immediate mode.
    r.random_kernel(a, 3, 300, 0);
    r.random_kernel(b, 1, 4, 0);
    r.random_kernel(c, 1, 20, 0);
    r.random_kernel(d, 2, 100, 3);
    r.writeback_all();
    propagate();
    // The bus writes A (more derived deltas) and D.
    const int n = round % 2 == 0 ? 2000 : 10;
    for (int i = 0; i < n; ++i) r.random_write(r.rng.chance(50) ? a : d, 64, 3);
    if (round % 3 == 1) propagate();
    r.random_kernel(b, 1, 8, 0);
    r.sync();
    propagate();
    r.sync();
    // What survived in B/C/D goes back (maybe refused again); then sync.
    r.writeback_all();
    propagate();
    r.sync();
  }
}

// A lagging mirror with device changes on tracked pages: kAuto/kPages ship
// the changed pages merged (the changes survive), kDeltas resyncs (they are
// dropped). Writebacks before the lag are echoes; a ring overrun by
// writebacks alone ships nothing.
TEST_CASE("sync paths: a lag with device changes and echoes", "[cuda][mirror]") {
  const SyncPath path = GENERATE(SyncPath::kAuto, SyncPath::kPages, SyncPath::kDeltas);
  Rig r(55, ring(64 << 10));
  for (int p = 0; p < 8; ++p) r.make(1000 + 611 * p);
  r.open(MirrorOptions{.sync_path = path});
  for (mmsb::PageId id = 0; id < 5; ++id) r.track(id);
  for (int round = 0; round < 4; ++round) {
    INFO("round " << round);
    for (mmsb::PageId id = 0; id < 8; ++id) r.random_kernel(id, 2, 100, 3);
    r.writeback(std::vector<mmsb::PageId>{0, 1});
    for (mmsb::PageId id = 0; id < 3; ++id) r.random_kernel(id, 2, 100, 3);
    if (round == 2) r.make(777);
    for (int i = 0; i < 1200; ++i)
      r.random_write(static_cast<mmsb::PageId>(r.rng.between(1, r.m.pages.size() - 1)), 120, 3);
    r.sync();
    const mmsb::cuda::SyncStats st = r.mirror->stats().last_sync;
    REQUIRE(st.resynced == (path == SyncPath::kDeltas));
    REQUIRE(st.by_pages == (path != SyncPath::kDeltas));
    r.repair_untracked();
  }
  // A ring overrun by the mirror's own writebacks: the versions did not
  // move past the mirror's, nothing to ship.
  for (int i = 0; i < 1000; ++i) {
    r.random_kernel(0, 1, 200, 0);
    r.writeback(std::vector<mmsb::PageId>{0});
  }
  r.random_kernel(0, 2, 50, 0);  // after the last writeback: survives
  r.sync();
  REQUIRE(r.mirror->stats().last_sync.resynced == (path == SyncPath::kDeltas));
}

// Many pages, most tracked, packed on several threads by pages.
TEST_CASE("sync paths: the page path on several threads, many small pages", "[cuda][mirror][threads]") {
  const SyncPath path = GENERATE(SyncPath::kPages, SyncPath::kAuto);
  Rig r(77, ring(size_t{32} << 20));
  for (int p = 0; p < 600; ++p) r.make(r.rng.chance(20) ? r.rng.between(4000, 20000) : r.rng.between(1, 700));
  r.open(MirrorOptions{.track_all = true, .pack_threads = 4, .sync_path = path});
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    for (mmsb::PageId id = 0; id < r.s.size(); ++id)
      if (r.rng.chance(30)) r.random_kernel(id, 2, 64, 3);
    for (int k = 0; k < 20; ++k) r.make(r.rng.between(1, 5000));
    r.random_writes(12000, 64, 3, r.all_ids());
    r.sync();
    if (path == SyncPath::kPages) REQUIRE(r.mirror->stats().last_sync.pack_threads > 1);
    r.writeback_all();
    r.sync();
  }
}

// sync_async(): bus writes and kernel edits and track() between the
// queueing and wait(); verify on; request_resync mid-way.
TEST_CASE("sync paths: sync_async, verify and request_resync on the page path", "[cuda][mirror]") {
  const SyncPath path = GENERATE(SyncPath::kAuto, SyncPath::kPages);
  Rig r(91, ring(size_t{16} << 20));
  for (int p = 0; p < 30; ++p) r.make(r.rng.between(1, 6000));
  r.open(MirrorOptions{.verify = true, .sync_path = path});
  for (mmsb::PageId id = 0; id < 30; id += 3) r.track(id);
  for (int round = 0; round < 10; ++round) {
    INFO("round " << round);
    for (mmsb::PageId id = 0; id < r.s.size(); ++id)
      if (r.s[id].tracked && r.rng.chance(50)) r.random_kernel(id, 2, 100, 3);
    r.random_writes(round % 2 ? 20 : 4000, 64, 3, r.all_ids());
    if (round == 5) r.request_resync();
    r.sync_async([&] {
      r.random_writes(50, 64, 3, r.all_ids());
      if (r.rng.chance(50)) r.track(static_cast<mmsb::PageId>(r.rng.below(r.s.size())));
      if (r.rng.chance(50)) r.writeback_all();  // waits for the batch first
    });
    r.writeback_all();
    r.sync();
  }
}

// Return value and page_version(): one page written many times in one batch,
// a writeback, more writes, each counted once; echoes excluded.
TEST_CASE("sync paths: sync() counts deltas from versions, echoes excluded", "[cuda][mirror]") {
  const SyncPath path = GENERATE(SyncPath::kAuto, SyncPath::kPages, SyncPath::kDeltas);
  Rig r(3, ring(size_t{16} << 20));
  const mmsb::PageId a = r.make(4096), b = r.make(1);
  r.open(MirrorOptions{.sync_path = path});
  r.track(a);
  r.track(b);
  for (int round = 0; round < 4; ++round) {
    r.random_kernel(a, 3, 40, 0);
    r.kernel(b, 0, {static_cast<uint8_t>(round + 1)});
    r.writeback_all();
    for (int i = 0; i < 5000; ++i) r.random_write(a, 64, 0);
    r.bw(b, 0, {static_cast<uint8_t>(round + 1)});  // the value the device wrote back: v == synced
    r.kernel(b, 0, {static_cast<uint8_t>(round + 100)});
    r.sync();
  }
}

// Another thread writes the bus (and creates pages) while the mirror syncs:
// after each sync the mirror holds exactly the bus's state at its synced
// epoch, rebuilt from the deltas the bus reported (in epoch order).
TEST_CASE("sync paths: the page path while another thread writes the bus", "[cuda][mirror][threads]") {
  const SyncPath path = GENERATE(SyncPath::kAuto, SyncPath::kPages);
  mmsb::Bus bus(ring(size_t{8} << 20));
  model::Model m;  // the rebuilt state
  std::mutex mu;
  std::vector<model::Record> log;  // creations and deltas, in bus order
  auto sub = bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied) | mmsb::mask_of(mmsb::EventKind::kPageCreated),
                           [&](const mmsb::Event& e) {
                             model::Record r;
                             if (e.kind == mmsb::EventKind::kPageCreated) {
                               r.kind = mmsb::RecordKind::kPageCreated;
                               r.page = e.page;
                               r.size = bus.page_bytes(e.page).size();
                             } else {
                               r.kind = mmsb::RecordKind::kDelta;
                               r.page = e.delta->page;
                               r.epoch = e.delta->epoch;
                               r.runs = model::to_runs(e.delta->ranges);
                               r.bytes = model::to_u8(e.delta->bytes);
                             }
                             std::lock_guard<std::mutex> lk(mu);
                             log.push_back(std::move(r));
                           });
  REQUIRE(sub.ok());
  for (int p = 0; p < 16; ++p) REQUIRE(bus.create_page(1000 + 300 * p).ok());
  auto mirror = open_mirror(bus, Backend::kCpu, MirrorOptions{.track_all = true, .pack_threads = 2, .sync_path = path});
  std::atomic<bool> finished{false};
  std::thread writer([&] {
    model::Rng rng(4242);
    for (int i = 0; i < 60000; ++i) {
      if (i % 300 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
      if (i % 5000 == 4999) (void)bus.create_page(rng.between(1, 5000));
      const auto id = static_cast<mmsb::PageId>(rng.below(bus.page_count()));
      const uint64_t size = bus.page_bytes(id).size();
      const uint64_t len = rng.between(1, std::min<uint64_t>(64, size));
      const uint64_t off = rng.below(size - len + 1);
      std::vector<uint8_t> v(len);
      for (auto& b : v) b = static_cast<uint8_t>(rng.below(3));
      (void)bus.write(id, off, model::to_bytes(v));
    }
    finished = true;
  });
  size_t applied = 0;  // log entries applied to m
  uint64_t syncs = 0, pages_syncs = 0;
  for (;;) {
    const bool last = finished.load();
    auto n = mirror->sync();
    INFO(n.status().to_string());
    REQUIRE(n.ok());
    ++syncs;
    if (mirror->stats().last_sync.by_pages) ++pages_syncs;
    const uint64_t epoch = mirror->synced_epoch();
    const uint32_t count = mirror->page_count();
    {
      std::lock_guard<std::mutex> lk(mu);
      while (applied < log.size()) {
        const model::Record& r = log[applied];
        if (r.kind == mmsb::RecordKind::kDelta && r.epoch > epoch) break;
        if (r.kind == mmsb::RecordKind::kPageCreated && r.page >= count) break;
        if (r.kind == mmsb::RecordKind::kPageCreated) {
          REQUIRE(m.create(r.size) == r.page);
        } else {
          model::apply_record(m, r);
        }
        ++applied;
      }
    }
    REQUIRE(m.epoch == epoch);
    REQUIRE(m.pages.size() == count);
    std::vector<std::byte> got;
    for (mmsb::PageId id = 0; id < count; ++id) {
      must(mirror->read_page(id, &got));
      INFO("sync " << syncs << " page " << id << ": " << model::describe_mismatch(got, m.pages[id].bytes));
      REQUIRE(model::same(got, m.pages[id].bytes));
      REQUIRE(mirror->page_version(id) == m.pages[id].version);
    }
    if (last) break;
    std::this_thread::sleep_for(std::chrono::microseconds(syncs % 3 == 0 ? 5000 : 200));
  }
  writer.join();
  REQUIRE(mirror->sync().ok());
  must(mirror->check_coherence());
  INFO("syncs " << syncs << ", by pages " << pages_syncs);
  if (path == SyncPath::kPages) REQUIRE(pages_syncs > 0);
}

// Documented misuse (track() after a kernel changed the page), pinned down:
// the kernel's byte became part of the synced image. The delta path leaves
// it there (incoherent until request_resync()); the page path overwrites it
// with the bus's value as soon as the bus changes any other byte of the page
// (the synced image is replaced whole), so the device change is lost and the
// page is coherent again.
TEST_CASE("sync paths: track() after a kernel change, delta path vs page path", "[cuda][mirror]") {
  const SyncPath path = GENERATE(SyncPath::kDeltas, SyncPath::kPages);
  Rig r(5);
  const mmsb::PageId p = r.make(100);
  r.open(MirrorOptions{.sync_path = path});
  r.kernel(p, 10, {7});
  r.track(p);  // too late: 7 is now "synced"
  r.bw(p, 50, {1});
  r.sync();  // the shadow predicts both outcomes; check it explicitly too
  std::vector<std::byte> got;
  must(r.mirror->read_page(p, &got));
  REQUIRE(static_cast<uint8_t>(got[10]) == (path == SyncPath::kPages ? 0 : 7));
  REQUIRE(r.mirror->check_coherence().ok() == (path == SyncPath::kPages));
}

// MirrorStats::echoes across a lag: counted on the page path, not when
// kDeltas resyncs (resync_locked drops echoes_ uncounted).
TEST_CASE("sync paths: echoes counted across a lag, per path", "[cuda][mirror]") {
  const SyncPath path = GENERATE(SyncPath::kDeltas, SyncPath::kPages);
  Rig r(6, ring(64 << 10));
  const mmsb::PageId p = r.make(4000), q = r.make(4000);
  r.open(MirrorOptions{.track_all = true, .sync_path = path});
  r.kernel(p, 0, {9, 9, 9});
  REQUIRE(r.writeback(std::vector<mmsb::PageId>{p}) == mmsb::Code::kOk);
  for (int i = 0; i < 2000; ++i) r.random_write(q, 64, 0);  // overruns the ring
  const uint64_t before = r.mirror->stats().echoes;
  r.sync();
  const mmsb::cuda::SyncStats st = r.mirror->stats().last_sync;
  REQUIRE(st.resynced == (path == SyncPath::kDeltas));
  INFO("echoes counted: " << r.mirror->stats().echoes - before);
  CHECK(r.mirror->stats().echoes - before == (path == SyncPath::kDeltas ? 0u : 1u));
}

// A mirror opened on an empty bus (no image, no synced image yet) with
// track_all (the option, or the call), pages created afterwards, kernel
// edits and bus writes merged by the page path.
TEST_CASE("sync paths: track_all on an empty bus, then pages", "[cuda][mirror]") {
  const SyncPath path = GENERATE(SyncPath::kPages, SyncPath::kAuto);
  const bool by_option = GENERATE(true, false);
  Rig r(8, ring(size_t{4} << 20));
  r.open(MirrorOptions{.track_all = by_option, .sync_path = path});
  if (!by_option) r.do_track_all();
  for (int round = 0; round < 6; ++round) {
    for (int k = 0; k < 3; ++k) r.make(r.rng.between(1, 20000));
    r.sync();  // the new pages: zero, tracked
    for (mmsb::PageId id = 0; id < r.s.size(); ++id) r.random_kernel(id, 2, 300, 3);
    r.random_writes(round % 2 ? 50 : 5000, 64, 3, r.all_ids());
    r.sync();
    r.writeback_all();
    r.sync();
  }
}
