// The whole-recording tools behind `mmsb-replay verify | compare | recover |
// export` and the samples: each returns a report a caller can print or turn
// into JSON, and never changes a recording except recover().
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mmsb/bus.h"
#include "mmsb/replay/index.h"
#include "mmsb/replay/recording.h"

namespace mmsb::replay {

// (done, total) in any unit; called now and then from long loops.
using Progress = std::function<void(uint64_t, uint64_t)>;

// ---- verify ----
struct VerifyReport {
  bool ok = true;
  bool opened = true;  // false: not a readable recording at all (missing, not MMSB, newer major version)
  // The first problem: what, with file and offset, and the epoch, page and
  // segment it concerns (0 / kNoPage / -1 when not known).
  std::string problem;
  std::string file;
  uint64_t offset = 0;
  Epoch epoch = 0;
  PageId page = kNoPage;
  // recover() cuts or repairs what was found (false: a problem it cannot
  // fix -- a recording whose writer still runs, or whose index cannot be
  // built from well-formed frames).
  bool recoverable = true;
  // A process was writing the recording (Recording::live()): an open
  // segment or torn tail is its writer's work in flight, not damage.
  bool live = false;
  // The problem is segment files missing after the last one
  // (Recording::missing_end()): they may exist elsewhere.
  bool end_missing = false;
  // What was checked.
  uint64_t frames = 0, deltas = 0, snapshots = 0, snapshot_pages = 0, bytes = 0;
};
// Reads every frame of every segment and checks its checksum and FlatBuffer,
// every delta batch's and snapshot part's columns; epochs contiguous; every delta valid for its page (versions then count up
// by one); every complete snapshot's images and versions equal to the state
// that replaying the deltas before it gives; every segment closed with an
// index that matches its frames (an open last segment is reported, as
// still being written when a process holds the recording's writer lock).
VerifyReport verify(const std::filesystem::path& dir, const Progress& progress = {});

// ---- compare ----
struct ByteRange {
  PageId page = kNoPage;  // kNoPage: in every page
  uint64_t offset = 0, length = 0;
};
struct CompareOptions {
  // Page names (or ids as decimal) in A or B; compare() fails with
  // kInvalidArgument for one neither has, and for a range on one page that
  // starts past its end.
  std::vector<std::string> ignore_pages;
  std::vector<ByteRange> ignore_ranges;
  bool final_only = false;  // compare only the last states
};
struct CompareReport {
  enum class Outcome { kIdentical, kDiverged, kPrefix };
  Outcome outcome = Outcome::kIdentical;
  std::string summary;  // one line for people; page names in it pass through printable() (text.h)
  // kDiverged: the first epoch after which the (unignored) states differ,
  // or where the page tables differ, and the differing bytes of one page.
  Epoch epoch = 0;
  PageId page = kNoPage;
  std::string page_name;
  std::vector<Range> ranges;
  std::vector<std::byte> a_bytes, b_bytes;  // the ranges' bytes in A and B
  // Other pages whose (unignored) bytes differ at that epoch, ascending:
  // the other run's delta page (epoch by epoch), or every other page
  // (final_only, the start state).
  std::vector<PageId> also_differ;
  // kPrefix: which run stops early ("a" or "b") and both last epochs.
  std::string shorter;
  Epoch a_last = 0, b_last = 0;
  uint64_t epochs_compared = 0;
};
// Compares the state histories of two recordings epoch by epoch (state after
// each epoch, page tables included), or only their final states.
Result<CompareReport> compare(const Index& a, const Index& b, const CompareOptions& options,
                              const Progress& progress = {});

// ---- recover ----
struct RecoverReport {
  enum class Outcome { kIntact, kCut, kNothing };
  Outcome outcome = Outcome::kIntact;
  std::string summary;
  Epoch last_good_epoch = 0;
  uint64_t deltas_kept = 0;
  uint64_t bytes_cut = 0;                          // torn or unreadable bytes removed
  Epoch lost_last = 0;  // > last_good_epoch: the cut frames' headers claimed deltas up to this epoch
  std::vector<std::filesystem::path> set_aside;   // files the cut bytes were (dry run: would be) saved to
  std::vector<std::string> actions;               // what was done (dry run: would be), one line each
};
// Makes a recording whose writer died readable by everything: cuts each
// segment after its last good frame (the cut bytes are kept beside it as
// <segment>.damaged, never deleted), sets aside segments after a break in the
// history, closes every segment that has no index with an index and a
// trailer, and marks the last segment it keeps as the recording's end (from
// format 1.1 on; Recording::missing_end() otherwise, an outcome kCut). A snapshot part that fails its checks, or a snapshot whose images
// disagree with the deltas before it, is dropped instead (its segment
// rewritten without it, the dropped bytes in <segment>.damaged): no epoch
// is lost for it. dry_run reports what would be done and changes nothing.
// kFailedPrecondition while a process is still writing the recording (it
// holds the writer lock, format::DirLock): what looks torn is in flight.
// progress: (payload bytes checked, total) while every frame is read.
Result<RecoverReport> recover(const std::filesystem::path& dir, bool dry_run = false, const Progress& progress = {});

// ---- export / restore ----
struct ExportReport {
  Epoch epoch = 0;
  uint32_t pages = 0;
  uint64_t bytes = 0;
  std::filesystem::path manifest;
};
// Writes the state at `epoch` into `out_dir` (which must not exist, or be an
// empty directory):
// one raw file per page, page-<id>.bin, and manifest.json listing each page's
// id, name, size, version, file and XXH3-64 hash, and the state hash.
Result<ExportReport> export_state(const Index& index, Epoch epoch, const std::filesystem::path& out_dir);

// Recreates the state at `epoch` in `bus`, which must hold no pages: the
// same pages (ids, names, sizes) with the same bytes, each written as one
// assign. The bus's epoch and versions start afresh.
Status restore(const Index& index, Epoch epoch, Bus& bus);

}  // namespace mmsb::replay
