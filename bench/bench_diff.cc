// diff: mmsb::diff_into over (old, new) page pairs. A working copy of the
// state follows the workload; for each delta the pair is (the page before the
// delta, the page after it). Pairs are built in batches of at most 64 MiB
// before the clock starts; then diff_into runs over the batch with one reused
// mmsb::Delta, once per repeat, and each repeat's batch times are summed.
// The first kMaxDeltas deltas are used (W1, W2: 200,000; W3: all 20,000).
//   mb_per_s       page bytes compared per second (S per pair)
//   ratio_memcpy   mb_per_s / the memcpy_mb_per_s of this workload's run
// Outside the clock, a few pairs per batch are re-diffed and the result is
// checked byte by byte: the delta must cover exactly the differing bytes, as
// maximal runs, with the new values. A mismatch fails the bench.
#include <algorithm>
#include <cstring>

#include "json.h"
#include "mmsb/diff.h"
#include "registry.h"

namespace mmsb::bench {

namespace {

constexpr size_t kMaxDeltas = 200'000;
constexpr size_t kBatchBytes = size_t{64} << 20;

// Checks `d` (the diff of old_page vs new_page) against a byte-by-byte
// comparison; on a mismatch says what is wrong and returns false.
bool check_diff(const Delta& d, const std::byte* old_page, const std::byte* new_page, size_t size,
                const std::string& where) {
  size_t differing = 0;
  for (size_t i = 0; i < size; ++i) differing += old_page[i] != new_page[i];
  if (d.changed_bytes() != differing) {
    note("diff %s: FAILED: delta has %zu bytes, the pages differ in %zu", where.c_str(),
         d.changed_bytes(), differing);
    return false;
  }
  size_t src = 0;
  uint64_t prev_end = 0;
  for (size_t k = 0; k < d.ranges.size(); ++k) {
    const Range& r = d.ranges[k];
    if (r.length == 0 || r.end() > size || (k > 0 && r.offset <= prev_end)) {
      note("diff %s: FAILED: range %zu [%u, +%u) is empty, outside the page, overlapping or "
           "adjacent to the previous one (runs must be maximal)",
           where.c_str(), k, r.offset, r.length);
      return false;
    }
    for (uint32_t j = 0; j < r.length; ++j) {
      const size_t at = r.offset + j;
      if (old_page[at] == new_page[at] || d.bytes[src + j] != new_page[at]) {
        note("diff %s: FAILED: byte %zu in range %zu is unchanged or has the wrong value",
             where.c_str(), at, k);
        return false;
      }
    }
    src += r.length;
    prev_end = r.end();
  }
  // Every byte listed differs and the count matches: the ranges cover exactly
  // the differing bytes.
  return true;
}

}  // namespace

Outcome run_diff(Context& ctx) {
  const Workload& w = ctx.workload;
  const std::string wl(w.spec.name);
  const size_t S = w.spec.page_size;
  const size_t n = std::min(w.count(), kMaxDeltas);
  const size_t pair_bytes = 2 * S;
  const size_t per_batch = std::max<size_t>(1, kBatchBytes / pair_bytes);

  std::vector<std::byte> state(w.state_bytes(), std::byte{0});
  std::vector<std::byte> batch(std::min(per_batch, n) * pair_bytes, std::byte{0});  // touched
  Delta out;
  out.ranges.reserve(S / 2 + 1);  // the most runs a page can have
  out.bytes.reserve(S);

  // Identical pages: no ranges at all.
  if (Status st = diff_into({state.data(), S}, {state.data(), S}, out); !st.ok() || !out.empty()) {
    note("diff %s: FAILED: two identical pages gave %s", wl.c_str(),
         st.ok() ? "a non-empty delta" : st.to_string().c_str());
    return Outcome::kFailed;
  }

  std::vector<double> secs(ctx.repeat(), 0.0);
  for (size_t b0 = 0; b0 < n; b0 += per_batch) {
    const size_t m = std::min(per_batch, n - b0);
    // Build the batch: (old, new) for each delta, the state following along.
    for (size_t k = 0; k < m; ++k) {
      const size_t i = b0 + k;
      std::byte* page = state.data() + size_t{w.page[i]} * S;
      std::byte* pair = batch.data() + k * pair_bytes;
      std::memcpy(pair, page, S);
      std::memcpy(page + w.offset[i], w.delta_bytes(i), w.length[i]);
      std::memcpy(pair + S, page, S);
    }
    for (int r = 0; r < ctx.repeat(); ++r) {
      size_t failed_at = m;
      Status error;
      const auto t0 = Clock::now();
      for (size_t k = 0; k < m; ++k) {
        const std::byte* pair = batch.data() + k * pair_bytes;
        Status st = diff_into({pair, S}, {pair + S, S}, out);
        if (!st.ok()) [[unlikely]] {
          error = std::move(st);
          failed_at = k;
          break;
        }
      }
      secs[r] += seconds_since(t0);
      if (failed_at != m) {
        note("diff %s: FAILED: diff_into on the pair of delta %zu: %s", wl.c_str(),
             b0 + failed_at, error.to_string().c_str());
        return Outcome::kFailed;
      }
    }
    // Spot checks, outside the clock.
    for (size_t k : {size_t{0}, m / 2, m - 1}) {
      const std::byte* pair = batch.data() + k * pair_bytes;
      Status st = diff_into({pair, S}, {pair + S, S}, out);
      const std::string where = wl + " delta " + std::to_string(b0 + k);
      if (!st.ok()) {
        note("diff %s: FAILED: %s", where.c_str(), st.to_string().c_str());
        return Outcome::kFailed;
      }
      if (!check_diff(out, pair, pair + S, S, where)) return Outcome::kFailed;
    }
  }

  const double s = median(secs);
  const double mbps = static_cast<double>(n) * static_cast<double>(S) / s / kMB;
  JsonLine("diff", w.spec.name)
      .num("mb_per_s", mbps)
      .num("ratio_memcpy", mbps / ctx.memcpy_mb_per_s())
      .num("pairs_per_s", static_cast<double>(n) / s)
      .integer("pairs", static_cast<int64_t>(n))
      .num("seconds", s)
      .emit();
  return Outcome::kOk;
}

}  // namespace mmsb::bench
