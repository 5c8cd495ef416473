// apply: a fresh mmsb::Bus (default options: no recorder, nothing attached),
// the workload's P pages created in index order as p0..p{P-1}, then every
// delta applied with Bus::apply in workload order. Only the apply loop is
// timed; each DeltaView is built on the stack over the pre-generated arrays
// (one Range), with base_version taken from a plain per-page counter.
//   deltas_per_s   deltas applied per second
//   mb_per_s       changed bytes applied per second (sum of delta lengths)
//   ratio_memcpy   mb_per_s / the memcpy_mb_per_s of this workload's run
// Outside the clock, every run's final state, versions and epoch are checked
// against a plain byte-array model; a mismatch fails the bench.
#include <cstring>
#include <memory>
#include <string>

#include "apply_loop.h"
#include "json.h"
#include "mmsb/bus.h"
#include "registry.h"

namespace mmsb::bench {

namespace {

struct Model {
  std::vector<std::byte> state;
  std::vector<uint64_t> versions;
};

Model build_model(const Workload& w) {
  Model m;
  m.state.assign(w.state_bytes(), std::byte{0});
  m.versions.assign(w.spec.pages, 0);
  for (size_t i = 0; i < w.count(); ++i) {
    std::memcpy(m.state.data() + uint64_t{w.page[i]} * w.spec.page_size + w.offset[i],
                w.delta_bytes(i), w.length[i]);
    ++m.versions[w.page[i]];
  }
  return m;
}

bool check_against_model(const Bus& bus, const std::vector<PageId>& ids, const Model& m,
                         const Workload& w) {
  const std::string wl(w.spec.name);
  if (bus.epoch() != w.count()) {
    note("apply %s: FAILED: bus epoch %llu after %zu deltas", wl.c_str(),
         static_cast<unsigned long long>(bus.epoch()), w.count());
    return false;
  }
  const size_t S = w.spec.page_size;
  for (uint32_t p = 0; p < w.spec.pages; ++p) {
    std::span<const std::byte> bytes = bus.page_bytes(ids[p]);
    if (bytes.size() != S || std::memcmp(bytes.data(), m.state.data() + p * S, S) != 0) {
      note("apply %s: FAILED: page p%u differs from the model after all deltas", wl.c_str(), p);
      return false;
    }
    Result<PageInfo> info = bus.info(ids[p]);
    if (!info.ok() || info->version != m.versions[p]) {
      note("apply %s: FAILED: page p%u version %llu, expected %llu", wl.c_str(), p,
           info.ok() ? static_cast<unsigned long long>(info->version) : 0ull,
           static_cast<unsigned long long>(m.versions[p]));
      return false;
    }
  }
  return true;
}

}  // namespace

Status create_workload_pages(Bus& bus, const Workload& w, std::vector<PageId>* ids) {
  ids->resize(w.spec.pages);
  std::string name;
  for (uint32_t p = 0; p < w.spec.pages; ++p) {
    name.assign(1, 'p');
    name += std::to_string(p);  // (not "p" + ...: GCC 12 -O3 gives a bogus -Wrestrict)
    Result<PageId> id = bus.create_page(w.spec.page_size, name);
    if (!id.ok())
      return Status(id.status().code(), "create_page " + name + ": " + id.status().message());
    (*ids)[p] = *id;
  }
  return Status::OK();
}

ApplyLoop apply_workload(Bus& bus, const Workload& w, const std::vector<PageId>& ids,
                         std::vector<Version>& versions) {
  const size_t n = w.count();
  versions.assign(w.spec.pages, Version{0});
  ApplyLoop out;
  out.failed_at = n;
  out.start = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    const uint32_t p = w.page[i];
    const Range range{w.offset[i], w.length[i]};
    DeltaView d;
    d.page = ids[p];
    d.base_version = versions[p]++;
    d.ranges = std::span<const Range>(&range, 1);
    d.bytes = std::span<const std::byte>(w.delta_bytes(i), range.length);
    Status st = bus.apply(d);
    if (!st.ok()) [[unlikely]] {
      out.error = std::move(st);
      out.failed_at = i;
      break;
    }
  }
  out.seconds = seconds_since(out.start);
  return out;
}

Outcome run_apply(Context& ctx) {
  const Workload& w = ctx.workload;
  const std::string wl(w.spec.name);
  const size_t n = w.count();
  const Model model = build_model(w);

  std::vector<PageId> ids;
  std::vector<Version> versions;
  std::vector<double> secs;
  for (int r = 0; r < ctx.repeat(); ++r) {
    auto bus = std::make_unique<Bus>();
    if (Status st = create_workload_pages(*bus, w, &ids); !st.ok()) {
      note("apply %s: FAILED: %s", wl.c_str(), st.to_string().c_str());
      return Outcome::kFailed;
    }
    const ApplyLoop run = apply_workload(*bus, w, ids, versions);
    if (!run.ok()) {
      note("apply %s: FAILED: delta %zu (page p%u): %s", wl.c_str(), run.failed_at,
           w.page[run.failed_at], run.error.to_string().c_str());
      return Outcome::kFailed;
    }
    if (!check_against_model(*bus, ids, model, w)) return Outcome::kFailed;
    secs.push_back(run.seconds);
    bus.reset();  // outside the clock
  }

  const double s = median(secs);
  const double mbps = static_cast<double>(w.total_bytes) / s / kMB;
  JsonLine("apply", w.spec.name)
      .num("deltas_per_s", static_cast<double>(n) / s)
      .num("mb_per_s", mbps)
      .num("ratio_memcpy", mbps / ctx.memcpy_mb_per_s())
      .integer("deltas", static_cast<int64_t>(n))
      .num("seconds", s)
      .emit();
  return Outcome::kOk;
}

}  // namespace mmsb::bench
