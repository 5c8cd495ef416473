// gpu_apply and gpu_diff: the CUDA mirror (mmsb::cuda::DeviceMirror) on the
// workloads, as ratios to a device-to-device copy measured in the same run.
//
//   d2d_gb_per_s   cudaMemcpyAsync device-to-device of a 256 MiB buffer,
//                  timed with CUDA events: bytes copied per second (each
//                  byte counted once, not once read and once written)
//   h2d_gb_per_s   cudaMemcpyAsync of 64 MiB pinned host memory to the device
//
// gpu_apply: a bus with the workload's pages and a mirror on the GPU; per
// run, a batch of the workload's deltas (W1, W2: 100,000; W3: 5,000) is
// applied to the bus outside the clock, then one DeviceMirror::sync() brings
// the mirror up to date: packed into pinned staging under the bus lock,
// copied to the device in one copy and scattered by one kernel. Two lines
// per workload, one mirror each: "path":"deltas" (SyncPath::kDeltas: the
// TLog is read and every delta's ranges shipped) and "path":"auto" (the
// default, kAuto: the changed pages whole when they weigh less than the
// records); "shipped" says which it did.
//   sync_ms          wall clock around sync() (pack + copy + kernel + wait)
//   pack_ms, h2d_ms, kernel_ms   its parts (host clock; CUDA events)
//   read_ms          the part of pack_ms that reads the TLog into lanes (or
//                    finds the changed pages); the rest copies the bytes and
//                    lays out the ops
//   pack_threads     threads that packed the batch (--pack-threads)
//   deltas_per_s, mb_per_s       batch deltas / changed bytes per sync second
//   written_mb, pages  bytes the kernel wrote into the live image (the
//                    deltas' or the pages'), pages shipped whole
//   kernel_gb_per_s  written bytes / kernel time
//   ratio_d2d        kernel_gb_per_s / d2d_gb_per_s (the apply kernel against a
//                    plain device copy of the same number of bytes)
// gpu_diff: every page tracked, the state after a batch of deltas (as
// gpu_apply's first batch) written into the live image from the host outside
// the clock; the synced image holds the zero pages. Per run one
// DeviceMirror::diff() of every page: count, scan and emit kernels, the runs
// and bytes copied back.
//   diff_ms          wall clock around diff()
//   kernel_ms, copy_ms, device_ms   CUDA events: kernels, copies, first to last
//   mb_per_s         page bytes compared per diff second (S per page, not 2S)
//   kernel_gb_per_s  page bytes compared / kernel time
//   ratio_d2d        kernel_gb_per_s / d2d_gb_per_s
// Outside the clock: after the last sync the mirror's pages equal the bus's
// (check_coherence); the diff's ranges and bytes equal mmsb::diff_into's for
// every page. A mismatch fails the bench.
//
// Without a usable device (or in a build without CUDA) each bench prints
// {"bench":"gpu_apply","workload":"W1","skipped":true,"reason":"no CUDA device: ..."}.
// MMSB_BENCH_GPU_ON_CPU=1 in the environment runs them on the mirror's CPU
// path instead (to test the benches themselves; "device" says so and the
// d2d figures are null).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <bit>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apply_loop.h"
#include "json.h"
#include "mmsb/cuda/layout.h"
#include "mmsb/cuda/mirror.h"
#include "mmsb/diff.h"
#include "mmsb/tlog.h"
#include "registry.h"

#if defined(MMSB_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace mmsb::bench {
namespace {

// Deltas per batch: W1's "100,000 deltas in one batch"; W3's deltas average
// 32 KiB, so 5,000 of them are ~160 MB.
uint64_t batch_deltas(const WorkloadSpec& s) { return s.name == "W3" ? 5'000 : 100'000; }

struct GpuReference {
  std::string skip_reason;  // empty when a device is usable
  std::string device;
  cuda::Backend backend = cuda::Backend::kCuda;
  double d2d_gb_per_s = 0;
  double h2d_gb_per_s = 0;
};

#if defined(MMSB_HAVE_CUDA)
// Median bandwidth (GB/s) of `repeat` copies of `bytes`, timed with events.
Result<double> copy_bandwidth(cudaMemcpyKind kind, size_t bytes, int repeat) {
  void* src = nullptr;
  void* dst = nullptr;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  auto cleanup = [&] {
    if (kind == cudaMemcpyHostToDevice) {
      if (src) cudaFreeHost(src);
    } else if (src) {
      cudaFree(src);
    }
    if (dst) cudaFree(dst);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
  };
  auto fail = [&](const char* what, cudaError_t e) {
    cleanup();
    return Status(Code::kIOError, std::string(what) + ": " + cudaGetErrorString(e));
  };
  cudaError_t e = kind == cudaMemcpyHostToDevice ? cudaMallocHost(&src, bytes) : cudaMalloc(&src, bytes);
  if (e != cudaSuccess) return fail("allocating the copy source", e);
  if ((e = cudaMalloc(&dst, bytes)) != cudaSuccess) return fail("cudaMalloc", e);
  if (kind == cudaMemcpyHostToDevice)
    std::memset(src, 1, bytes);
  else if ((e = cudaMemset(src, 1, bytes)) != cudaSuccess)
    return fail("cudaMemset", e);
  if ((e = cudaEventCreate(&e0)) != cudaSuccess || (e = cudaEventCreate(&e1)) != cudaSuccess)
    return fail("cudaEventCreate", e);
  std::vector<double> secs;
  for (int r = -1; r < repeat; ++r) {  // r = -1: warm-up
    cudaEventRecord(e0);
    cudaMemcpyAsync(dst, src, bytes, kind);
    cudaEventRecord(e1);
    if ((e = cudaEventSynchronize(e1)) != cudaSuccess) return fail("cudaMemcpyAsync", e);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (r >= 0) secs.push_back(ms / 1e3);
  }
  cleanup();
  return static_cast<double>(bytes) / median(secs) / 1e9;
}
#endif

// Probed and measured once per process, at the first GPU bench.
const GpuReference& reference(int repeat) {
  static std::optional<GpuReference> ref;
  if (ref) return *ref;
  ref.emplace();
  Result<cuda::DeviceInfo> info = cuda::probe_device();
  if (!info.ok()) {
    const char* on_cpu = std::getenv("MMSB_BENCH_GPU_ON_CPU");
    if (on_cpu && std::string(on_cpu) == "1") {
      ref->device = "CPU path (MMSB_BENCH_GPU_ON_CPU=1; " + info.status().message() + ")";
      ref->backend = cuda::Backend::kCpu;
      ref->d2d_gb_per_s = ref->h2d_gb_per_s = std::nan("");
      note("gpu: %s", ref->device.c_str());
    } else {
      ref->skip_reason = info.status().message();
    }
    return *ref;
  }
  ref->device = info->describe();
#if defined(MMSB_HAVE_CUDA)
  Result<double> d2d = copy_bandwidth(cudaMemcpyDeviceToDevice, size_t{256} << 20, std::max(repeat, 5));
  Result<double> h2d = copy_bandwidth(cudaMemcpyHostToDevice, size_t{64} << 20, std::max(repeat, 5));
  if (!d2d.ok() || !h2d.ok()) {
    ref->skip_reason = "no CUDA device: measuring copy bandwidth failed: " +
                       (d2d.ok() ? h2d.status() : d2d.status()).message();
    return *ref;
  }
  ref->d2d_gb_per_s = *d2d;
  ref->h2d_gb_per_s = *h2d;
  note("gpu: %s; device-to-device copy %.1f GB/s, pinned host-to-device %.1f GB/s", ref->device.c_str(),
       ref->d2d_gb_per_s, ref->h2d_gb_per_s);
#endif
  return *ref;
}

bool skipped(const char* bench, const Workload& w, const GpuReference& ref) {
  if (ref.skip_reason.empty()) return false;
  note("%s %s: skipped: %s", bench, std::string(w.spec.name).c_str(), ref.skip_reason.c_str());
  JsonLine(bench, w.spec.name).boolean("skipped", true).str("reason", ref.skip_reason).emit();
  return true;
}

// Applies deltas [first, first + count) (indices modulo the workload) to the
// bus, one Bus::apply each, base versions from `versions`.
Status apply_range(Bus& bus, const Workload& w, const std::vector<PageId>& ids, std::vector<Version>& versions,
                   uint64_t first, uint64_t count, uint64_t* bytes) {
  *bytes = 0;
  for (uint64_t k = 0; k < count; ++k) {
    const size_t i = (first + k) % w.count();
    const Range range{w.offset[i], w.length[i]};
    DeltaView d;
    d.page = ids[w.page[i]];
    d.base_version = versions[w.page[i]]++;
    d.ranges = std::span<const Range>(&range, 1);
    d.bytes = std::span<const std::byte>(w.delta_bytes(i), range.length);
    if (Status s = bus.apply(d); !s.ok()) return s;
    *bytes += range.length;
  }
  return Status::OK();
}

// A ring that holds every record of the largest batch the runs will apply.
size_t ring_for(const Workload& w, uint64_t batch, int runs) {
  uint64_t most = 0;
  for (int r = 0; r < runs; ++r) {
    uint64_t sum = 0;
    for (uint64_t k = 0; k < batch; ++k) {
      const size_t i = (r * batch + k) % w.count();
      sum += TLog::kHeaderBytes + sizeof(Range) + ((w.length[i] + 7) & ~uint64_t{7});
    }
    most = std::max(most, sum);
  }
  return std::bit_ceil(static_cast<size_t>(most + (uint64_t{1} << 20)));
}

// The workload's pages on `bus` (ids in *ids) and a mirror of them on the
// reference's backend, with room for every page from the start.
Result<std::unique_ptr<cuda::DeviceMirror>> workload_mirror(Bus& bus, const Context& ctx, const GpuReference& ref,
                                                           bool track_all, cuda::SyncPath path,
                                                           std::vector<PageId>* ids) {
  const Workload& w = ctx.workload;
  if (Status s = create_workload_pages(bus, w, ids); !s.ok()) return s;
  cuda::MirrorOptions mo;
  mo.pack_threads = ctx.options.pack_threads;
  mo.backend = ref.backend;
  mo.track_all = track_all;
  mo.sync_path = path;
  mo.reserve_bytes = w.state_bytes() + uint64_t{w.spec.pages} * cuda::kPageAlign;
  return cuda::DeviceMirror::open(bus, mo);
}

// gpu_apply's runs on one mirror that ships `path`: false when the bench failed.
bool gpu_apply_path(Context& ctx, const GpuReference& ref, cuda::SyncPath path) {
  const Workload& w = ctx.workload;
  const std::string wl(w.spec.name);
  const char* path_name = path == cuda::SyncPath::kDeltas ? "deltas" : "auto";
  const uint64_t batch = std::min<uint64_t>(batch_deltas(w.spec), w.count());
  const int runs = ctx.repeat() + 1;  // the first is a warm-up
  BusOptions bo;
  bo.tlog_capacity = ring_for(w, batch, runs);
  Bus bus(std::move(bo));
  std::vector<PageId> ids;
  auto mirror = workload_mirror(bus, ctx, ref, /*track_all=*/false, path, &ids);
  if (!mirror.ok()) {
    note("gpu_apply %s (%s): FAILED: %s", wl.c_str(), path_name, mirror.status().to_string().c_str());
    return false;
  }
  std::vector<Version> versions(w.spec.pages, 0);
  std::vector<double> sync_s, pack_ms, read_ms, h2d_ms, kernel_ms;
  uint64_t bytes = 0, ops = 0, batch_bytes = 0, pack_threads = 0, written = 0, pages = 0;
  bool by_pages = false;
  for (int r = 0; r < runs; ++r) {
    if (Status s = apply_range(bus, w, ids, versions, r * batch, batch, &bytes); !s.ok()) {
      note("gpu_apply %s: FAILED: applying the batch: %s", wl.c_str(), s.to_string().c_str());
      return false;
    }
    const auto t0 = Clock::now();
    Result<uint64_t> n = (*mirror)->sync();
    const double s = seconds_since(t0);
    if (!n.ok() || *n != batch) {
      note("gpu_apply %s (%s): FAILED: sync: %s", wl.c_str(), path_name,
           n.ok() ? ("applied " + std::to_string(*n) + " of " + std::to_string(batch)).c_str()
                  : n.status().to_string().c_str());
      return false;
    }
    const cuda::SyncStats& st = (*mirror)->stats().last_sync;
    if (r == 0) continue;
    sync_s.push_back(s);
    pack_ms.push_back(st.pack_ms);
    read_ms.push_back(st.read_ms);
    h2d_ms.push_back(st.device.copy_ms);
    kernel_ms.push_back(st.device.kernel_ms);
    ops = st.ops;
    batch_bytes = st.batch_bytes;
    pack_threads = st.pack_threads;
    written = st.bytes;
    pages = st.pages;
    by_pages = st.by_pages;
  }
  if (Status c = (*mirror)->check_coherence(); !c.ok()) {
    note("gpu_apply %s (%s): FAILED: the mirror differs from the bus: %s", wl.c_str(), path_name,
         c.to_string().c_str());
    return false;
  }
  const double s = median(sync_s), k = median(kernel_ms) / 1e3;
  const double kernel_gbps = static_cast<double>(written) / k / 1e9;
  JsonLine("gpu_apply", w.spec.name)
      .str("path", path_name)
      .str("shipped", by_pages ? "pages" : "deltas")
      .num("sync_ms", s * 1e3)
      .num("deltas_per_s", static_cast<double>(batch) / s)
      .num("mb_per_s", static_cast<double>(bytes) / s / kMB)
      .num("kernel_gb_per_s", kernel_gbps)
      .num("ratio_d2d", kernel_gbps / ref.d2d_gb_per_s)
      .num("d2d_gb_per_s", ref.d2d_gb_per_s)
      .num("pack_ms", median(pack_ms))
      .num("read_ms", median(read_ms))
      .integer("pack_threads", static_cast<int64_t>(pack_threads))
      .num("h2d_ms", median(h2d_ms))
      .num("kernel_ms", median(kernel_ms))
      .num("h2d_gb_per_s", ref.h2d_gb_per_s)
      .integer("batch_deltas", static_cast<int64_t>(batch))
      .num("batch_mb", static_cast<double>(batch_bytes) / kMB)
      .num("changed_mb", static_cast<double>(bytes) / kMB)
      .num("written_mb", static_cast<double>(written) / kMB)
      .integer("pages", static_cast<int64_t>(pages))
      .integer("ops", static_cast<int64_t>(ops))
      .str("device", ref.device)
      .emit();
  return true;
}

}  // namespace

Outcome run_gpu_apply(Context& ctx) {
  const GpuReference& ref = reference(ctx.repeat());
  if (skipped("gpu_apply", ctx.workload, ref)) return Outcome::kOk;
  for (cuda::SyncPath path : {cuda::SyncPath::kDeltas, cuda::SyncPath::kAuto})
    if (!gpu_apply_path(ctx, ref, path)) return Outcome::kFailed;
  return Outcome::kOk;
}

Outcome run_gpu_diff(Context& ctx) {
  const Workload& w = ctx.workload;
  const std::string wl(w.spec.name);
  const GpuReference& ref = reference(ctx.repeat());
  if (skipped("gpu_diff", w, ref)) return Outcome::kOk;

  Bus bus;
  std::vector<PageId> ids;
  auto mirror = workload_mirror(bus, ctx, ref, /*track_all=*/true, cuda::SyncPath::kAuto, &ids);
  if (!mirror.ok()) {
    note("gpu_diff %s: FAILED: %s", wl.c_str(), mirror.status().to_string().c_str());
    return Outcome::kFailed;
  }
  // The state after the first batch, written into the live image as a
  // kernel would have left it.
  const size_t S = w.spec.page_size;
  std::vector<std::byte> state(w.state_bytes(), std::byte{0});
  const uint64_t batch = std::min<uint64_t>(batch_deltas(w.spec), w.count());
  for (uint64_t i = 0; i < batch; ++i)
    std::memcpy(state.data() + uint64_t{w.page[i]} * S + w.offset[i], w.delta_bytes(i), w.length[i]);
  for (uint32_t p = 0; p < w.spec.pages; ++p) {
    if (Status s = (*mirror)->write_page(ids[p], 0, std::span(state.data() + uint64_t{p} * S, S)); !s.ok()) {
      note("gpu_diff %s: FAILED: write_page: %s", wl.c_str(), s.to_string().c_str());
      return Outcome::kFailed;
    }
  }
  std::vector<PageId> all(ids);
  std::sort(all.begin(), all.end());
  cuda::DiffResult result;
  std::vector<double> wall_s, kernel_ms, copy_ms, device_ms;
  for (int r = -1; r < ctx.repeat(); ++r) {  // r = -1: warm-up
    const auto t0 = Clock::now();
    const Status s = (*mirror)->diff(all, &result);
    const double sec = seconds_since(t0);
    if (!s.ok()) {
      note("gpu_diff %s: FAILED: %s", wl.c_str(), s.to_string().c_str());
      return Outcome::kFailed;
    }
    if (r < 0) continue;
    wall_s.push_back(sec);
    kernel_ms.push_back((*mirror)->stats().last_diff.kernel_ms);
    copy_ms.push_back((*mirror)->stats().last_diff.copy_ms);
    device_ms.push_back((*mirror)->stats().last_diff.total_ms);
  }
  // Outside the clock: every page's runs and bytes are the engine's diff.
  const std::vector<std::byte> zeros(S, std::byte{0});
  std::vector<uint32_t> index_of(bus.page_count(), 0);  // page id -> workload page index
  for (uint32_t p = 0; p < w.spec.pages; ++p) index_of[ids[p]] = p;
  Delta want;
  size_t k = 0;
  for (uint32_t p = 0; p < w.spec.pages; ++p) {
    const PageId id = all[p];
    const uint32_t idx = index_of[id];
    if (Status s = diff_into(zeros, std::span(state.data() + uint64_t{idx} * S, S), want); !s.ok()) return Outcome::kFailed;
    if (want.empty()) continue;
    const bool ok = k < result.pages.size() && result.pages[k].page == id && [&] {
      const DeltaView got = result.delta(k);
      return std::equal(got.ranges.begin(), got.ranges.end(), want.ranges.begin(), want.ranges.end()) &&
             std::equal(got.bytes.begin(), got.bytes.end(), want.bytes.begin(), want.bytes.end());
    }();
    if (!ok) {
      note("gpu_diff %s: FAILED: page p%u: the device's runs differ from diff_into's", wl.c_str(), idx);
      return Outcome::kFailed;
    }
    ++k;
  }
  if (k != result.pages.size()) {
    note("gpu_diff %s: FAILED: the device reports changes in pages that did not change", wl.c_str());
    return Outcome::kFailed;
  }
  const double s = median(wall_s), kern = median(kernel_ms) / 1e3;
  const double compared = static_cast<double>(result.compared_bytes);
  const double kernel_gbps = compared / kern / 1e9;
  JsonLine("gpu_diff", w.spec.name)
      .num("diff_ms", s * 1e3)
      .num("mb_per_s", compared / s / kMB)
      .num("kernel_gb_per_s", kernel_gbps)
      .num("ratio_d2d", kernel_gbps / ref.d2d_gb_per_s)
      .num("d2d_gb_per_s", ref.d2d_gb_per_s)
      .num("kernel_ms", median(kernel_ms))
      .num("copy_ms", median(copy_ms))
      .num("device_ms", median(device_ms))
      .num("state_mb", compared / kMB)
      .num("changed_mb", static_cast<double>(result.bytes.size()) / kMB)
      .integer("runs", static_cast<int64_t>(result.ranges.size()))
      .integer("batch_deltas", static_cast<int64_t>(batch))
      .str("device", ref.device)
      .emit();
  return Outcome::kOk;
}

}  // namespace mmsb::bench
