// The benches, by name. To add one: write bench_<name>.cc with an
// `Outcome run_<name>(Context&)`, declare it below, add a row to the table in
// registry.cc and the file to CMakeLists.txt. Benches run in table order for
// each workload and print one JSON line per workload (see json.h).
#pragma once

#include <span>
#include <string_view>

#include "common.h"

namespace mmsb::bench {

// kFailed: the engine produced a wrong result (a bug). The bench explains on
// stderr; mmsb-bench finishes the other benches and exits non-zero.
enum class Outcome { kOk, kFailed };

struct BenchDef {
  std::string_view name;
  std::string_view summary;  // one line, for --help
  Outcome (*run)(Context&);
};

std::span<const BenchDef> benches();
const BenchDef* find_bench(std::string_view name);  // nullptr if unknown

// ---- the benches ----
Outcome run_reference(Context& ctx);  // bench_reference.cc
Outcome run_apply(Context& ctx);      // bench_apply.cc
Outcome run_diff(Context& ctx);       // bench_diff.cc
Outcome run_record(Context& ctx);     // bench_record.cc
Outcome run_seek(Context& ctx);       // bench_replay.cc
Outcome run_replay(Context& ctx);     // bench_replay.cc
Outcome run_gpu_apply(Context& ctx);  // bench_gpu.cc
Outcome run_gpu_diff(Context& ctx);   // bench_gpu.cc

}  // namespace mmsb::bench
