// mmsb-sample-heat: heat diffusion on a grid held in bus pages, stepped by a
// GPU kernel through the CUDA mirror (or by a CPU kernel without a device).
//
// The grid is cut into bands of rows, one page each (heat.h). A page
// 'heat/totals' holds each band's total heat; the bus keeps it up to date
// through one dependency per band. Each step:
//   1. the kernel updates every cell in the mirror's live image (on the GPU,
//      or in host memory on the CPU path);
//   2. DeviceMirror::writeback_all() diffs the bands against their synced
//      image, brings back only the changed bytes and applies them to the bus
//      as ordinary deltas -- versioned, logged, recorded, and propagated: the
//      bus recomputes the totals of the bands that changed;
//   3. DeviceMirror::sync() brings the new totals back to the device mirror.
// The insulated grid conserves heat exactly (integer arithmetic), which the
// sample checks on the totals page every step. The same integers on both
// paths make GPU and CPU results bit-identical.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <mmsb/cuda/mirror.h>
#include <mmsb/mmsb.h>

#include "heat.h"
#include "sample.h"
#if defined(MMSB_HEAT_GPU)
#include "heat_gpu.h"
#endif
#if defined(MMSB_HEAT_RECORD)
#include <mmsb/capture/recorder.h>
#endif

namespace {

using sample::check;

// Sum of the totals page: each band's heat as an int64.
int64_t total_heat(const mmsb::Bus& bus, mmsb::PageId totals, int bands) {
  std::vector<int64_t> t(bands);
  check(bus.read(totals, 0, std::as_writable_bytes(std::span(t))), "read totals");
  int64_t sum = 0;
  for (int64_t x : t) sum += x;
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Heat diffusion on a grid held in MMSB pages: a GPU kernel steps it through the CUDA mirror "
               "(a CPU kernel without a device); changes go back to the bus as deltas."};
  int steps = 50;
  heat::Grid g;
  bool force_cpu = false, force_gpu = false, quiet = false;
  std::string record, dump;
  app.add_option("--steps", steps, "Steps to run")->check(CLI::Range(1, 1000000));
  app.add_option("--size", g.width, "Grid width and height (cells)")->check(CLI::Range(2, 16384));
  app.add_option("--band-rows", g.band_rows, "Rows per page")->check(CLI::Range(1, 16384));
  app.add_flag("--cpu", force_cpu, "Use the CPU kernel even when a CUDA device is there");
  app.add_flag("--gpu", force_gpu, "Require a CUDA device (exit 77 without one)");
  app.add_option("--record", record, "Record the run into this new directory");
  app.add_option("--dump", dump, "Write the final grid (from the bus) to this file: int32 cells, row-major");
  app.add_flag("--quiet", quiet, "Print only the summary");
  CLI11_PARSE(app, argc, argv);
  if (force_cpu && force_gpu) {
    std::fprintf(stderr, "mmsb-sample-heat: --cpu and --gpu exclude each other\n");
    return 2;
  }
  g.height = g.width;

  // Deltas of one step must fit the in-memory TLog between two mirror syncs.
  const uint64_t grid_bytes = uint64_t(g.width) * g.height * sizeof(int32_t);
  mmsb::BusOptions options;
  options.tlog_capacity = 4 * grid_bytes + (size_t{1} << 20);
  mmsb::Bus bus(std::move(options));

  std::vector<mmsb::PageId> bands;
  for (int b = 0; b < g.bands(); ++b) {
    char name[32];
    std::snprintf(name, sizeof name, "heat/band-%03d", b);
    bands.push_back(check(bus.create_page(g.band_bytes(b), name), "create_page"));
  }
  const mmsb::PageId totals = check(bus.create_page(sizeof(int64_t) * g.bands(), "heat/totals"), "create_page");

#if defined(MMSB_HEAT_RECORD)
  std::unique_ptr<mmsb::capture::Recorder> recorder;
  if (!record.empty()) {
    mmsb::capture::RecorderOptions ro;
    ro.labels = {{"sample", "heat"}, {"size", std::to_string(g.width)}, {"steps", std::to_string(steps)}};
    recorder = check(mmsb::capture::Recorder::start(bus, record, ro), "Recorder::start");
  }
#else
  if (!record.empty()) {
    std::fprintf(stderr, "mmsb-sample-heat: --record: this build has no capture library (MMSB_BUILD_CAPTURE=OFF)\n");
    return 2;
  }
#endif

  // totals[b] = the heat of band b, recomputed by the bus when band b changes.
  for (int b = 0; b < g.bands(); ++b) {
    check(bus.add_dependency(bands[b], totals,
                             [b](mmsb::UpdateContext& ctx) {
                               int64_t sum = 0;
                               std::span<const std::byte> src = ctx.source_bytes();
                               for (size_t i = 0; i + 4 <= src.size(); i += 4) {
                                 int32_t v;
                                 std::memcpy(&v, src.data() + i, 4);
                                 sum += v;
                               }
                               return ctx.write(sizeof(int64_t) * b, std::as_bytes(std::span(&sum, 1)));
                             }),
          "add_dependency");
  }

  // The starting grid, written by the CPU (the bus fills in the totals).
  int64_t initial_heat = 0;
  for (int b = 0; b < g.bands(); ++b) {
    std::vector<int32_t> cells(size_t(g.rows_in(b)) * g.width);
    for (int i = 0; i < g.rows_in(b); ++i)
      for (int c = 0; c < g.width; ++c) {
        cells[size_t(i) * g.width + c] = heat::initial(b * g.band_rows + i, c, g.width, g.height);
        initial_heat += cells[size_t(i) * g.width + c];
      }
    check(bus.write(bands[b], 0, std::as_bytes(std::span(cells))), "write");
  }

  mmsb::cuda::MirrorOptions mo;
  mo.backend = force_cpu ? mmsb::cuda::Backend::kCpu : force_gpu ? mmsb::cuda::Backend::kCuda : mmsb::cuda::Backend::kAuto;
  auto opened = mmsb::cuda::DeviceMirror::open(bus, mo);
  if (!opened.ok() && force_gpu) {
    std::printf("%s\n", opened.status().message().c_str());  // "no CUDA device: ..."
    return 77;
  }
  std::unique_ptr<mmsb::cuda::DeviceMirror> mirror = check(std::move(opened), "DeviceMirror::open");
  for (mmsb::PageId b : bands) check(mirror->track(b), "track");

#if defined(MMSB_HEAT_GPU)
  std::unique_ptr<heat::GpuStepper> gpu;
  if (mirror->on_gpu()) {
    std::string error;
    gpu = heat::make_gpu_stepper(g, &error);
    if (!gpu) {
      std::fprintf(stderr, "mmsb-sample-heat: %s\n", error.c_str());
      return 1;
    }
  }
#endif
  if (!quiet) {
    std::printf("path: %s\n", mirror->on_gpu() ? ("GPU kernel on " + mirror->backend()).c_str()
                                                : ("CPU kernel, mirror " + mirror->backend()).c_str());
    std::printf("grid %d x %d in %d bands of %d rows (%d pages + 'heat/totals'), initial heat %" PRId64 "\n",
                g.width, g.height, g.bands(), g.band_rows, g.bands(), initial_heat);
  }
  if (total_heat(bus, totals, g.bands()) != initial_heat) {
    std::fprintf(stderr, "mmsb-sample-heat: the totals page does not match the initial grid\n");
    return 1;
  }

  std::vector<int32_t*> band_ptrs(bands.size());
  std::vector<int32_t> scratch;
  uint64_t deltas = 0, bytes = 0;
  for (int step = 1; step <= steps; ++step) {
    for (size_t b = 0; b < bands.size(); ++b) band_ptrs[b] = reinterpret_cast<int32_t*>(mirror->device_data(bands[b]));
#if defined(MMSB_HEAT_GPU)
    if (gpu) {
      const std::string e = gpu->step(band_ptrs, mirror->stream());
      if (!e.empty()) {
        std::fprintf(stderr, "mmsb-sample-heat: step %d: %s\n", step, e.c_str());
        return 1;
      }
    } else
#endif
    {
      heat::step_cpu(g, band_ptrs.data(), scratch);
    }
    mmsb::cuda::WritebackStats st;
    check(mirror->writeback_all(&st), "writeback");
    check(mirror->sync().status(), "sync");
    deltas += st.applied;
    bytes += st.bytes;
    const int64_t heat_now = total_heat(bus, totals, g.bands());
    if (!quiet && (step <= 3 || step % 10 == 0 || step == steps))
      std::printf("step %4d: %2" PRIu64 " band(s) changed, %7" PRIu64 " byte(s) written back, epoch %" PRIu64
                  ", total heat %" PRId64 "\n",
                  step, st.applied, st.bytes, bus.epoch(), heat_now);
    if (heat_now != initial_heat) {
      std::fprintf(stderr, "mmsb-sample-heat: step %d: total heat %" PRId64 ", expected %" PRId64 "\n", step,
                   heat_now, initial_heat);
      return 1;
    }
  }

  // The mirror holds exactly the bus's pages.
  check(mirror->check_coherence(), "check_coherence");
  const uint64_t mine = check(mirror->state_hash(), "state_hash");
  if (mine != bus.state_hash()) {
    std::fprintf(stderr, "mmsb-sample-heat: mirror state hash differs from the bus's\n");
    return 1;
  }
  if (!dump.empty()) {
    std::ofstream out(dump, std::ios::binary);
    std::vector<std::byte> page;
    for (mmsb::PageId b : bands) {
      check(bus.copy_page(b, &page), "copy_page");
      out.write(reinterpret_cast<const char*>(page.data()), static_cast<std::streamsize>(page.size()));
    }
    if (!out) {
      std::fprintf(stderr, "mmsb-sample-heat: cannot write %s\n", dump.c_str());
      return 1;
    }
  }
#if defined(MMSB_HEAT_RECORD)
  if (recorder) {
    check(recorder->stop(), "Recorder::stop");
    if (!quiet) std::printf("recorded %" PRIu64 " deltas into %s\n", recorder->stats().deltas, record.c_str());
  }
#endif
  std::printf("done: %d steps on the %s, %" PRIu64 " deltas (%" PRIu64 " bytes) written back, epoch %" PRIu64
              ", heat conserved (%" PRId64 "), mirror state hash %016" PRIx64 " == bus\n",
              steps, mirror->on_gpu() ? "GPU" : "CPU", deltas, bytes, bus.epoch(), initial_heat, mine);
  return 0;
}
