#include "registry.h"

#include <array>

namespace mmsb::bench {

namespace {
constexpr std::array<BenchDef, 8> kBenches{{
    {"reference", "memcpy (64 MiB, one core) and raw zstd -1 over the workload's delta bytes",
     &run_reference},
    {"apply", "Bus::apply of every delta on a fresh bus, no recording", &run_apply},
    {"diff", "diff_into over (old, new) page pairs built from the workload", &run_diff},
    {"record", "Bus::apply of every delta with a Recorder attached (default options), until stop()",
     &run_record},
    {"seek", "whole state at 100 random epochs, one page at 1,000 random (epoch, page), via replay::Index",
     &run_seek},
    {"replay", "the whole recording read and applied from the start (replay::Index, replay::State)", &run_replay},
    {"gpu_apply", "CUDA mirror: one sync() of a batch of deltas (pack, copy, scatter kernel), vs a device copy",
     &run_gpu_apply},
    {"gpu_diff", "CUDA mirror: on-device diff of every page against the synced image, vs a device copy",
     &run_gpu_diff},
}};
}  // namespace

std::span<const BenchDef> benches() { return kBenches; }

const BenchDef* find_bench(std::string_view name) {
  for (const BenchDef& b : kBenches)
    if (b.name == name) return &b;
  return nullptr;
}

}  // namespace mmsb::bench
