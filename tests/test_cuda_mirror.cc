// DeviceMirror on its CPU path (every machine): the same mirror logic that
// drives the GPU, with host memory as the "device" and the kernels' CPU
// references. Checked against the plain byte-array model.
#include <catch2/catch.hpp>

#include <sched.h>

#include <algorithm>
#include <thread>

#include "cuda_scenarios.h"

using namespace cuda_test;

TEST_CASE("CPU path: small random deltas (W1-like) in batches", "[cuda][mirror]") {
  scenario_sync_random(Backend::kCpu, GENERATE(1, 2), /*pages=*/24, /*max_size=*/5000, /*max_run=*/64,
                       /*batches=*/12, /*deltas_per_batch=*/800);
}

TEST_CASE("CPU path: dense rewrites (W3-like) in batches", "[cuda][mirror]") {
  scenario_sync_random(Backend::kCpu, 3, /*pages=*/6, /*max_size=*/70000, /*max_run=*/70000,
                       /*batches=*/6, /*deltas_per_batch=*/40);
}

TEST_CASE("CPU path: large batches packed on several threads", "[cuda][mirror][threads]") {
  scenario_sync_random(Backend::kCpu, 5, /*pages=*/24, /*max_size=*/5000, /*max_run=*/64, /*batches=*/6,
                       /*deltas_per_batch=*/8000, size_t{32} << 20,
                       MirrorOptions{.pack_threads = 4, .sync_path = SyncPath::kDeltas});
}

TEST_CASE("CPU path: changed pages shipped whole", "[cuda][mirror]") {
  const MirrorOptions pages = with_path(SyncPath::kPages);
  SECTION("small random deltas") { scenario_sync_random(Backend::kCpu, 6, 24, 5000, 64, 12, 800, size_t{16} << 20, pages); }
  SECTION("dense rewrites") { scenario_sync_random(Backend::kCpu, 7, 6, 70000, 70000, 6, 40, size_t{16} << 20, pages); }
  SECTION("one-byte pages") { scenario_sync_random(Backend::kCpu, 8, 10, 3, 2, 5, 100, size_t{16} << 20, pages); }
}

TEST_CASE("CPU path: kAuto ships pages when they weigh less than the deltas' records", "[cuda][mirror]") {
  // Pages of 4 KiB; the records of a write of <= 64 B take ~100 B of ring.
  auto run = [](uint32_t pages, int deltas) {
    mmsb::Bus bus(ring(size_t{32} << 20));
    model::Model m;
    model::Rng rng(static_cast<uint64_t>(pages) * 7 + static_cast<uint64_t>(deltas));
    for (uint32_t p = 0; p < pages; ++p) create(bus, m, 4096);
    auto mirror = open_mirror(bus, Backend::kCpu);
    for (int i = 0; i < deltas; ++i) random_delta(bus, m, rng, 64);
    const uint64_t want = m.epoch - mirror->synced_epoch();
    auto n = mirror->sync();
    REQUIRE(n.ok());
    REQUIRE(*n == want);
    require_matches(*mirror, m, bus);
    return mirror->stats().last_sync;
  };
  SECTION("20,000 deltas on 64 pages: 256 KiB of pages against ~2 MB of records") {
    const mmsb::cuda::SyncStats st = run(64, 20000);
    REQUIRE(st.by_pages);
    REQUIRE(st.pages == 64);
    REQUIRE(st.bytes == 64 * 4096);
  }
  SECTION("4,000 deltas on 2,000 pages: most pages changed, ~7 MB of them against ~0.4 MB of records") {
    const mmsb::cuda::SyncStats st = run(2000, 4000);
    REQUIRE_FALSE(st.by_pages);
    REQUIRE(st.pages == 0);
  }
  SECTION("a short batch is read as deltas, however few its pages") {
    const mmsb::cuda::SyncStats st = run(1, 100);
    REQUIRE_FALSE(st.by_pages);
  }
}

TEST_CASE("CPU path: device changes across a sync, deltas or pages", "[cuda][mirror]") {
  scenario_device_changes_across_sync(Backend::kCpu, GENERATE(SyncPath::kDeltas, SyncPath::kPages), GENERATE(41, 42));
}

TEST_CASE("CPU path: by default a mirror packs on the CPUs its thread may run on", "[cuda][mirror][threads]") {
  // A process pinned to one CPU (taskset, a cpuset) must not start threads
  // that would share it: the default comes from the affinity mask, not from
  // the machine's hardware threads.
  mmsb::Bus bus(ring(size_t{32} << 20));
  model::Model m;
  model::Rng rng(9);
  for (int p = 0; p < 24; ++p) create(bus, m, rng.between(1, 5000));
  cpu_set_t all;
  REQUIRE(sched_getaffinity(0, sizeof all, &all) == 0);
  const unsigned cpus = static_cast<unsigned>(CPU_COUNT(&all));
  int first = 0;
  while (!CPU_ISSET(first, &all)) ++first;

  int pinned_ok = -1;
  unsigned usable_pinned = 0;
  mmsb::Result<std::unique_ptr<DeviceMirror>> pinned = mmsb::Status(mmsb::Code::kFailedPrecondition, "not opened");
  std::thread([&] {  // no assertions here: Catch2 asserts on the main thread
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    pinned_ok = sched_setaffinity(0, sizeof one, &one);
    usable_pinned = mmsb::cuda::usable_cpus();
    pinned = DeviceMirror::open(bus, MirrorOptions{.backend = Backend::kCpu, .sync_path = SyncPath::kDeltas});
  }).join();
  if (pinned_ok != 0) {  // a sandbox that forbids it: nothing to check here
    WARN("sched_setaffinity refused to pin a thread to CPU " << first << "; not checked");
    return;
  }
  REQUIRE(usable_pinned == 1);
  INFO(pinned.status().to_string());
  REQUIRE(pinned.ok());
  // Deltas: the page path would pack these few pages on one thread.
  auto unpinned = open_mirror(bus, Backend::kCpu, with_path(SyncPath::kDeltas));
  REQUIRE(mmsb::cuda::usable_cpus() == cpus);

  for (int i = 0; i < 8000; ++i) random_delta(bus, m, rng, 64);  // long enough for several threads
  for (DeviceMirror* mirror : {pinned->get(), unpinned.get()}) {
    REQUIRE(mirror->sync().ok());
    require_matches(*mirror, m, bus);
  }
  REQUIRE((*pinned)->stats().last_sync.pack_threads == 1);
  if (cpus > 1) {  // as many lanes as the batch's ~720 KB of records make, on the CPUs there are
    REQUIRE(unpinned->stats().last_sync.pack_threads > 1);
    REQUIRE(unpinned->stats().last_sync.pack_threads <= std::min(cpus, 16u));
  }
}

TEST_CASE("CPU path: one-byte pages and runs", "[cuda][mirror]") {
  scenario_sync_random(Backend::kCpu, 4, /*pages=*/10, /*max_size=*/3, /*max_run=*/2, /*batches=*/5,
                       /*deltas_per_batch=*/100);
}

TEST_CASE("CPU path: a lagging mirror ships its changed pages, or resyncs when asked for deltas", "[cuda][mirror]") {
  scenario_lag_resync(Backend::kCpu, GENERATE(SyncPath::kAuto, SyncPath::kDeltas));
}

TEST_CASE("CPU path: writeback turns device changes into deltas", "[cuda][mirror]") {
  scenario_writeback(Backend::kCpu, GENERATE(21, 22), GENERATE(SyncPath::kDeltas, SyncPath::kPages));
}

TEST_CASE("CPU path: a written-back delta is not applied again", "[cuda][mirror]") {
  scenario_echo(Backend::kCpu, GENERATE(SyncPath::kDeltas, SyncPath::kPages));
}

TEST_CASE("CPU path: echoes among many deltas, read on several threads", "[cuda][mirror][threads]") {
  scenario_echoes_across_lanes(Backend::kCpu, GENERATE(SyncPath::kDeltas, SyncPath::kPages));
}

TEST_CASE("CPU path: writeback of a page the bus changed is a conflict", "[cuda][mirror]") {
  scenario_conflict(Backend::kCpu, GENERATE(SyncPath::kDeltas, SyncPath::kPages));
}

TEST_CASE("CPU path: a dependent of a device-written page propagates back", "[cuda][mirror]") {
  scenario_cross_device_dependency(Backend::kCpu);
}

TEST_CASE("CPU path: sync_async packs one epoch, verify checks every page", "[cuda][mirror]") {
  scenario_async(Backend::kCpu);
}

TEST_CASE("CPU path: device_data is the live image kernels write", "[cuda][mirror]") {
  mmsb::Bus bus;
  model::Model m;
  const mmsb::PageId a = create(bus, m, 33);
  auto mirror = open_mirror(bus, Backend::kCpu);
  must(mirror->track(a));
  std::byte* p = mirror->device_data(a);
  REQUIRE(p != nullptr);
  REQUIRE(mirror->device_data(7) == nullptr);
  p[32] = std::byte{0x5A};  // a "CPU kernel"
  mmsb::cuda::WritebackStats st;
  must(mirror->writeback(a, &st));
  REQUIRE(st.applied == 1);
  REQUIRE(st.bytes == 1);
  m.write(a, 32, {0x5A});
  REQUIRE(model::same(bus.page_bytes(a), m.pages[a].bytes));
}

TEST_CASE("mirror: without a usable device, kAuto takes the CPU path and says why", "[cuda][mirror]") {
  mmsb::Bus bus;
  auto probe = mmsb::cuda::probe_device();
  auto mirror = DeviceMirror::open(bus);
  REQUIRE(mirror.ok());
  if (probe.ok()) {
    REQUIRE((*mirror)->on_gpu());
    REQUIRE((*mirror)->backend().rfind("CUDA device", 0) == 0);
    return;
  }
  INFO(probe.status().to_string());
  REQUIRE(probe.status().message().rfind("no CUDA device: ", 0) == 0);
  REQUIRE_FALSE((*mirror)->on_gpu());
  REQUIRE((*mirror)->backend() == "CPU path (" + probe.status().message() + ")");
  REQUIRE((*mirror)->stream() == nullptr);
  auto cuda = DeviceMirror::open(bus, MirrorOptions{.backend = Backend::kCuda});
  REQUIRE_FALSE(cuda.ok());
  REQUIRE(cuda.status().message().rfind("no CUDA device: ", 0) == 0);
  if (!mmsb::cuda::built_with_cuda()) REQUIRE(cuda.status().code() == mmsb::Code::kUnsupported);
}

TEST_CASE("mirror: misuse is an error, not a crash", "[cuda][mirror]") {
  mmsb::Bus bus;
  model::Model m;
  const mmsb::PageId a = create(bus, m, 100);
  const mmsb::PageId b = create(bus, m, 100);
  auto mirror = open_mirror(bus, Backend::kCpu);
  REQUIRE(mirror->writeback(a).code() == mmsb::Code::kFailedPrecondition);  // not tracked
  mmsb::cuda::DiffResult dr;
  REQUIRE(mirror->diff(std::vector<mmsb::PageId>{a}, &dr).code() == mmsb::Code::kFailedPrecondition);
  must(mirror->track_all());
  REQUIRE(mirror->diff(std::vector<mmsb::PageId>{b, a}, &dr).code() == mmsb::Code::kInvalidArgument);
  REQUIRE(mirror->writeback(9).code() == mmsb::Code::kNotFound);
  REQUIRE(mirror->track(9).code() == mmsb::Code::kNotFound);
  REQUIRE(mirror->write_page(a, 90, model::to_bytes(model::Rng(1).bytes(11))).code() ==
          mmsb::Code::kOutOfRange);
  REQUIRE(mirror->write_page(a, 101, {}).code() == mmsb::Code::kOutOfRange);
  std::vector<std::byte> out;
  REQUIRE(mirror->read_page(9, &out).code() == mmsb::Code::kNotFound);
  REQUIRE_FALSE(mirror->page_hash(9).ok());
  must(bus.write(a, 0, model::to_bytes({1})));
  REQUIRE(mirror->check_coherence().code() == mmsb::Code::kFailedPrecondition);  // not synced
  REQUIRE(mirror->sync().ok());
  must(mirror->check_coherence());
  // A page created after track_all() is tracked too.
  const mmsb::PageId c = create(bus, m, 5);
  REQUIRE(mirror->sync().ok());
  REQUIRE(mirror->tracked(c));
}

// Creating a page does not advance the bus's epoch: a mirror at the bus's
// epoch that lacks the new page is behind (sync), not corrupt.
TEST_CASE("mirror: check_coherence behind a page creation asks for a sync", "[cuda][mirror]") {
  mmsb::Bus bus;
  model::Model m;
  create(bus, m, 100);
  auto mirror = open_mirror(bus, Backend::kCpu);
  create(bus, m, 10);
  REQUIRE(bus.epoch() == mirror->synced_epoch());
  const mmsb::Status s = mirror->check_coherence();
  INFO(s.to_string());
  REQUIRE(s.code() == mmsb::Code::kFailedPrecondition);
  REQUIRE(s.message().find("holds 1 pages but the bus has 2") != std::string::npos);
  REQUIRE(s.message().find("sync()") != std::string::npos);
  REQUIRE(mirror->sync().ok());
  must(mirror->check_coherence());
}

// A kernel's change to an untracked page never reaches the bus; the
// coherence errors say so instead of blaming the mirror.
TEST_CASE("mirror: an incoherent page's error names the likely misuse", "[cuda][mirror]") {
  mmsb::Bus bus;
  model::Model m;
  const mmsb::PageId a = create(bus, m, 100);
  const mmsb::PageId b = create(bus, m, 100);
  auto mirror = open_mirror(bus, Backend::kCpu, MirrorOptions{.verify = true});
  mirror->device_data(a)[3] = std::byte{1};  // a "kernel" on an untracked page
  must(bus.write(a, 50, model::to_bytes({2})));
  mmsb::Result<uint64_t> n = mirror->sync();  // verify compares every page
  REQUIRE_FALSE(n.ok());
  INFO(n.status().to_string());
  REQUIRE(n.status().code() == mmsb::Code::kCorruption);
  REQUIRE(n.status().message().find("page 0") != std::string::npos);
  REQUIRE(n.status().message().find("untracked") != std::string::npos);
  REQUIRE(n.status().message().find("track()") != std::string::npos);
  REQUIRE(n.status().message().find("a bug") == std::string::npos);
  const mmsb::Status c = mirror->check_coherence();
  INFO(c.to_string());
  REQUIRE(c.code() == mmsb::Code::kCorruption);
  REQUIRE(c.message().find("untracked") != std::string::npos);
  // Restore page 0; then track page 1 after a kernel changed it: the change
  // becomes part of its synced image.
  must(mirror->write_page(a, 3, model::to_bytes({0})));
  must(mirror->check_coherence());
  mirror->device_data(b)[7] = std::byte{9};
  must(mirror->track(b));
  const mmsb::Status t = mirror->check_coherence();
  INFO(t.to_string());
  REQUIRE(t.code() == mmsb::Code::kCorruption);
  REQUIRE(t.message().find("page 1") != std::string::npos);
  REQUIRE(t.message().find("track() was called after a kernel changed") != std::string::npos);
  REQUIRE(t.message().find("request_resync()") != std::string::npos);
  // The way back: a full copy of the bus, into both images.
  const uint64_t resyncs = mirror->resyncs();
  mirror->device_data(a)[9] = std::byte{4};  // and an untracked page changed again
  mirror->request_resync();
  REQUIRE(mirror->sync().ok());
  CHECK(mirror->resyncs() == resyncs + 1);
  must(mirror->check_coherence());
  m.write(a, 50, {2});  // the bus write above, in the model
  for (const mmsb::PageId p : {a, b}) {
    INFO("page " << p);
    const std::byte* d = mirror->device_data(p);
    CHECK(std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(d), reinterpret_cast<const uint8_t*>(d) + 100) ==
          m.pages[p].bytes);
  }
  // b is still tracked, and a kernel's change to it is written back as usual.
  mirror->device_data(b)[1] = std::byte{6};
  must(mirror->writeback(b));
  m.write(b, 1, {6});
  const auto now = bus.page_bytes(b);
  CHECK(std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(now.data()),
                             reinterpret_cast<const uint8_t*>(now.data()) + now.size()) == m.pages[b].bytes);
}

TEST_CASE("mirror: write_page past the end names the offset, even near 2^64", "[cuda][mirror]") {
  mmsb::Bus bus;
  model::Model m;
  const mmsb::PageId a = create(bus, m, 100);
  auto mirror = open_mirror(bus, Backend::kCpu);
  const mmsb::Status s = mirror->write_page(a, UINT64_MAX, model::to_bytes({1}));
  INFO(s.to_string());
  REQUIRE(s.code() == mmsb::Code::kOutOfRange);
  REQUIRE(s.message() == "device mirror page 0: 1 byte(s) at offset 18446744073709551615 go past its 100 bytes");
}

// The bus's kConflict says "rebuild the delta"; for a writeback the mirror
// does that itself after a sync, so the error says that instead.
TEST_CASE("mirror: a writeback conflict says what the mirror user can do", "[cuda][mirror]") {
  mmsb::Bus bus;
  model::Model m;
  const mmsb::PageId a = create(bus, m, 64);
  auto mirror = open_mirror(bus, Backend::kCpu, MirrorOptions{.track_all = true});
  must(mirror->write_page(a, 2, model::to_bytes({9})));
  must(bus.write(a, 0, model::to_bytes({5})));
  must(bus.write(a, 1, model::to_bytes({5})));  // the bus is at version 2, the mirror at 0
  const mmsb::Status s = mirror->writeback(a);
  INFO(s.to_string());
  REQUIRE(s.code() == mmsb::Code::kConflict);
  REQUIRE(s.message().find("rebuild the delta") == std::string::npos);
  REQUIRE(s.message().find("writeback of page 0") != std::string::npos);
  REQUIRE(s.message().find("mirror holds version 0, the bus 2") != std::string::npos);
  REQUIRE(s.message().find("sync()") != std::string::npos);
}

TEST_CASE("mirror: sync() and check_coherence() from an event callback are refused, not a deadlock",
          "[cuda][mirror]") {
  mmsb::Bus bus;
  model::Model m;
  const mmsb::PageId a = create(bus, m, 40);
  auto mirror = open_mirror(bus, Backend::kCpu);
  mmsb::Status sync_there, check_there;
  REQUIRE(bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied), [&](const mmsb::Event&) {
               sync_there = mirror->sync().status();
               check_there = mirror->check_coherence();
             }).ok());
  REQUIRE(bus.write(a, 5, model::to_bytes({9, 9})).ok());
  CHECK(sync_there.code() == mmsb::Code::kFailedPrecondition);
  CHECK(sync_there.message().find("DeviceMirror::sync called from an event callback") != std::string::npos);
  CHECK(check_there.code() == mmsb::Code::kFailedPrecondition);
  REQUIRE(mirror->sync().ok());
  CHECK(mirror->check_coherence().ok());
}

TEST_CASE("mirror: a writeback refused for another reason than a conflict keeps the bus's advice", "[cuda][mirror]") {
  mmsb::Bus bus;
  model::Model m;
  const mmsb::PageId a = create(bus, m, 16);
  const mmsb::PageId b = create(bus, m, 16);
  auto mirror = open_mirror(bus, Backend::kCpu);
  must(mirror->track(b));
  mmsb::Status there;
  REQUIRE(bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied), [&](const mmsb::Event& e) {
               if (e.page != a) return;
               mirror->device_data(b)[2] = std::byte{7};  // a "kernel"
               there = mirror->writeback(b);
             }).ok());
  must(bus.write(a, 0, model::to_bytes({1})));
  INFO(there.to_string());
  CHECK(there.code() == mmsb::Code::kFailedPrecondition);
  CHECK(there.message().find("event callback") != std::string::npos);
  CHECK(there.message().find("its device changes are kept") != std::string::npos);
  CHECK(there.message().find("write back again") == std::string::npos);  // a sync would not help there
  // Outside the callback the kept change goes through.
  must(mirror->writeback(b));
  CHECK(bus.page_bytes(b)[2] == std::byte{7});
}

TEST_CASE("mirror: once its bus is destroyed, the calls that need it say so", "[cuda][mirror]") {
  auto bus = std::make_unique<mmsb::Bus>();
  model::Model m;
  const mmsb::PageId a = create(*bus, m, 40);
  auto mirror = open_mirror(*bus, Backend::kCpu, MirrorOptions{.track_all = true});
  must(bus->write(a, 3, model::to_bytes({1, 2})));
  m.write(a, 3, {1, 2});
  REQUIRE(mirror->sync().ok());
  bus.reset();
  for (const mmsb::Status& s : {mirror->sync().status(), mirror->writeback_all(), mirror->check_coherence()}) {
    INFO(s.to_string());
    CHECK(s.code() == mmsb::Code::kFailedPrecondition);
    CHECK(s.message().find("its bus was destroyed") != std::string::npos);
  }
  std::vector<std::byte> got;  // the device pages stay readable
  must(mirror->read_page(a, &got));
  CHECK(model::same(got, m.pages[a].bytes));
}
