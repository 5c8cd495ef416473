// Scenarios for the device mirror, run on the CPU path by test_cuda_mirror.cc
// (everywhere) and on a CUDA device by test_cuda_gpu.cc. Each checks the
// mirror against the plain byte-array model of engine_model.h -- never
// against the mirror's own output.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine_model.h"
#include "mmsb/cuda/mirror.h"
#include "mmsb/mmsb.h"

namespace cuda_test {

using mmsb::cuda::Backend;
using mmsb::cuda::DeviceMirror;
using mmsb::cuda::MirrorOptions;
using mmsb::cuda::SyncPath;

inline MirrorOptions with_path(SyncPath path, MirrorOptions o = {}) {
  o.sync_path = path;
  return o;
}

inline std::unique_ptr<DeviceMirror> open_mirror(mmsb::Bus& bus, Backend backend, MirrorOptions o = {}) {
  o.backend = backend;
  auto r = DeviceMirror::open(bus, o);
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  if (backend == Backend::kCuda) REQUIRE(r.value()->on_gpu());
  if (backend == Backend::kCpu) REQUIRE_FALSE(r.value()->on_gpu());
  return std::move(r).value();
}

inline mmsb::BusOptions ring(size_t tlog_capacity) {
  mmsb::BusOptions o;
  o.tlog_capacity = tlog_capacity;
  return o;
}

inline void must(const mmsb::Status& s) {
  INFO(s.to_string());
  REQUIRE(s.ok());
}

inline mmsb::PageId create(mmsb::Bus& bus, model::Model& m, uint64_t size) {
  auto id = bus.create_page(size);
  INFO(id.status().to_string());
  REQUIRE(id.ok());
  REQUIRE(*id == m.create(size));
  return *id;
}

// The mirror's live image of every page equals the model, and its versions
// and epoch the model's; then check_coherence() agrees.
inline void require_matches(DeviceMirror& mirror, const model::Model& m, const mmsb::Bus& bus) {
  REQUIRE(mirror.page_count() == m.pages.size());
  REQUIRE(mirror.synced_epoch() == m.epoch);
  REQUIRE(bus.epoch() == m.epoch);
  std::vector<std::byte> got;
  for (mmsb::PageId id = 0; id < m.pages.size(); ++id) {
    must(mirror.read_page(id, &got));
    INFO("page " << id << ": " << model::describe_mismatch(got, m.pages[id].bytes));
    REQUIRE(model::same(got, m.pages[id].bytes));
    REQUIRE(mirror.page_version(id) == m.pages[id].version);
  }
  must(mirror.check_coherence());
}

// One random delta on the bus and the model: a single run (write) or
// several runs from a byte mask (apply).
inline void random_delta(mmsb::Bus& bus, model::Model& m, model::Rng& rng, uint64_t max_run) {
  const auto id = static_cast<mmsb::PageId>(rng.below(m.pages.size()));
  const uint64_t size = m.pages[id].bytes.size();
  if (size == 0) return;
  if (rng.chance(80)) {
    const uint64_t len = rng.between(1, std::min(max_run, size));
    const uint64_t off = rng.below(size - len + 1);
    const std::vector<uint8_t> v = rng.bytes(len);
    must(bus.write(id, off, model::to_bytes(v)));
    m.write(id, off, v);
  } else {
    std::vector<uint8_t> mask(size, 0), image = m.pages[id].bytes;
    const int runs = static_cast<int>(rng.between(1, 6));
    for (int r = 0; r < runs; ++r) {
      const uint64_t len = rng.between(1, std::min(max_run, size));
      const uint64_t off = rng.below(size - len + 1);
      for (uint64_t i = off; i < off + len; ++i) {
        mask[i] = 1;
        image[i] = rng.byte();
      }
    }
    const mmsb::Version v = m.pages[id].version;
    auto d = mmsb::Delta::from_mask(id, v, mask, model::to_bytes(image));
    REQUIRE(d.ok());
    if (d->empty()) return;
    must(bus.apply(d->view()));
    m.apply_mask(id, mask, image);
  }
}

// Batches of random deltas over pages whose sizes are not multiples of 16;
// after every sync the mirror equals the model.
inline void scenario_sync_random(Backend backend, uint64_t seed, uint32_t pages, uint64_t max_size,
                                 uint64_t max_run, int batches, int deltas_per_batch,
                                 size_t tlog_capacity = size_t{16} << 20, MirrorOptions options = {}) {
  mmsb::Bus bus(ring(tlog_capacity));
  model::Model m;
  model::Rng rng(seed);
  for (uint32_t p = 0; p < pages; ++p) create(bus, m, rng.between(1, max_size));
  auto mirror = open_mirror(bus, backend, options);
  require_matches(*mirror, m, bus);
  for (int b = 0; b < batches; ++b) {
    if (rng.chance(30)) create(bus, m, rng.between(1, max_size));  // pages appear mid-stream
    for (int i = 0; i < deltas_per_batch; ++i) random_delta(bus, m, rng, max_run);
    const uint64_t deltas = m.epoch - mirror->synced_epoch();
    auto n = mirror->sync();
    INFO("batch " << b << ": " << n.status().to_string());
    REQUIRE(n.ok());
    REQUIRE(*n == deltas);
    if (deltas > 0 && options.sync_path != SyncPath::kAuto)
      REQUIRE(mirror->stats().last_sync.by_pages == (options.sync_path == SyncPath::kPages));
    if (options.pack_threads > 1 && deltas_per_batch >= 8000) {  // long enough to read on several threads
      REQUIRE(mirror->stats().last_sync.pack_threads > 1);
      REQUIRE(mirror->stats().last_sync.pack_threads <= options.pack_threads);
    }
    require_matches(*mirror, m, bus);
  }
  REQUIRE(mirror->resyncs() == 0);
}

// A ring too small for what happens between syncs: the mirror lags and
// still equals the model. Asked for deltas, it copies the whole state again;
// else it ships the pages whose version moved (the records are gone, the
// versions are not), leaving an unchanged page alone.
inline void scenario_lag_resync(Backend backend, SyncPath path) {
  mmsb::Bus bus(ring(64 << 10));
  model::Model m;
  model::Rng rng(7);
  for (int p = 0; p < 5; ++p) create(bus, m, 3000 + 17 * p);
  auto mirror = open_mirror(bus, backend, with_path(path));
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 400; ++i) random_delta(bus, m, rng, 700);  // ~150 KB of records > the ring
    const mmsb::PageId fresh = create(bus, m, 1000 + round);
    const uint64_t deltas = m.epoch - mirror->synced_epoch();
    auto n = mirror->sync();
    REQUIRE(n.ok());
    REQUIRE(*n == (path == SyncPath::kDeltas ? 0 : deltas));  // a resync applies no deltas
    require_matches(*mirror, m, bus);
    const mmsb::cuda::SyncStats& st = mirror->stats().last_sync;
    REQUIRE(st.resynced == (path == SyncPath::kDeltas));
    REQUIRE(st.by_pages == (path != SyncPath::kDeltas));
    if (path != SyncPath::kDeltas) {
      REQUIRE(st.pages == fresh);  // every older page changed; the new one has no delta yet
      uint64_t bytes = 0;
      for (mmsb::PageId id = 0; id < fresh; ++id) bytes += m.pages[id].bytes.size();
      REQUIRE(st.bytes == bytes);
    }
  }
  REQUIRE(mirror->resyncs() == (path == SyncPath::kDeltas ? 3 : 0));
  // And a normal sync afterwards.
  random_delta(bus, m, rng, 10);
  REQUIRE(mirror->sync().ok());
  require_matches(*mirror, m, bus);
  REQUIRE(mirror->resyncs() == (path == SyncPath::kDeltas ? 3 : 0));
}

// Changes a device page the way a kernel would (write_page) at random runs
// of `image`, a copy of the page as the device holds it; returns the runs.
inline std::vector<model::Run> device_edit(DeviceMirror& mirror, mmsb::PageId id, std::vector<uint8_t>& image,
                                           model::Rng& rng, int runs, uint64_t max_run) {
  std::vector<model::Run> edits;
  for (int r = 0; r < runs; ++r) {
    const uint64_t len = rng.between(1, std::min<uint64_t>(max_run, image.size()));
    const uint64_t off = rng.below(image.size() - len + 1);
    std::vector<uint8_t> v(len);
    for (auto& b : v) b = rng.byte();
    for (uint64_t i = 0; i < len; ++i) image[off + i] = v[i];
    must(mirror.write_page(id, off, model::to_bytes(v)));
    edits.push_back(model::Run{off, len});
  }
  return edits;
}

// Kernels change tracked and untracked pages, the bus writes some of the
// same pages (bytes from {0, 1, 2}, so rewriting a byte with the value it
// had is common), then a sync. What the live image holds after it, per byte
// of a page with a kernel change d, old synced value o, bus value b:
//   deltas: b where a delta wrote the byte (even with the value it had), else d;
//   pages:  a tracked page merges: d where d != o and b == o, else b; an
//           untracked page the bus changed takes b everywhere; one it left
//           alone keeps d.
// Then writeback() brings the tracked pages' surviving changes to the bus.
inline void scenario_device_changes_across_sync(Backend backend, SyncPath path, uint64_t seed) {
  mmsb::Bus bus;
  model::Model m;
  model::Rng rng(seed);
  constexpr mmsb::PageId kTracked = 6, kPages = 12;  // pages [0, 6) tracked
  for (mmsb::PageId p = 0; p < kPages; ++p) create(bus, m, rng.between(1, 9000));
  auto mirror = open_mirror(bus, backend, with_path(path));
  for (mmsb::PageId id = 0; id < kTracked; ++id) must(mirror->track(id));
  auto letters = [&](uint64_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng.below(3));
    return v;
  };
  uint64_t kept_by_merge = 0;
  for (int round = 0; round < 6; ++round) {
    std::vector<std::vector<uint8_t>> old(kPages), device(kPages), written(kPages);
    for (mmsb::PageId id = 0; id < kPages; ++id) {
      old[id] = device[id] = m.pages[id].bytes;
      written[id].assign(old[id].size(), 0);
    }
    for (mmsb::PageId id = 0; id < kPages; ++id) {  // kernels
      if (!rng.chance(70)) continue;
      for (int r = 0; r < 4; ++r) {
        const uint64_t len = rng.between(1, std::min<uint64_t>(300, device[id].size()));
        const uint64_t off = rng.below(device[id].size() - len + 1);
        const std::vector<uint8_t> v = letters(len);
        std::copy(v.begin(), v.end(), device[id].begin() + static_cast<std::ptrdiff_t>(off));
        must(mirror->write_page(id, off, model::to_bytes(v)));
      }
    }
    std::vector<bool> bus_changed(kPages, false);
    for (int i = 0; i < 60; ++i) {  // the bus
      const auto id = static_cast<mmsb::PageId>(rng.below(kPages));
      const uint64_t len = rng.between(1, std::min<uint64_t>(400, m.pages[id].bytes.size()));
      const uint64_t off = rng.below(m.pages[id].bytes.size() - len + 1);
      const std::vector<uint8_t> v = letters(len);
      must(bus.write(id, off, model::to_bytes(v)));
      m.write(id, off, v);
      for (uint64_t k = 0; k < len; ++k) written[id][off + k] = 1;
      bus_changed[id] = true;
    }
    const uint64_t deltas = m.epoch - mirror->synced_epoch();
    auto n = mirror->sync();
    INFO("round " << round << ": " << n.status().to_string());
    REQUIRE(n.ok());
    REQUIRE(*n == deltas);
    REQUIRE(mirror->stats().last_sync.by_pages == (path == SyncPath::kPages));
    std::vector<std::byte> got;
    for (mmsb::PageId id = 0; id < kPages; ++id) {
      const std::vector<uint8_t>& b = m.pages[id].bytes;
      std::vector<uint8_t> want(b.size());
      for (size_t k = 0; k < b.size(); ++k) {
        const uint8_t d = device[id][k], o = old[id][k];
        if (path == SyncPath::kDeltas) {
          want[k] = written[id][k] ? b[k] : d;
        } else if (id < kTracked) {
          want[k] = d != o && b[k] == o ? d : b[k];
          if (d != o && b[k] == o && written[id][k]) ++kept_by_merge;
        } else {
          want[k] = bus_changed[id] ? b[k] : d;
        }
      }
      must(mirror->read_page(id, &got));
      INFO("page " << id << (id < kTracked ? " (tracked)" : "") << ": " << model::describe_mismatch(got, want));
      REQUIRE(model::same(got, want));
      device[id] = want;
    }
    // The tracked pages' changes go to the bus; the untracked ones are put
    // back as the bus has them (else check_coherence() reports them).
    must(mirror->writeback_all());
    for (mmsb::PageId id = 0; id < kPages; ++id) {
      if (id < kTracked) {
        m.assign(id, device[id]);
      } else {
        must(mirror->write_page(id, 0, model::to_bytes(m.pages[id].bytes)));
      }
    }
    REQUIRE(mirror->sync().ok());
    require_matches(*mirror, m, bus);
  }
  // The case the two paths differ on happened: a byte the bus rewrote with
  // the value it had kept the kernel's change.
  if (path == SyncPath::kPages) REQUIRE(kept_by_merge > 0);
}

// Records every delta the bus applies (page, ranges, bytes, cause).
struct DeltaLog {
  std::vector<model::Record> deltas;
  mmsb::SubscriptionId sub = 0;
  explicit DeltaLog(mmsb::Bus& bus) {
    auto s = bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied), [this](const mmsb::Event& e) {
      model::Record r;
      r.kind = mmsb::RecordKind::kDelta;
      r.page = e.delta->page;
      r.epoch = e.delta->epoch;
      r.base_version = e.delta->base_version;
      r.cause = e.delta->cause;
      r.runs = model::to_runs(e.delta->ranges);
      r.bytes = model::to_u8(e.delta->bytes);
      deltas.push_back(std::move(r));
    });
    REQUIRE(s.ok());
    sub = *s;
  }
};

// Kernels change tracked pages; writeback() turns exactly the changed bytes
// into one delta per page (the model's maximal runs), on the right version.
inline void scenario_writeback(Backend backend, uint64_t seed, SyncPath path = SyncPath::kAuto) {
  mmsb::Bus bus;
  model::Model m;
  model::Rng rng(seed);
  const uint64_t sizes[] = {1, 15, 16, 17, 255, 4095, 4097, 16384, 16385, 40000, 70001};
  for (uint64_t s : sizes) create(bus, m, s);
  for (int i = 0; i < 200; ++i) random_delta(bus, m, rng, 300);
  auto mirror = open_mirror(bus, backend, with_path(path));
  must(mirror->track_all());
  DeltaLog log(bus);
  for (int round = 0; round < 6; ++round) {
    std::vector<std::vector<uint8_t>> before(m.pages.size());
    for (mmsb::PageId id = 0; id < m.pages.size(); ++id) before[id] = m.pages[id].bytes;
    // Kernels edit some pages; a no-op edit (same bytes) must not count.
    std::vector<std::vector<uint8_t>> device = before;
    for (mmsb::PageId id = 0; id < m.pages.size(); ++id) {
      if (!rng.chance(60)) continue;
      device_edit(*mirror, id, device[id], rng, static_cast<int>(rng.between(1, 12)), 2000);
    }
    const mmsb::PageId same_page = static_cast<mmsb::PageId>(rng.below(m.pages.size()));
    std::vector<uint8_t> one(device[same_page].begin(), device[same_page].begin() + 1);
    must(mirror->write_page(same_page, 0, model::to_bytes(one)));

    // diff() reports what changed and applies nothing.
    mmsb::cuda::DiffResult dr;
    std::vector<mmsb::PageId> all;
    for (mmsb::PageId id = 0; id < m.pages.size(); ++id) all.push_back(id);
    must(mirror->diff(all, &dr));
    size_t k = 0;
    for (mmsb::PageId id = 0; id < m.pages.size(); ++id) {
      const std::vector<model::Run> want = model::diff_runs(before[id], device[id]);
      if (want.empty()) continue;
      REQUIRE(k < dr.pages.size());
      const mmsb::DeltaView d = dr.delta(k++);
      REQUIRE(d.page == id);
      REQUIRE(d.base_version == m.pages[id].version);
      REQUIRE(model::to_runs(d.ranges) == want);
      REQUIRE(model::to_u8(d.bytes) == model::gather(device[id], want));
    }
    REQUIRE(k == dr.pages.size());
    REQUIRE(bus.epoch() == m.epoch);

    // writeback() applies them.
    log.deltas.clear();
    mmsb::cuda::WritebackStats st;
    must(mirror->writeback_all(&st));
    REQUIRE(st.changed == dr.pages.size());
    REQUIRE(st.applied == dr.pages.size());
    REQUIRE(st.refused == 0);
    size_t j = 0;
    for (mmsb::PageId id = 0; id < m.pages.size(); ++id) {
      const std::vector<model::Run> want = model::diff_runs(before[id], device[id]);
      if (want.empty()) continue;
      REQUIRE(j < log.deltas.size());
      const model::Record& r = log.deltas[j++];
      REQUIRE(r.page == id);
      REQUIRE(r.base_version == m.pages[id].version);
      REQUIRE(r.runs == want);
      REQUIRE(r.bytes == model::gather(device[id], want));
      m.assign(id, device[id]);
    }
    REQUIRE(j == log.deltas.size());
    for (mmsb::PageId id = 0; id < m.pages.size(); ++id) {
      INFO("page " << id);
      REQUIRE(model::same(bus.page_bytes(id), m.pages[id].bytes));
      REQUIRE(mirror->page_version(id) == m.pages[id].version);
    }
    // Nothing left to write back; the next sync skips our own deltas.
    must(mirror->writeback_all(&st));
    REQUIRE(st.changed == 0);
    const uint64_t echoes = mirror->stats().echoes;
    auto n = mirror->sync();
    REQUIRE(n.ok());
    REQUIRE(*n == 0);
    REQUIRE(mirror->stats().echoes == echoes + j);
    require_matches(*mirror, m, bus);
    // Interleave ordinary bus deltas with the device edits.
    for (int i = 0; i < 50; ++i) random_delta(bus, m, rng, 500);
    REQUIRE(mirror->sync().ok());
    require_matches(*mirror, m, bus);
  }
}

// A device change made after a writeback survives the next sync: the sync
// does not apply the written-back delta (its echo) over it again.
inline void scenario_echo(Backend backend, SyncPath path = SyncPath::kAuto) {
  mmsb::Bus bus;
  model::Model m;
  const mmsb::PageId a = create(bus, m, 100);
  auto mirror = open_mirror(bus, backend, with_path(path));
  must(mirror->track(a));
  must(mirror->write_page(a, 10, model::to_bytes({1, 2, 3})));
  must(mirror->writeback(a));
  m.write(a, 10, {1, 2, 3});
  must(mirror->write_page(a, 10, model::to_bytes({7, 8, 9})));  // the kernel runs again
  REQUIRE(mirror->sync().ok());
  std::vector<std::byte> got;
  must(mirror->read_page(a, &got));
  REQUIRE(model::to_u8(std::span(got).subspan(10, 3)) == std::vector<uint8_t>{7, 8, 9});
  must(mirror->writeback(a));
  m.write(a, 10, {7, 8, 9});
  REQUIRE(model::same(bus.page_bytes(a), m.pages[a].bytes));
  REQUIRE(mirror->sync().ok());
  require_matches(*mirror, m, bus);
}

// Many written-back deltas between ordinary ones, read in one sync on
// several threads: each thread's lane skips the echoes among its records
// (a device edit made after the writebacks survives the sync), applies the
// rest, and the pages end at the bus's versions.
inline void scenario_echoes_across_lanes(Backend backend, SyncPath path) {
  mmsb::Bus bus(ring(size_t{16} << 20));
  model::Model m;
  model::Rng rng(31);
  constexpr mmsb::PageId kDevicePages = 12, kPages = 60;  // pages [0, 12) change on the device only
  for (mmsb::PageId p = 0; p < kPages; ++p) create(bus, m, rng.between(100, 5000));
  auto mirror = open_mirror(bus, backend, MirrorOptions{.track_all = true, .pack_threads = 4, .sync_path = path});
  uint64_t bus_deltas = 0, written_back = 0;
  for (int cycle = 0; cycle < 8; ++cycle) {
    for (int i = 0; i < 700; ++i) {  // ordinary deltas, on the other pages
      const auto id = static_cast<mmsb::PageId>(rng.between(kDevicePages, kPages - 1));
      const uint64_t size = m.pages[id].bytes.size();
      const uint64_t len = rng.between(1, std::min<uint64_t>(64, size));
      const uint64_t off = rng.below(size - len + 1);
      const std::vector<uint8_t> v = rng.bytes(len);
      must(bus.write(id, off, model::to_bytes(v)));
      m.write(id, off, v);
      ++bus_deltas;
    }
    for (mmsb::PageId id = 0; id < kDevicePages; ++id) {  // kernels, then their writeback
      if (!rng.chance(60)) continue;
      std::vector<uint8_t> device = m.pages[id].bytes;
      device_edit(*mirror, id, device, rng, static_cast<int>(rng.between(1, 4)), 200);
      mmsb::cuda::WritebackStats st;
      must(mirror->writeback(id, &st));
      if (st.applied == 0) continue;  // the edit rewrote the same bytes
      m.assign(id, device);
      ++written_back;
    }
  }
  REQUIRE(written_back > 20);
  // A kernel runs once more after the last writeback: the sync must not
  // apply the echoes over it.
  std::vector<uint8_t> survivor = m.pages[3].bytes;
  device_edit(*mirror, 3, survivor, rng, 3, 100);
  const uint64_t echoes = mirror->stats().echoes;
  auto n = mirror->sync();
  INFO(n.status().to_string());
  REQUIRE(n.ok());
  REQUIRE(*n == bus_deltas);
  REQUIRE(mirror->stats().echoes == echoes + written_back);
  REQUIRE(mirror->stats().last_sync.by_pages == (path == SyncPath::kPages));
  if (path == SyncPath::kDeltas) REQUIRE(mirror->stats().last_sync.pack_threads > 1);
  std::vector<std::byte> got;
  for (mmsb::PageId id = 0; id < kPages; ++id) {
    must(mirror->read_page(id, &got));
    INFO("page " << id);
    REQUIRE(model::same(got, id == 3 ? survivor : m.pages[id].bytes));
    REQUIRE(mirror->page_version(id) == m.pages[id].version);
  }
  mmsb::cuda::WritebackStats st;
  must(mirror->writeback(3, &st));
  if (st.applied > 0) m.assign(3, survivor);
  REQUIRE(mirror->sync().ok());
  require_matches(*mirror, m, bus);
}

// The bus changed a page after the sync: the device's delta is built on an
// older version and refused (nothing applied, device changes kept); after a
// sync the writeback goes through, and where both changed a byte the bus's
// value stays (sync overwrote it on the device).
inline void scenario_conflict(Backend backend, SyncPath path = SyncPath::kAuto) {
  mmsb::Bus bus;
  model::Model m;
  const mmsb::PageId a = create(bus, m, 64);
  const mmsb::PageId b = create(bus, m, 64);
  auto mirror = open_mirror(bus, backend, MirrorOptions{.track_all = true, .sync_path = path});
  must(bus.write(a, 0, model::to_bytes({5, 5, 5, 5})));  // CPU side, after the sync
  m.write(a, 0, {5, 5, 5, 5});
  must(mirror->write_page(a, 2, model::to_bytes({9, 9, 9, 9})));  // device side: bytes 2..5
  must(mirror->write_page(b, 0, model::to_bytes({4})));
  mmsb::cuda::WritebackStats st;
  const mmsb::Status s = mirror->writeback_all(&st);
  INFO(s.to_string());
  REQUIRE(s.code() == mmsb::Code::kConflict);
  REQUIRE(s.message().find("page 0") != std::string::npos);
  REQUIRE(st.refused == 1);
  REQUIRE(st.applied == 1);  // b went through
  m.write(b, 0, {4});
  REQUIRE(model::same(bus.page_bytes(a), m.pages[a].bytes));
  REQUIRE(model::same(bus.page_bytes(b), m.pages[b].bytes));
  REQUIRE(mirror->sync().ok());
  // The sync wrote the bus's bytes 0..3 over the device's 2..3; 4..5 stay.
  std::vector<std::byte> got;
  must(mirror->read_page(a, &got));
  REQUIRE(model::to_u8(std::span(got).subspan(0, 7)) == std::vector<uint8_t>{5, 5, 5, 5, 9, 9, 0});
  must(mirror->writeback_all(&st));
  REQUIRE(st.applied == 1);
  m.write(a, 4, {9, 9});
  REQUIRE(mirror->sync().ok());
  require_matches(*mirror, m, bus);
}

// Dependencies across devices: B = the sum of A's bytes (8 bytes, LE). A is
// changed on the device and written back; the bus's propagation updates B
// with a derived delta caused by A's; the mirror then holds B's new bytes.
inline void scenario_cross_device_dependency(Backend backend) {
  mmsb::Bus bus;
  model::Model m;
  const mmsb::PageId a = create(bus, m, 4096 + 7);
  const mmsb::PageId b = create(bus, m, 8);
  must(bus.add_dependency(a, b, [](mmsb::UpdateContext& ctx) {
    uint64_t sum = 0;
    for (std::byte x : ctx.source_bytes()) sum += static_cast<uint8_t>(x);
    return ctx.assign(std::as_bytes(std::span(&sum, 1)));
  }));
  auto mirror = open_mirror(bus, backend);
  must(mirror->track(a));
  DeltaLog log(bus);
  model::Rng rng(99);
  std::vector<uint8_t> image = m.pages[a].bytes;
  device_edit(*mirror, a, image, rng, 20, 300);
  must(mirror->writeback(a));
  m.assign(a, image);
  const uint64_t a_epoch = m.epoch;
  uint64_t sum = 0;  // independent: from the model's bytes
  for (uint8_t x : m.pages[a].bytes) sum += x;
  std::vector<uint8_t> want_b(8);
  for (int i = 0; i < 8; ++i) want_b[i] = static_cast<uint8_t>(sum >> (8 * i));
  m.assign(b, want_b);
  REQUIRE(log.deltas.size() == 2);
  REQUIRE(log.deltas[1].page == b);
  REQUIRE(log.deltas[1].cause == a_epoch);  // derived from the device's delta
  REQUIRE(model::same(bus.page_bytes(b), want_b));
  REQUIRE(mirror->sync().ok());
  std::vector<std::byte> got;
  must(mirror->read_page(b, &got));
  REQUIRE(model::same(got, want_b));
  require_matches(*mirror, m, bus);
  // The mirror's hashes are the bus's.
  auto h = mirror->page_hash(b);
  REQUIRE(h.ok());
  REQUIRE(*h == bus.page_hash(b));
  auto sh = mirror->state_hash();
  REQUIRE(sh.ok());
  REQUIRE(*sh == bus.state_hash());
  REQUIRE(*sh == model::state_hash(m));
}

// sync_async() packs under the bus lock and returns; writes after it belong
// to the next batch.
inline void scenario_async(Backend backend) {
  mmsb::Bus bus;
  model::Model m;
  model::Rng rng(5);
  for (int p = 0; p < 8; ++p) create(bus, m, 5000);
  auto mirror = open_mirror(bus, backend, MirrorOptions{.verify = true});
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 300; ++i) random_delta(bus, m, rng, 100);
    const uint64_t epoch = m.epoch;
    model::Model at_sync = m;
    auto n = mirror->sync_async();
    REQUIRE(n.ok());
    for (int i = 0; i < 50; ++i) random_delta(bus, m, rng, 100);  // after the batch was packed
    must(mirror->wait());
    REQUIRE(mirror->synced_epoch() == epoch);
    std::vector<std::byte> got;
    for (mmsb::PageId id = 0; id < at_sync.pages.size(); ++id) {
      must(mirror->read_page(id, &got));
      REQUIRE(model::same(got, at_sync.pages[id].bytes));
    }
  }
  REQUIRE(mirror->sync().ok());  // verify (page hashes vs the bus) passes
  require_matches(*mirror, m, bus);
}

}  // namespace cuda_test
