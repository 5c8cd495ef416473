// reference: what the machine does without MMSB, so the other figures can be
// read as fractions of it.
//   memcpy_mb_per_s  64 MiB memcpy between touched buffers, one core
//   zstd1_mb_per_s   raw ZSTD_compressCCtx level 1 (one reused context) over
//                    the workload's delta bytes (all deltas' new bytes,
//                    concatenated), input MB per second
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "json.h"
#include "registry.h"

namespace mmsb::bench {

Outcome run_reference(Context& ctx) {
  const Workload& w = ctx.workload;
  const double memcpy_mbps = ctx.memcpy_mb_per_s();

  // At most the first 64 MiB of the delta bytes: W3's are ~655 MB, and zstd
  // -1 on random bytes runs at a steady rate, so a 64 MiB prefix gives the
  // same figure in a tenth of the time. (W1 and W2 fit whole.)
  const size_t in_bytes = std::min<uint64_t>(w.total_bytes, uint64_t{64} << 20);
  const size_t cap = ZSTD_compressBound(in_bytes);
  std::unique_ptr<std::byte[]> dst(new std::byte[cap]);
  std::memset(dst.get(), 0, cap);  // touched: no page faults inside the clock

  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  if (!cctx) {
    note("reference %s: ZSTD_createCCtx failed", std::string(w.spec.name).c_str());
    return Outcome::kFailed;
  }
  size_t csize = 0;
  std::vector<double> secs;
  for (int r = -1; r < ctx.repeat(); ++r) {  // r = -1: warm-up, not counted
    const auto t0 = Clock::now();
    csize = ZSTD_compressCCtx(cctx, dst.get(), cap, w.bytes.get(), in_bytes, 1);
    const double s = seconds_since(t0);
    if (ZSTD_isError(csize)) {
      note("reference %s: ZSTD_compressCCtx: %s", std::string(w.spec.name).c_str(),
           ZSTD_getErrorName(csize));
      ZSTD_freeCCtx(cctx);
      return Outcome::kFailed;
    }
    if (r >= 0) secs.push_back(s);
  }
  ZSTD_freeCCtx(cctx);
  const double zstd_mbps = static_cast<double>(in_bytes) / median(secs) / kMB;

  JsonLine("reference", w.spec.name)
      .num("memcpy_mb_per_s", memcpy_mbps)
      .num("zstd1_mb_per_s", zstd_mbps)
      .num("zstd1_input_mb", static_cast<double>(in_bytes) / kMB)
      .num("zstd1_ratio", static_cast<double>(in_bytes) / static_cast<double>(csize))
      .emit();
  return Outcome::kOk;
}

}  // namespace mmsb::bench
