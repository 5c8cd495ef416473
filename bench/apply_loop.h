// The apply loop of the `apply` bench, shared with `record` so that both time
// exactly the same application-thread code (implemented in bench_apply.cc).
#pragma once

#include <vector>

#include "common.h"
#include "mmsb/bus.h"

namespace mmsb::bench {

// Creates the workload's P pages on `bus` in index order, named p0..p{P-1};
// (*ids)[i] is page i's id. Not timed.
Status create_workload_pages(Bus& bus, const Workload& w, std::vector<PageId>* ids);

struct ApplyLoop {
  Clock::time_point start;  // when the clock started (just before delta 0)
  double seconds = 0;       // the loop alone
  size_t failed_at = 0;     // index of the refused delta; w.count() when all were applied
  Status error;             // why it was refused
  bool ok() const noexcept { return error.ok(); }
};

// Applies every delta of `w` in workload order with Bus::apply: one DeltaView
// with one Range each, built on the stack over the pre-generated arrays, with
// base_version from a plain per-page counter (the pages must be fresh, at
// version 0). `versions` is scratch, reset before the clock starts. Only the
// loop is timed.
ApplyLoop apply_workload(Bus& bus, const Workload& w, const std::vector<PageId>& ids,
                         std::vector<Version>& versions);

}  // namespace mmsb::bench
