// DeviceMirror on a CUDA device: the CPU-path scenarios again, on the GPU,
// plus large batches (W1 and W3 shapes) and on-device diffs compared byte
// for byte with the model and with the CPU path. Without a usable device the
// program prints "no CUDA device: <reason>" and exits 77, which ctest
// reports as skipped (SKIP_RETURN_CODE 77).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "cuda_scenarios.h"

using namespace cuda_test;

TEST_CASE("GPU: small random deltas (W1-like) in batches", "[gpu]") {
  scenario_sync_random(Backend::kCuda, GENERATE(1, 2), 24, 5000, 64, 12, 800);
}

TEST_CASE("GPU: dense rewrites (W3-like) in batches", "[gpu]") {
  scenario_sync_random(Backend::kCuda, 3, 6, 70000, 70000, 6, 40);
}

TEST_CASE("GPU: large batches packed on several threads", "[gpu]") {
  scenario_sync_random(Backend::kCuda, 5, 24, 5000, 64, 6, 8000, size_t{32} << 20,
                       MirrorOptions{.pack_threads = 4, .sync_path = SyncPath::kDeltas});
}

TEST_CASE("GPU: changed pages shipped whole", "[gpu]") {
  const MirrorOptions pages = with_path(SyncPath::kPages);
  scenario_sync_random(Backend::kCuda, 6, 24, 5000, 64, 12, 800, size_t{16} << 20, pages);
  scenario_sync_random(Backend::kCuda, 7, 6, 70000, 70000, 6, 40, size_t{16} << 20, pages);
  scenario_sync_random(Backend::kCuda, 8, 10, 3, 2, 5, 100, size_t{16} << 20, pages);
}

TEST_CASE("GPU: device changes across a sync, deltas or pages (the merge kernel)", "[gpu]") {
  scenario_device_changes_across_sync(Backend::kCuda, GENERATE(SyncPath::kDeltas, SyncPath::kPages), GENERATE(41, 42));
}

TEST_CASE("GPU: one-byte pages and runs", "[gpu]") { scenario_sync_random(Backend::kCuda, 4, 10, 3, 2, 5, 100); }

TEST_CASE("GPU: a lagging mirror ships its changed pages, or resyncs when asked for deltas", "[gpu]") {
  scenario_lag_resync(Backend::kCuda, GENERATE(SyncPath::kAuto, SyncPath::kDeltas));
}

TEST_CASE("GPU: writeback turns device changes into deltas", "[gpu]") {
  scenario_writeback(Backend::kCuda, GENERATE(21, 22), GENERATE(SyncPath::kDeltas, SyncPath::kPages));
}

TEST_CASE("GPU: a written-back delta is not applied again", "[gpu]") {
  scenario_echo(Backend::kCuda, GENERATE(SyncPath::kDeltas, SyncPath::kPages));
}
TEST_CASE("GPU: echoes among many deltas, read on several threads", "[gpu]") {
  scenario_echoes_across_lanes(Backend::kCuda, GENERATE(SyncPath::kDeltas, SyncPath::kPages));
}

TEST_CASE("GPU: writeback of a page the bus changed is a conflict", "[gpu]") {
  scenario_conflict(Backend::kCuda, GENERATE(SyncPath::kDeltas, SyncPath::kPages));
}

TEST_CASE("GPU: a dependent of a device-written page propagates back", "[gpu]") {
  scenario_cross_device_dependency(Backend::kCuda);
}

TEST_CASE("GPU: sync_async packs one epoch, verify checks every page", "[gpu]") { scenario_async(Backend::kCuda); }

namespace {

// One batch of `deltas` workload-shaped deltas (WORKLOADS.md's generator
// shape: page, length, offset, bytes) applied to a GPU mirror (shipping the
// deltas, or what kAuto picks) and a CPU-path mirror of one bus; both must
// equal the model byte for byte.
void big_batch(uint32_t pages, uint32_t page_size, uint32_t max_run, int deltas, size_t ring_bytes, SyncPath path) {
  mmsb::Bus bus(ring(ring_bytes));
  model::Model m;
  for (uint32_t p = 0; p < pages; ++p) create(bus, m, page_size);
  auto gpu = open_mirror(bus, Backend::kCuda, with_path(path));
  auto cpu = open_mirror(bus, Backend::kCpu);
  model::Rng rng(42);
  for (int i = 0; i < deltas; ++i) {
    const auto page = static_cast<mmsb::PageId>(rng.next() % pages);
    const uint64_t len = 1 + rng.next() % max_run;
    const uint64_t off = rng.next() % (page_size - len + 1);
    std::vector<uint8_t> v(len);
    for (auto& b : v) b = static_cast<uint8_t>(rng.next());
    must(bus.write(page, off, model::to_bytes(v)));
    m.write(page, off, v);
  }
  auto n = gpu->sync();
  INFO(n.status().to_string());
  REQUIRE(n.ok());
  REQUIRE(*n == static_cast<uint64_t>(deltas));
  REQUIRE(gpu->resyncs() == 0);
  REQUIRE(cpu->sync().ok());
  const mmsb::cuda::SyncStats& st = gpu->stats().last_sync;
  std::printf("  GPU batch of %d deltas over %u x %u B, shipped as %s: pack %.3f ms (read %.3f ms, %u threads), "
              "copy %.3f ms, kernel %.3f ms (%llu ops, %.1f MB)\n",
              deltas, pages, page_size, st.by_pages ? "pages" : "deltas", st.pack_ms, st.read_ms, st.pack_threads,
              st.device.copy_ms, st.device.kernel_ms,
              static_cast<unsigned long long>(st.ops), static_cast<double>(st.batch_bytes) / 1e6);
  require_matches(*gpu, m, bus);
  require_matches(*cpu, m, bus);
}

}  // namespace

TEST_CASE("GPU: W1-shaped batch of 100,000 deltas", "[gpu]") {
  big_batch(1024, 4096, 64, 100000, size_t{32} << 20, GENERATE(SyncPath::kDeltas, SyncPath::kAuto));
}

TEST_CASE("GPU: W3-shaped batch (dense, overlapping rewrites)", "[gpu]") {
  big_batch(256, 65536, 65536, 1500, size_t{128} << 20, GENERATE(SyncPath::kDeltas, SyncPath::kAuto));
}

TEST_CASE("GPU: the on-device diff equals the CPU path's and the model's runs", "[gpu]") {
  mmsb::Bus bus;
  model::Model m;
  model::Rng rng(77);
  for (int p = 0; p < 700; ++p) create(bus, m, rng.chance(80) ? 4096 : rng.between(1, 70000));
  auto gpu = open_mirror(bus, Backend::kCuda, MirrorOptions{.track_all = true});
  auto cpu = open_mirror(bus, Backend::kCpu, MirrorOptions{.track_all = true});
  std::vector<mmsb::PageId> all;
  for (mmsb::PageId id = 0; id < m.pages.size(); ++id) {
    all.push_back(id);
    std::vector<uint8_t> image = m.pages[id].bytes;
    if (rng.chance(30)) continue;  // some pages unchanged
    std::vector<uint8_t> before = image;
    model::Rng copy = rng;
    device_edit(*gpu, id, image, rng, static_cast<int>(rng.between(1, 40)), 3000);
    std::vector<uint8_t> again = before;
    device_edit(*cpu, id, again, copy, static_cast<int>(copy.between(1, 40)), 3000);
    REQUIRE(again == image);
  }
  mmsb::cuda::DiffResult g, c;
  must(gpu->diff(all, &g));
  must(cpu->diff(all, &c));
  REQUIRE(g.pages.size() == c.pages.size());
  for (size_t i = 0; i < g.pages.size(); ++i) {
    const mmsb::DeltaView a = g.delta(i), b = c.delta(i);
    INFO("changed page " << a.page);
    REQUIRE(a.page == b.page);
    REQUIRE(model::to_runs(a.ranges) == model::to_runs(b.ranges));
    REQUIRE(model::to_u8(a.bytes) == model::to_u8(b.bytes));
    std::vector<std::byte> live;
    must(gpu->read_page(a.page, &live));
    REQUIRE(model::to_runs(a.ranges) == model::diff_runs(m.pages[a.page].bytes, model::to_u8(live)));
  }
  std::printf("  GPU diff of %zu pages (%.1f MB): copies %.3f ms, kernels %.3f ms, total %.3f ms\n", all.size(),
              static_cast<double>(g.compared_bytes) / 1e6, gpu->stats().last_diff.copy_ms,
              gpu->stats().last_diff.kernel_ms, gpu->stats().last_diff.total_ms);
}

TEST_CASE("GPU: pages created in one batch grow the device images", "[gpu]") {
  mmsb::Bus bus(ring(size_t{8} << 20));
  model::Model m;
  auto mirror = open_mirror(bus, Backend::kCuda, MirrorOptions{.track_all = true});
  model::Rng rng(3);
  for (int p = 0; p < 300; ++p) {
    create(bus, m, rng.between(1, 20000));
    random_delta(bus, m, rng, 500);
  }
  REQUIRE(mirror->sync().ok());
  require_matches(*mirror, m, bus);
}

int main(int argc, char** argv) {
  auto probe = mmsb::cuda::probe_device();
  if (!probe.ok()) {
    std::printf("%s\n", probe.status().message().c_str());  // "no CUDA device: <reason>"
    return 77;
  }
  std::printf("%s\n", probe->describe().c_str());
  return Catch::Session().run(argc, argv);
}
