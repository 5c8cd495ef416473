// A build without the recording stack (MMSB_BUILD_CAPTURE=OFF, or no zstd):
// the benches that need it report themselves skipped, so the GPU benches can
// run on a machine that has only a compiler, CMake and the CUDA toolkit.
#include "json.h"
#include "registry.h"

namespace mmsb::bench {
namespace {
Outcome skip(const char* bench, Context& ctx) {
  const char* reason = "built without capture (MMSB_BUILD_CAPTURE=OFF or no zstd/FlatBuffers)";
  note("%s %s: skipped: %s", bench, std::string(ctx.workload.spec.name).c_str(), reason);
  JsonLine(bench, ctx.workload.spec.name).boolean("skipped", true).str("reason", reason).emit();
  return Outcome::kOk;
}
}  // namespace

Outcome run_reference(Context& ctx) { return skip("reference", ctx); }
Outcome run_record(Context& ctx) { return skip("record", ctx); }
Outcome run_seek(Context& ctx) { return skip("seek", ctx); }
Outcome run_replay(Context& ctx) { return skip("replay", ctx); }

}  // namespace mmsb::bench
