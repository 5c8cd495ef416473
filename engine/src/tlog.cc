#include "mmsb/tlog.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <string>

namespace mmsb {
namespace {

// Fixed header at the start of every record (48 bytes, 8-aligned):
//   u32 size  (whole record, header included, padded to 8)
//   u16 kind  u16 reserved
//   u32 page  u32 count (delta: ranges; page created: name length)
//   u64 base_version (page created: page size)
//   u64 epoch  u64 cause  u64 nbytes
struct Header {
  uint32_t size;
  uint16_t kind;
  uint16_t reserved;
  uint32_t page;
  uint32_t count;
  uint64_t base_version;
  uint64_t epoch;
  uint64_t cause;
  uint64_t nbytes;
};
static_assert(sizeof(Header) == TLog::kHeaderBytes);

constexpr size_t kPrefetchAhead = 1024;

}  // namespace

TLog::TLog(size_t capacity) {
  if (capacity < (size_t{64} << 10)) capacity = size_t{64} << 10;
  capacity_ = std::bit_ceil(capacity);
  mask_ = capacity_ - 1;
  // Uninitialized: pages of the ring become resident only as records reach them.
  ring_.reset(new std::byte[capacity_]);
  const size_t blocks = std::max<size_t>(capacity_ >> kIndexShift, 1);
  index_mask_ = blocks - 1;
  index_.reset(new std::atomic<uint64_t>[blocks]);
  for (size_t b = 0; b < blocks; ++b) index_[b].store(~uint64_t{0}, std::memory_order_relaxed);  // names no block
}

TLog::~TLog() = default;

uint64_t TLog::pinned_low_water() const noexcept {
  uint64_t low = head_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kMaxPinned; ++i) {
    if (pins_[i].used.load(std::memory_order_acquire)) {
      uint64_t p = pins_[i].pos.load(std::memory_order_acquire);
      if (p < low) low = p;
    }
  }
  return low;
}

inline std::byte* TLog::reserve(size_t bytes, uint64_t* start) {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  const size_t off = head & mask_;
  const size_t contiguous = capacity_ - off;
  if (bytes <= contiguous && head + bytes - low_water_cache_ <= capacity_) [[likely]] {
    *start = head;
#if defined(__x86_64__)
    // The lines just ahead were last read by a consumer on another core.
    // Ask for them in exclusive state now (PREFETCHW; a no-op where
    // unsupported), so the stores of the next records do not wait for that
    // transfer when the bus's unlock drains the store buffer.
    const std::byte* ahead = ring_.get() + ((off + kPrefetchAhead) & mask_);
    asm volatile("prefetchw %0" ::"m"(*ahead));
    asm volatile("prefetchw %0" ::"m"(*(ahead + 64)));
#endif
    return ring_.get() + off;
  }
  return reserve_slow(bytes, start);
}

std::byte* TLog::reserve_slow(size_t bytes, uint64_t* start) {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  const size_t off = head & mask_;
  const size_t contiguous = capacity_ - off;
  const size_t need = bytes <= contiguous ? bytes : contiguous + bytes;
  // low_water_cache_ never exceeds the true pinned minimum, so this test is
  // conservative; it is refreshed only when it fails.
  if (head + need - low_water_cache_ > capacity_) {
    low_water_cache_ = pinned_low_water();
    if (head + need - low_water_cache_ > capacity_)
      producer_waits_.store(producer_waits_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // A consumer that is keeping up frees space within microseconds: spin a
    // little before sleeping.
    for (int spin = 0; spin < 4096 && head + need - low_water_cache_ > capacity_; ++spin) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      low_water_cache_ = pinned_low_water();
    }
    while (head + need - low_water_cache_ > capacity_) {
      // Back-pressure: a pinned consumer still needs the bytes we would
      // overwrite. Sleep until it advances (timed, so no wakeup is lost).
      producer_waiting_.fetch_add(1, std::memory_order_acq_rel);
      {
        std::unique_lock<std::mutex> lk(wait_mu_);
        space_cv_.wait_for(lk, std::chrono::milliseconds(1));
      }
      producer_waiting_.fetch_sub(1, std::memory_order_acq_rel);
      low_water_cache_ = pinned_low_water();
    }
  }
  if (bytes > contiguous) {
    // Padding to the end of the ring; the record starts at offset 0.
    Header pad{};
    pad.size = static_cast<uint32_t>(contiguous);
    pad.kind = static_cast<uint16_t>(RecordKind::kPadding);
    std::memcpy(ring_.get() + off, &pad, 8);  // size + kind fit in 8 bytes
    *start = head + contiguous;
    return ring_.get();
  }
  *start = head;
  return ring_.get() + off;
}

void TLog::publish(uint64_t new_head) {
  const uint64_t old = head_.load(std::memory_order_relaxed);
  head_.store(new_head, std::memory_order_release);
  // Wake a sleeping consumer only once the ring fills up a bit: consumers
  // also wake on their own timeout, so idle producers make no syscalls.
  if (consumers_waiting_.load(std::memory_order_acquire) > 0 &&
      ((old ^ new_head) & ~(uint64_t{wake_bytes()} - 1)) != 0) {
    data_cv_.notify_all();
  }
}

namespace {
template <class T>
inline void store(std::byte* p, T v) noexcept {
  std::memcpy(p, &v, sizeof v);
}
// Writes the header field by field straight into the ring (building it on
// the stack first costs a store-forwarding stall on every record).
inline void store_header(std::byte* p, uint32_t size, RecordKind kind, uint32_t page, uint32_t count,
                         uint64_t base_version, uint64_t epoch, uint64_t cause, uint64_t nbytes) noexcept {
  store<uint32_t>(p + offsetof(Header, size), size);
  store<uint16_t>(p + offsetof(Header, kind), static_cast<uint16_t>(kind));
  store<uint16_t>(p + offsetof(Header, reserved), 0);
  store<uint32_t>(p + offsetof(Header, page), page);
  store<uint32_t>(p + offsetof(Header, count), count);
  store<uint64_t>(p + offsetof(Header, base_version), base_version);
  store<uint64_t>(p + offsetof(Header, epoch), epoch);
  store<uint64_t>(p + offsetof(Header, cause), cause);
  store<uint64_t>(p + offsetof(Header, nbytes), nbytes);
}
}  // namespace

void TLog::append_delta(const DeltaView& d) {
  const size_t size = delta_record_bytes(d);
  uint64_t start;
  std::byte* p = reserve(size, &start);
  index(start);
  store_header(p, static_cast<uint32_t>(size), RecordKind::kDelta, d.page,
               static_cast<uint32_t>(d.ranges.size()), d.base_version, d.epoch, d.cause, d.bytes.size());
  std::byte* q = p + kHeaderBytes;
  if (d.ranges.size() == 1) {
    store<Range>(q, d.ranges[0]);
    q += sizeof(Range);
  } else {
    std::memcpy(q, d.ranges.data(), d.ranges.size() * sizeof(Range));
    q += d.ranges.size() * sizeof(Range);
  }
  std::memcpy(q, d.bytes.data(), d.bytes.size());
  publish(start + size);
}

void TLog::append_page_created(const PageCreatedView& pc) {
  const size_t size = pad8(kHeaderBytes + pc.name.size());
  uint64_t start;
  std::byte* p = reserve(size, &start);
  index(start);
  store_header(p, static_cast<uint32_t>(size), RecordKind::kPageCreated, pc.page,
               static_cast<uint32_t>(pc.name.size()), pc.size, pc.epoch, 0, 0);
  if (!pc.name.empty()) std::memcpy(p + kHeaderBytes, pc.name.data(), pc.name.size());  // data() may be null
  publish(start + size);
}

Result<TLog::Cursor> TLog::open(bool pinned) {
  Cursor c;
  if (!pinned) {
    c.pos_ = head_.load(std::memory_order_acquire);
    return c;
  }
  std::lock_guard<std::mutex> lock(pin_mu_);
  for (size_t i = 0; i < kMaxPinned; ++i) {
    if (!pins_[i].used.load(std::memory_order_relaxed)) {
      c.pos_ = c.head_seen_ = c.published_ = head_.load(std::memory_order_acquire);
      c.slot_ = static_cast<int>(i);
      pins_[i].pos.store(c.pos_, std::memory_order_release);
      pins_[i].used.store(true, std::memory_order_release);
      return c;
    }
  }
  return Status(Code::kResourceExhausted,
                "all " + std::to_string(kMaxPinned) + " pinned TLog cursors are in use; close one first");
}

void TLog::close(Cursor& c) {
  if (c.slot_ < 0) return;
  {
    std::lock_guard<std::mutex> lock(pin_mu_);
    pins_[c.slot_].used.store(false, std::memory_order_release);
  }
  c.slot_ = -1;
  if (producer_waiting_.load(std::memory_order_acquire) > 0) space_cv_.notify_all();
}

Status TLog::read(Cursor& c, TLogRecord* rec, bool* got) const {
  *got = false;
  uint64_t pos = c.pos_;
  uint64_t head;
  if (c.slot_ >= 0) {
    // Pinned: what the producer published stays until we release it, so a
    // head loaded earlier is still good; load it again only when reached.
    if (pos == c.head_seen_) c.head_seen_ = head_.load(std::memory_order_acquire);
    head = c.head_seen_;
  } else {
    head = head_.load(std::memory_order_acquire);
    if (head - pos > capacity_)
      return Status(Code::kLagged, "TLog consumer at stream position " + std::to_string(pos) +
                                       " fell behind the ring (head " + std::to_string(head) + ", capacity " +
                                       std::to_string(capacity_) + " bytes); resync from a full copy");
  }
  if (pos == head) return Status::OK();
  read_at(pos, rec);
  if (rec->kind == RecordKind::kPadding) {
    if (rec->next == head) return Status::OK();  // not reached: padding is published with its record
    read_at(rec->next, rec);
  }
  *got = true;
  return Status::OK();
}

void TLog::read_at(uint64_t pos, TLogRecord* rec) const noexcept {
  const std::byte* p = ring_.get() + (pos & mask_);
  Header h;
  std::memcpy(&h, p, 8);  // a padding record may hold only its size and kind
  if (h.kind == static_cast<uint16_t>(RecordKind::kPadding)) {
    rec->kind = RecordKind::kPadding;
    rec->next = pos + h.size;
    return;
  }
  std::memcpy(&h, p, sizeof h);
  rec->kind = static_cast<RecordKind>(h.kind);
  rec->next = pos + h.size;
  if (rec->kind == RecordKind::kDelta) {
    const auto* ranges = reinterpret_cast<const Range*>(p + sizeof h);
    rec->delta = DeltaView{h.page,
                           h.base_version,
                           h.epoch,
                           h.cause,
                           std::span<const Range>(ranges, h.count),
                           std::span<const std::byte>(p + sizeof h + h.count * sizeof(Range), h.nbytes)};
  } else {
    rec->page = PageCreatedView{h.page, h.base_version, h.epoch,
                                std::string_view(reinterpret_cast<const char*>(p + sizeof h), h.count)};
  }
}

uint64_t TLog::first_record_from(uint64_t from, uint64_t end) const noexcept {
  for (uint64_t b = (from + kIndexBlockBytes - 1) >> kIndexShift; (b << kIndexShift) < end; ++b) {
    const uint64_t at = index_[b & index_mask_].load(std::memory_order_relaxed);
    if ((at >> kIndexShift) == b) return std::min(at, end);  // else no record started in block b
  }
  return end;
}

void TLog::advance(Cursor& c, const TLogRecord& rec) {
  c.pos_ = rec.next;
  if (c.slot_ >= 0 && c.pos_ - c.published_ >= capacity_ / 16) commit(c);
}

void TLog::commit(Cursor& c) {
  if (c.slot_ < 0 || c.published_ == c.pos_) return;
  pins_[c.slot_].pos.store(c.pos_, std::memory_order_release);
  c.published_ = c.pos_;
  if (producer_waiting_.load(std::memory_order_acquire) > 0) space_cv_.notify_all();
}

bool TLog::wait(Cursor& c, std::chrono::microseconds timeout, size_t min_bytes) {
  commit(c);
  if (min_bytes == 0) min_bytes = 1;
  auto ready = [&] { return head_.load(std::memory_order_acquire) - c.pos_ >= min_bytes; };
  if (min_bytes == 1) {
    // A busy producer appends again within microseconds: look a few times
    // before paying for a sleep and a wakeup. The looks are spaced out (some
    // microseconds apart): each one pulls head_'s cache line away from the
    // producer, whose next append then waits for it -- and a consumer that
    // comes back a little later simply takes a longer run of records at once.
    for (int spin = 0; spin < 16; ++spin) {
#if defined(__x86_64__) || defined(__i386__)
      for (int i = 0; i < 512; ++i) __builtin_ia32_pause();
#endif
      if (ready()) return true;
    }
  } else if (ready()) {
    return true;
  }
  consumers_waiting_.fetch_add(1, std::memory_order_acq_rel);
  {
    std::unique_lock<std::mutex> lk(wait_mu_);
    data_cv_.wait_for(lk, timeout, ready);
  }
  consumers_waiting_.fetch_sub(1, std::memory_order_acq_rel);
  return ready();
}

}  // namespace mmsb
