// Runs mmsb-sample-heat briefly and checks its final grid against an
// independent plain-array implementation of the same integer scheme (written
// here again from the sample's documented rule, not shared with it), and
// that the total heat is the initial one. With the capture and replay
// libraries built, the run is recorded and the recording replayed to its
// last epoch must hold the same grid and the per-band totals.
//
//   mmsb_heat_tests <mmsb-sample-heat> cpu   the CPU kernel (every machine)
//   mmsb_heat_tests <mmsb-sample-heat> gpu   the CUDA kernel; without a usable
//                                           device: "no CUDA device: ..." and exit 77
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine_model.h"
#include "mmsb/cuda/mirror.h"
#if defined(MMSB_HEAT_REPLAY)
#include "mmsb/replay/recording.h"
#include "mmsb/replay/state.h"
#endif

namespace {

constexpr int kSize = 48, kBandRows = 7, kSteps = 25;

// The scheme, from its description: T' = T + sum over in-grid 4-neighbours of
// (T(n) - T) / 8, C++ division; start: (7r + 13c) % 101, plus 2^20 in the
// square [n/4, n/2) x [n/4, n/2).
std::vector<int32_t> reference_grid(int n, int steps, int64_t* heat) {
  std::vector<int32_t> t(size_t(n) * n), u(t.size());
  *heat = 0;
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      int32_t v = (r * 7 + c * 13) % 101;
      if (r >= n / 4 && r < n / 2 && c >= n / 4 && c < n / 2) v += 1 << 20;
      t[size_t(r) * n + c] = v;
      *heat += v;
    }
  const int dr[] = {-1, 1, 0, 0}, dc[] = {0, 0, -1, 1};
  for (int s = 0; s < steps; ++s) {
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c) {
        const int32_t me = t[size_t(r) * n + c];
        int32_t v = me;
        for (int k = 0; k < 4; ++k) {
          const int rr = r + dr[k], cc = c + dc[k];
          if (rr < 0 || rr >= n || cc < 0 || cc >= n) continue;
          v += (t[size_t(rr) * n + cc] - me) / 8;
        }
        u[size_t(r) * n + c] = v;
      }
    t.swap(u);
  }
  return t;
}

int fail(const std::string& why) {
  std::fprintf(stderr, "FAILED: %s\n", why.c_str());
  return 1;
}

int compare(const std::vector<int32_t>& got, const std::vector<int32_t>& want, const char* what) {
  if (got.size() != want.size())
    return fail(std::string(what) + ": " + std::to_string(got.size()) + " cells, expected " +
                std::to_string(want.size()));
  for (size_t i = 0; i < want.size(); ++i)
    if (got[i] != want[i])
      return fail(std::string(what) + ": cell (" + std::to_string(i / kSize) + ", " + std::to_string(i % kSize) +
                  ") is " + std::to_string(got[i]) + ", expected " + std::to_string(want[i]));
  return 0;
}

std::vector<int32_t> cells_of(const std::vector<std::byte>& bytes) {
  std::vector<int32_t> cells(bytes.size() / 4);
  if (!cells.empty()) std::memcpy(cells.data(), bytes.data(), cells.size() * 4);
  return cells;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[2]) != "cpu" && std::string(argv[2]) != "gpu")) {
    std::fprintf(stderr, "usage: %s <mmsb-sample-heat> cpu|gpu\n", argv[0]);
    return 2;
  }
  const bool gpu = std::string(argv[2]) == "gpu";
  if (gpu) {
    auto probe = mmsb::cuda::probe_device();
    if (!probe.ok()) {
      std::printf("%s\n", probe.status().message().c_str());
      return 77;
    }
  }
  model::TempDir dir("heat", /*create=*/true);
  const std::filesystem::path dump = dir.path / "grid.bin", rec = dir.path / "recording";
  std::string cmd = std::string("'") + argv[1] + "' " + (gpu ? "--gpu" : "--cpu") + " --quiet --steps " +
                    std::to_string(kSteps) + " --size " + std::to_string(kSize) + " --band-rows " +
                    std::to_string(kBandRows) + " --dump '" + dump.string() + "'";
  const std::filesystem::path out = dir.path / "stdout.txt";
#if defined(MMSB_HEAT_REPLAY)
  cmd += " --record '" + rec.string() + "'";
#endif
  cmd += " >'" + out.string() + "'";
  std::printf("running: %s\n", cmd.c_str());
  std::fflush(stdout);
  const int rc = std::system(cmd.c_str());
  {
    std::ifstream o(out);
    const std::string said((std::istreambuf_iterator<char>(o)), std::istreambuf_iterator<char>());
    std::printf("%s", said.c_str());
    if (rc != 0) return fail("the sample exited with status " + std::to_string(rc));
    // --quiet: the summary line alone.
    if (said.rfind("done: ", 0) != 0 || std::count(said.begin(), said.end(), '\n') != 1)
      return fail("--quiet printed more than the summary line");
  }

  int64_t heat = 0;
  const std::vector<int32_t> want = reference_grid(kSize, kSteps, &heat);
  std::ifstream in(dump, std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(raw.size());
  std::memcpy(bytes.data(), raw.data(), raw.size());
  if (bytes.size() != want.size() * 4) return fail("the dump has " + std::to_string(bytes.size()) + " bytes");
  const std::vector<int32_t> got = cells_of(bytes);
  if (int r = compare(got, want, gpu ? "GPU grid" : "CPU grid"); r != 0) return r;
  int64_t sum = 0;
  for (int32_t v : got) sum += v;
  if (sum != heat) return fail("total heat " + std::to_string(sum) + ", initially " + std::to_string(heat));
  std::printf("%s kernel: %d steps of a %dx%d grid equal the plain-array reference; heat %" PRId64 " conserved\n",
              gpu ? "GPU" : "CPU", kSteps, kSize, kSize, heat);

#if defined(MMSB_HEAT_REPLAY)
  // The recording, replayed to its last epoch: the bands (pages 0..) and
  // the totals page (the last one) as the run left them.
  auto recording = mmsb::replay::Recording::open(rec);
  if (!recording.ok()) return fail("opening the recording: " + recording.status().to_string());
  mmsb::replay::State state(**recording);
  if (mmsb::Status s = state.seek((*recording)->last_epoch()); !s.ok()) return fail("replay seek: " + s.to_string());
  const int bands = (kSize + kBandRows - 1) / kBandRows;
  if (state.page_count() != static_cast<uint32_t>(bands + 1))
    return fail("the replayed state has " + std::to_string(state.page_count()) + " pages");
  std::vector<std::byte> replayed;
  std::vector<int64_t> band_heat;
  for (int b = 0; b < bands; ++b) {
    auto p = state.page(static_cast<mmsb::PageId>(b));
    replayed.insert(replayed.end(), p.begin(), p.end());
    int64_t h = 0;
    for (int32_t v : cells_of(std::vector<std::byte>(p.begin(), p.end()))) h += v;
    band_heat.push_back(h);
  }
  if (int r = compare(cells_of(replayed), want, "replayed grid"); r != 0) return r;
  auto totals = state.page(static_cast<mmsb::PageId>(bands));
  if (totals.size() != band_heat.size() * 8 || std::memcmp(totals.data(), band_heat.data(), totals.size()) != 0)
    return fail("the replayed totals page is not the per-band heat");
  std::printf("recording replayed to epoch %" PRIu64 ": same grid, totals page = per-band heat\n",
              (*recording)->last_epoch());
#endif
  return 0;
}
