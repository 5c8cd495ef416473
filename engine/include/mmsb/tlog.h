// The in-memory TLog: every page creation and every applied delta, in epoch
// order, in a ring of bounded size.
//
// The bus appends records while holding its write lock. Records are laid out
// contiguously in the ring (a padding record fills the end before a wrap), so a
// reader gets a DeltaView that points straight into the ring: no copy.
//
// Slow consumers -- the policy. The ring keeps the last `capacity` bytes of
// the record stream. A consumer reads through a Cursor, which is one of:
//   - pinned: the producer never overwrites records a pinned cursor has not
//     consumed. When the ring is full, the producer (the writing thread) waits
//     until the consumer advances: back-pressure, nothing dropped. Pinned
//     cursors read without the bus lock (the recorder's writer thread).
//   - unpinned: the producer overwrites old records freely. A cursor whose
//     records were overwritten gets kLagged from read() -- never a silent gap --
//     and must resync from a full copy of the state (CpuMirror does so).
//     Unpinned cursors read while holding the bus write lock.
// Open pinned cursors under Bus::lock_writes(), so no record is appended
// between reading the head and registering the cursor. A pinned consumer must
// never wait for the bus lock while it has records to consume: a producer
// blocked on a full ring holds that lock (see Bus::try_lock_writes).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

#include "mmsb/delta.h"

namespace mmsb {

enum class RecordKind : uint16_t { kPadding = 0, kDelta = 1, kPageCreated = 2 };

struct PageCreatedView {
  PageId page = kNoPage;
  uint64_t size = 0;
  Epoch epoch = 0;  // the bus epoch when the page was created
  std::string_view name;
};

// One record read from the ring; views stay valid until the cursor advances
// past it (pinned) or the bus lock is released (unpinned). A reading loop
// keeps one outside the loop: constructing one zeroes ~120 bytes.
struct TLogRecord {
  RecordKind kind = RecordKind::kPadding;
  DeltaView delta;        // kDelta
  PageCreatedView page;   // kPageCreated
  uint64_t next = 0;      // stream position just after this record
};

class TLog {
 public:
  static constexpr size_t kMaxPinned = 8;
  static constexpr size_t kHeaderBytes = 48;

  class Cursor {
   public:
    uint64_t position() const noexcept { return pos_; }
    bool pinned() const noexcept { return slot_ >= 0; }

   private:
    friend class TLog;
    uint64_t pos_ = 0;
    uint64_t head_seen_ = 0;  // pinned: a head already loaded (<= the head)
    uint64_t published_ = 0;  // pinned: the position the producer sees
    int slot_ = -1;
  };

  // capacity is rounded up to a power of two, at least 64 KiB.
  explicit TLog(size_t capacity);
  ~TLog();
  TLog(const TLog&) = delete;
  TLog& operator=(const TLog&) = delete;

  size_t capacity() const noexcept { return capacity_; }
  // The largest record the ring accepts (half its capacity).
  size_t max_record_bytes() const noexcept { return capacity_ / 2; }
  static size_t delta_record_bytes(const DeltaView& d) noexcept {
    return pad8(kHeaderBytes + d.ranges.size() * sizeof(Range) + d.bytes.size());
  }
  // Stream position of the next record to be written.
  uint64_t head() const noexcept { return head_.load(std::memory_order_acquire); }

  // --- producer (one at a time: the bus holds its write lock) ---
  // The caller checked delta_record_bytes(d) <= max_record_bytes().
  void append_delta(const DeltaView& d);
  void append_page_created(const PageCreatedView& p);

  // Appends that waited for a pinned consumer so far (the ring was full).
  uint64_t producer_waits() const noexcept { return producer_waits_.load(std::memory_order_relaxed); }

  // --- consumers ---
  // A cursor at the current head. kResourceExhausted if kMaxPinned pinned
  // cursors are open.
  Result<Cursor> open(bool pinned);
  void close(Cursor& c);
  // The record at the cursor. *got = false when the cursor is at the head.
  // kLagged when an unpinned cursor's records were overwritten.
  Status read(Cursor& c, TLogRecord* rec, bool* got) const;
  // Moves the cursor past `rec` (which read() returned for it). A pinned
  // cursor shows its position to the producer every 1/16 of the ring and on
  // commit(), not per record: consumer and producer do not share a cache
  // line per record.
  void advance(Cursor& c, const TLogRecord& rec);
  // Shows a pinned cursor's position to the producer now (a consumer calls it
  // when it has drained what there was).
  void commit(Cursor& c);
  // Commits, then waits up to `timeout` until at least `min_bytes` of
  // records are past the cursor; true if they are. With min_bytes > 1 the
  // consumer sleeps instead of spinning and then takes a long run of records
  // at once, well behind the head: it does not pull the lines the producer is
  // writing (or head_) to its core record by record.
  bool wait(Cursor& c, std::chrono::microseconds timeout, size_t min_bytes = 1);
  // A sleeping consumer is woken each time the head crosses a multiple of
  // this many bytes (and by its own timeout).
  size_t wake_bytes() const noexcept { return capacity_ / 16; }

  // --- reading a span on several threads (the bus write lock held) ---
  // The record index: for each kIndexBlockBytes-aligned block of the record
  // stream, the position of the first record (padding aside) that starts
  // in it, kept by the producer at one compare per append. Lets threads
  // each walk a part of [cursor, head) from a known record start.
  static constexpr unsigned kIndexShift = 16;
  static constexpr uint64_t kIndexBlockBytes = uint64_t{1} << kIndexShift;
  // The position of the first record that starts in [from rounded up to a
  // block, end), or `end` if none does. [from, end) must lie within
  // [head - capacity, head], and no append may run meanwhile.
  uint64_t first_record_from(uint64_t from, uint64_t end) const noexcept;
  // The record that starts at stream position `pos`, with no head or lag
  // check: the caller knows pos is a record start in the ring and holds the
  // bus write lock. A padding record comes back as kPadding (next is past
  // it): skip it.
  void read_at(uint64_t pos, TLogRecord* rec) const noexcept;

 private:
  static constexpr size_t pad8(size_t n) noexcept { return (n + 7) & ~size_t{7}; }
  // Makes room for `bytes` contiguous bytes at the head (wrapping with a
  // padding record if needed; waiting for pinned cursors) and returns where;
  // *start is the record's stream position.
  std::byte* reserve(size_t bytes, uint64_t* start);
  std::byte* reserve_slow(size_t bytes, uint64_t* start);  // wrap or wait
  void index(uint64_t start) noexcept {  // a record starts at `start`
    if (((start ^ last_start_) >> kIndexShift) != 0)
      index_[(start >> kIndexShift) & index_mask_].store(start, std::memory_order_relaxed);
    last_start_ = start;
  }
  uint64_t pinned_low_water() const noexcept;
  void publish(uint64_t new_head);

  // Read-only after construction.
  size_t capacity_;
  size_t mask_;
  std::unique_ptr<std::byte[]> ring_;
  // Written by the producer per record; read by consumers.
  alignas(64) std::atomic<uint64_t> head_{0};
  // Per index block (capacity / kIndexBlockBytes of them, at least one):
  // the stream position of the first record that started in the block when
  // it last held records; entries of blocks no record started in are stale
  // (they name an older block) and are recognized as such.
  std::unique_ptr<std::atomic<uint64_t>[]> index_;
  size_t index_mask_;
  // Producer-only.
  alignas(64) uint64_t low_water_cache_ = 0;  // last known pinned minimum
  uint64_t last_start_ = ~uint64_t{0};        // the last record's position
  std::atomic<uint64_t> producer_waits_{0};   // written by the producer only
  // Each pinned consumer writes its own cache line.
  struct alignas(64) Pin {
    std::atomic<uint64_t> pos{0};
    std::atomic<bool> used{false};
  };
  Pin pins_[kMaxPinned];
  std::mutex pin_mu_;  // guards opening/closing pinned slots

  // Producer waits for space; consumers wait for data. Both only sleep when
  // they must; the other side notifies only when someone sleeps. The counts
  // change only around sleeps, so the line stays shared-clean.
  alignas(64) std::atomic<int> producer_waiting_{0};
  std::atomic<int> consumers_waiting_{0};
  std::mutex wait_mu_;
  std::condition_variable space_cv_;
  std::condition_variable data_cv_;
};

}  // namespace mmsb
