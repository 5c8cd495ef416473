// Index: a recording's delta history decoded into memory once, with page
// lists, cause links and in-memory checkpoints, so that every question a
// debugger asks is answered without re-reading the files:
//
//   state at any epoch       nearest checkpoint, then that interval's deltas
//   one page at any epoch    the checkpoint's image of it, then its own deltas
//   diff of two epochs       only pages touched in between can differ
//   history of a page        its deltas, each with epoch, version, ranges
//   last writer of a byte    its deltas walked backwards
//   propagation              children by cause epoch, and the chain back
//
// Memory: every delta's ranges and bytes (about the size of the recording's
// delta frames; W1's random bytes do not compress), 32 bytes of bookkeeping
// per delta, and checkpoints (full state images) spaced so that they take at
// most IndexOptions::checkpoint_bytes. For a recording larger than memory use
// State, which streams frames from disk instead.
//
// Invariants: deltas are held in epoch order, one per epoch from
// first_epoch() to last_epoch() with no gap; a page's version after its k-th
// delta (k from 1) is base_version(page) + k; checkpoint i holds the state
// after epoch checkpoint_epoch(i), and checkpoint 0 is the start state.
// An Index is immutable once built, so const queries may run on several
// threads at once; StateView is a cursor and belongs to one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mmsb/arena.h"
#include "mmsb/replay/recording.h"

namespace mmsb::replay {

struct IndexOptions {
  // Upper bound on the memory of all checkpoints together (they are state
  // images). More checkpoints make seeks faster.
  uint64_t checkpoint_bytes = uint64_t{512} << 20;
  // Checkpoints are never closer than this many deltas (applying that many
  // small ones takes about a millisecond, so closer ones would cost memory
  // for little), unless the deltas are large: then one comes after each
  // state's worth (or log bytes / checkpoint slots) of delta bytes.
  uint64_t min_checkpoint_interval = 16384;
  // Called now and then while building with (deltas decoded, deltas total),
  // e.g. for a progress bar.
  std::function<void(uint64_t, uint64_t)> progress;
  // When set, read after each delta frame: once it is true, build() stops
  // and returns kFailedPrecondition ("cancelled").
  const std::atomic<bool>* cancel = nullptr;
};

// One recorded delta. Spans point into the Index and live as long as it.
struct DeltaInfo {
  Epoch epoch = 0;
  PageId page = kNoPage;
  Version version = 0;      // the page's version after this delta
  Epoch cause = kNoCause;   // the delta that caused it, if derived
  std::span<const Range> ranges;
  std::span<const std::byte> bytes;  // the new bytes of every range, in order

  bool derived() const noexcept { return cause != kNoCause; }
  uint64_t changed_bytes() const noexcept { return bytes.size(); }
  // As a DeltaView (with base_version = version - 1) for the engine's apply.
  DeltaView view() const noexcept { return DeltaView{page, version - 1, epoch, cause, ranges, bytes}; }
  // The value this delta wrote to byte `offset` of its page; nullopt if it
  // did not write that byte.
  std::optional<std::byte> byte_at(uint64_t offset) const noexcept;
};

// Bytes of one page that differ between two epochs.
struct PageDiff {
  PageId page = kNoPage;
  Version old_version = 0, new_version = 0;
  std::vector<Range> ranges;        // differing bytes, sorted, disjoint, maximal
  std::vector<std::byte> old_bytes;  // the ranges' bytes at epoch a, in order
  std::vector<std::byte> new_bytes;  // ... and at epoch b
  bool created = false;              // the page did not exist at epoch a
};

// The deltas a delta caused through the dependency graph, recursively.
struct CauseTree {
  Epoch epoch = 0;
  PageId page = kNoPage;
  std::vector<CauseTree> children;  // in epoch order
};

// A search through a page's deltas for one that writes a given byte, looking
// at no more than a given number of them.
struct WriterSearch {
  std::optional<DeltaInfo> writer;  // the delta found
  uint64_t looked = 0;              // the page's deltas examined
  Epoch last_looked = 0;            // the epoch of the last one examined (if looked > 0)
  bool stopped = false;             // the bound was reached with deltas left to examine
};

class Index {
 public:
  // Decodes every delta frame of `rec` (which must outlive the Index).
  // A frame whose payload fails its checks, or that holds a delta invalid
  // for its page, ends the history before it (see damage(), which names the
  // file, offset, epoch and page).
  static Result<std::unique_ptr<Index>> build(const Recording& rec, IndexOptions options = {});
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  const Recording& recording() const noexcept { return rec_; }
  // OK, or why the history ends early: a delta frame whose payload failed
  // its checks (file and offset in the message). Everything before it is
  // indexed; nothing after it is.
  const Status& damage() const noexcept { return damage_; }
  // The state is known from start_epoch() to last_epoch(); deltas exist for
  // epochs first_epoch()..last_epoch() (none if delta_count() == 0).
  Epoch start_epoch() const noexcept { return start_epoch_; }
  Epoch first_epoch() const noexcept { return first_epoch_; }
  Epoch last_epoch() const noexcept { return first_epoch_ + deltas_.size() - 1; }
  uint64_t delta_count() const noexcept { return deltas_.size(); }

  // ---- deltas ----
  // The delta that produced `epoch`; nullopt outside first_epoch()..last_epoch().
  std::optional<DeltaInfo> delta(Epoch epoch) const noexcept;
  // Epochs of the deltas to `page`, ascending (empty for an unknown page).
  std::span<const Epoch> page_epochs(PageId page) const noexcept;
  // The page's deltas with from <= epoch <= to.
  std::vector<DeltaInfo> history(PageId page, Epoch from, Epoch to) const;
  // The last delta at or before `epoch` that wrote byte `offset` of `page`;
  // nullopt if none did (the byte still holds its start value).
  std::optional<DeltaInfo> last_writer(PageId page, uint64_t offset, Epoch epoch) const;
  // The first delta after `epoch` that writes byte `offset` of `page`,
  // looking at no more than `max_deltas` of the page's deltas (a bound for
  // interactive use on hot pages); nullopt if none is found.
  std::optional<DeltaInfo> next_writer(PageId page, uint64_t offset, Epoch epoch,
                                       uint64_t max_deltas = UINT64_MAX) const;
  // The same two searches, bounded, saying how far they looked.
  WriterSearch find_last_writer(PageId page, uint64_t offset, Epoch epoch, uint64_t max_deltas) const;
  WriterSearch find_next_writer(PageId page, uint64_t offset, Epoch epoch, uint64_t max_deltas) const;
  // Epochs of the deltas to `page` in from < epoch <= to: how many, and
  // where (for density strips and "next/previous change" buttons).
  uint64_t count_between(PageId page, Epoch from, Epoch to) const noexcept;
  std::optional<Epoch> next_change(PageId page, Epoch after) const noexcept;
  std::optional<Epoch> prev_change(PageId page, Epoch before) const noexcept;

  // ---- pages ----
  // Pages that exist at `epoch` (ids are dense: 0 .. n-1).
  uint32_t page_count_at(Epoch epoch) const noexcept;
  // The page's version at `epoch` (after that epoch's delta).
  Version version_at(PageId page, Epoch epoch) const noexcept;
  // One page at `epoch`, without materializing the others. kOutOfRange for
  // an epoch outside the recording or a page that does not exist then.
  Status page_at(PageId page, Epoch epoch, std::vector<std::byte>* out) const;
  // Bytes [offset, offset + length) of the page at `epoch`: what the
  // checkpoint holds there plus the page's deltas since, clipped, so a
  // window of a big page costs the window. kOutOfRange as page_at, and for
  // bytes past the page's end.
  Status page_range(PageId page, Epoch epoch, uint64_t offset, uint64_t length, std::vector<std::byte>* out) const;
  // page_range at `epoch` for a caller that holds the same bytes at an
  // earlier epoch `from` (`known`: bytes [offset, offset + known.size())
  // then): it starts from them, applying the page's deltas in (from, epoch],
  // when that is fewer than from the nearest checkpoint. A viewer stepping
  // forward through a busy page pays for the steps, not the history.
  Status page_range_after(PageId page, Epoch from, std::span<const std::byte> known, Epoch epoch, uint64_t offset,
                          std::vector<std::byte>* out) const;

  // ---- differences ----
  // Every page whose bytes differ between epochs a and b (a <= b or a > b),
  // in page order; only pages touched between them are compared.
  Result<std::vector<PageDiff>> diff(Epoch a, Epoch b) const;
  Result<PageDiff> diff_page(PageId page, Epoch a, Epoch b) const;

  // ---- propagation ----
  // The derived deltas whose cause is `epoch`, in epoch order.
  std::span<const Epoch> children(Epoch epoch) const noexcept;
  // The whole tree of deltas caused by `epoch`, recursively. The root's
  // page is kNoPage when no delta of this index has that epoch (a cause
  // from before the recording began: its children are still found).
  CauseTree caused_tree(Epoch epoch) const;
  // `epoch`, its cause, the cause's cause, ... up to the root (not derived).
  // Always starts with `epoch`, even one no delta here has (then alone); a
  // root from before the recording began ends the chain.
  std::vector<Epoch> cause_chain(Epoch epoch) const;

  // ---- checkpoints ----
  size_t checkpoint_count() const noexcept { return checkpoints_.size(); }
  Epoch checkpoint_epoch(size_t i) const noexcept { return checkpoints_[i].epoch; }
  uint64_t interval() const noexcept { return interval_; }  // at most this many deltas apart
  uint64_t memory_bytes() const noexcept;

 private:
  friend class StateView;
  friend class IndexBuilder;  // fills an Index (src/index_builder.h)
  struct Rec {  // one delta; 32 bytes
    PageId page;
    uint32_t range_count;
    uint64_t range_begin;  // into ranges_
    uint64_t byte_begin;   // into bytes_
    Epoch cause;
  };
  struct Checkpoint {
    Epoch epoch;
    std::byte* image;  // every page that exists at `epoch`, at page_offset_
  };
  explicit Index(const Recording& rec) : rec_(rec), arena_(size_t{256} << 20, /*huge_pages=*/true) {}
  DeltaInfo info(uint64_t i) const noexcept;
  DeltaView raw(uint64_t i) const noexcept;  // ranges and bytes only: for applying
  bool writes(uint64_t i, uint64_t offset) const noexcept;  // delta i covers byte offset
  WriterSearch find_writer(PageId page, uint64_t offset, Epoch epoch, uint64_t max_deltas, bool forward) const;
  uint64_t apply_cost(Epoch from, Epoch to) const noexcept;  // of deltas from < e <= to, in bytes
  const Checkpoint& checkpoint_before(Epoch epoch) const noexcept;  // last one at or before
  // kOutOfRange unless the page exists at `epoch` and holds the bytes.
  Status check_range(PageId page, Epoch epoch, uint64_t offset, uint64_t length) const;
  // Bytes [w0, w1) of `page` at `epoch` (which must exist then) into `out`.
  void page_window(PageId page, Epoch epoch, uint64_t w0, uint64_t w1, std::vector<std::byte>* out) const;
  // The page's deltas in (after, upto], clipped to [w0, w0 + out.size()), into out.
  void apply_window(PageId page, Epoch after, Epoch upto, uint64_t w0, std::span<std::byte> out) const;

  const Recording& rec_;
  MmapArena arena_;
  Epoch start_epoch_ = 0;
  Epoch first_epoch_ = 1;
  std::vector<Rec> deltas_;
  std::vector<Range> ranges_;
  std::vector<std::byte> bytes_;
  std::vector<uint64_t> page_offset_;   // page -> offset in a state image
  uint64_t state_bytes_ = 0;            // all pages of the recording
  std::vector<Version> base_version_;   // page -> version at start_epoch()
  std::vector<uint64_t> page_begin_;    // CSR: page -> [begin, end) in page_epochs_
  std::vector<Epoch> page_epochs_;
  std::vector<uint64_t> child_begin_;   // CSR over derived deltas, by cause
  std::vector<Epoch> child_causes_;     // sorted cause epochs (keys)
  std::vector<Epoch> child_epochs_;
  std::vector<Checkpoint> checkpoints_;
  uint64_t interval_ = 0;
  bool running_image_ = true;  // the build's running image outlives it (false: it became checkpoint 0)
  Status damage_;
};

// A whole state that moves between epochs. Forward moves apply only the
// deltas in between; other moves start from the nearest checkpoint, page by
// page. The spans it returns stay valid until the next seek.
class StateView {
 public:
  explicit StateView(const Index& index);
  ~StateView();
  StateView(const StateView&) = delete;
  StateView& operator=(const StateView&) = delete;

  Status seek(Epoch epoch);  // kOutOfRange outside start_epoch()..last_epoch()
  Epoch epoch() const noexcept { return epoch_; }
  uint32_t page_count() const noexcept { return index_.page_count_at(epoch_); }
  std::span<const std::byte> page(PageId id) const noexcept;
  Version version(PageId id) const noexcept { return index_.version_at(id, epoch_); }
  uint64_t state_hash() const;

 private:
  const Index& index_;
  MmapArena arena_;
  std::byte* image_ = nullptr;  // every page of the recording, laid out as in the Index
  Epoch epoch_ = 0;
};

}  // namespace mmsb::replay
