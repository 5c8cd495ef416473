#include "registry.h"

#include <array>

namespace mmsb::bench {

namespace {
constexpr std::array<BenchDef, 4> kBenches{{
    {"reference", "memcpy (64 MiB, one core) and raw zstd -1 over the workload's delta bytes",
     &run_reference},
    {"apply", "Bus::apply of every delta on a fresh bus, no recording", &run_apply},
    {"diff", "diff_into over (old, new) page pairs built from the workload", &run_diff},
    {"record", "Bus::apply of every delta with a Recorder attached (default options), until stop()",
     &run_record},
}};
}  // namespace

std::span<const BenchDef> benches() { return kBenches; }

const BenchDef* find_bench(std::string_view name) {
  for (const BenchDef& b : kBenches)
    if (b.name == name) return &b;
  return nullptr;
}

}  // namespace mmsb::bench
