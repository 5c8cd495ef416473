#include "mmsb/mirror.h"

#include <cstring>
#include <string>

#include "mmsb/hash.h"

namespace mmsb {

CpuMirror::CpuMirror(Bus& bus) : bus_(bus), link_(bus) {
  // In one of the bus's event callbacks this thread holds the write lock
  // already (taking it again would deadlock): the bus is between two deltas.
  auto lock = bus_.check_not_in_callback("CpuMirror").ok() ? bus_.lock_writes() : std::unique_lock<std::mutex>();
  // Only allocation can fail here; sync() then retries and reports it.
  need_resync_ = !resync_locked().ok();
  resyncs_ = 0;  // the first copy is not a resync
}

CpuMirror::~CpuMirror() = default;

Status CpuMirror::add_page_locked(PageId id, uint64_t size) {
  if (id != pages_.size())
    return Status(Code::kCorruption, "mirror expected page " + std::to_string(pages_.size()) +
                                         " to be created next but the TLog says page " + std::to_string(id));
  Result<std::byte*> mem = arena_.allocate(size);
  if (!mem.ok()) return mem.status();
  pages_.push_back(Page{*mem, size, 0});
  return Status::OK();
}

// Copies every page and version and restarts the cursor at the TLog head;
// the caller holds the bus write lock, so all of it is one epoch.
Status CpuMirror::resync_locked() {
  ++resyncs_;
  Result<TLog::Cursor> c = bus_.tlog().open(/*pinned=*/false);
  cursor_ = *c;  // unpinned cursors cannot fail to open
  const uint32_t n = bus_.page_count();
  for (PageId id = static_cast<PageId>(pages_.size()); id < n; ++id) {
    if (Status s = add_page_locked(id, bus_.page_bytes(id).size()); !s.ok()) return s;
  }
  for (PageId id = 0; id < n; ++id) {
    std::span<const std::byte> src = bus_.page_bytes(id);
    std::memcpy(pages_[id].data, src.data(), src.size());
    pages_[id].version = bus_.info_locked(id)->version;
  }
  epoch_ = bus_.epoch();
  return Status::OK();
}

Result<uint64_t> CpuMirror::sync() {
  if (link_.gone()) return link_.gone_error("CpuMirror::sync");
  if (Status s = bus_.check_not_in_callback("CpuMirror::sync"); !s.ok()) return s;
  auto lock = bus_.lock_writes();
  TLog& log = bus_.tlog();
  uint64_t applied = 0;
  if (need_resync_) {  // an earlier full copy failed half way
    if (Status r = resync_locked(); !r.ok()) return r;
    need_resync_ = false;
    return applied;
  }
  TLogRecord rec;  // outside the loop: not zeroed per record
  for (;;) {
    bool got = false;
    Status s = log.read(cursor_, &rec, &got);
    if (s.code() == Code::kLagged) {
      if (Status r = resync_locked(); !r.ok()) {
        need_resync_ = true;
        return r;
      }
      return applied;
    }
    if (!s.ok()) return s;
    if (!got) break;
    if (rec.kind == RecordKind::kPageCreated) {
      if (Status a = add_page_locked(rec.page.page, rec.page.size); !a.ok()) return a;
    } else {
      Page& p = pages_[rec.delta.page];
      apply_unchecked(p.data, rec.delta);  // validated by the bus before it was logged
      p.version = rec.delta.new_version();
      epoch_ = rec.delta.epoch;
      ++applied;
    }
    log.advance(cursor_, rec);
  }
  epoch_ = bus_.epoch();
  return applied;
}

std::span<const std::byte> CpuMirror::page_bytes(PageId id) const noexcept {
  if (id >= pages_.size()) return {};
  return {pages_[id].data, pages_[id].size};
}

Version CpuMirror::page_version(PageId id) const noexcept {
  return id < pages_.size() ? pages_[id].version : 0;
}

uint64_t CpuMirror::state_hash() const {
  StateHasher h;
  for (PageId id = 0; id < pages_.size(); ++id) h.add_page(id, page_bytes(id));
  return h.digest();
}

}  // namespace mmsb
