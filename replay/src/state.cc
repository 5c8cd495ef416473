#include "mmsb/replay/state.h"

#include <cstring>
#include <string>

#include "mmsb/fb/mmsb_tlog_generated.h"
#include "mmsb/hash.h"

namespace mmsb::replay {

State::State(const Recording& rec) : rec_(rec), arena_(size_t{64} << 20, /*huge_pages=*/true) {}

uint32_t State::page_count() const noexcept {
  uint32_t n = 0;
  for (const PageMeta& p : rec_.pages())
    if (p.created <= epoch_) n = p.id + 1;
  return valid_ ? n : 0;
}

std::span<const std::byte> State::page(PageId id) const noexcept {
  if (!valid_ || id >= page_count()) return {};
  return {pages_[id].data, pages_[id].size};
}

Version State::version(PageId id) const noexcept { return id < page_count() ? pages_[id].version : 0; }

uint64_t State::state_hash() const {
  StateHasher h;
  const uint32_t n = page_count();
  for (PageId id = 0; id < n; ++id) h.add_page(id, page(id));
  return h.digest();
}

// Every page zero at version 0 (allocating the pages on first use).
Status State::reset_to_start() {
  for (size_t i = pages_.size(); i < rec_.pages().size(); ++i) {
    Result<std::byte*> mem = arena_.allocate(rec_.pages()[i].size);
    if (!mem.ok()) return mem.status();
    pages_.push_back(Page{*mem, rec_.pages()[i].size, 0, 0});
  }
  for (Page& p : pages_) {
    std::memset(p.data, 0, p.size);
    p.version = 0;
    p.image_epoch = 0;
  }
  valid_ = false;
  return Status::OK();
}

Status State::load_snapshot(const SnapshotInfo& s) {
  if (Status st = reset_to_start(); !st.ok()) return st;
  for (size_t fi : s.parts) {
    Status st = rec_.read_snapshot_part(fi, &raw_, [&](const SnapshotImage& im) {
      Page& p = pages_[im.page];  // pages_ holds every page of the recording
      std::memcpy(p.data, im.bytes.data(), im.bytes.size());
      p.version = im.version;
      p.image_epoch = im.epoch;
      return Status::OK();
    });
    if (!st.ok()) return st;
  }
  epoch_ = s.first_epoch;
  valid_ = true;
  return Status::OK();
}

Status State::apply(Epoch from, Epoch to) {
  if (to <= from) return Status::OK();
  const auto& dframes = rec_.delta_frames();
  for (size_t k = rec_.delta_frame_of(from + 1); k < dframes.size(); ++k) {
    const FrameRef& f = rec_.frames()[dframes[k]];
    if (f.header.first_epoch > to) break;
    const std::string where = rec_.describe(f);
    if (Status s = rec_.read_frame(dframes[k], &raw_); !s.ok()) return s;
    if (Status s = batch_.open(fb::GetFrame(raw_.data())->body_as_DeltaBatch(), where); !s.ok()) return s;
    if (batch_.first_epoch() != f.header.first_epoch || batch_.first_epoch() + batch_.count() - 1 != f.header.last_epoch)
      return Status(Code::kCorruption, where + ": batch epochs disagree with the frame header");
    for (uint32_t i = 0; i < batch_.count(); ++i) {
      DeltaView d = batch_.delta(i);
      if (d.epoch <= from) continue;
      if (d.epoch > to) break;
      if (d.page >= pages_.size() || rec_.pages()[d.page].created >= d.epoch)
        return Status(Code::kCorruption, where + ": delta at epoch " + std::to_string(d.epoch) +
                                             " refers to page " + std::to_string(d.page) +
                                             ", which does not exist yet");
      Page& p = pages_[d.page];
      if (p.image_epoch >= d.epoch) continue;  // already in the snapshot image
      d.base_version = p.version;
      if (Status s = validate(d, p.size); !s.ok())
        return Status(Code::kCorruption, where + ": delta at epoch " + std::to_string(d.epoch) + ": " + s.message());
      apply_unchecked(p.data, d);
      ++p.version;
      ++applied_;
    }
  }
  epoch_ = to;
  return Status::OK();
}

Status State::seek(Epoch target) { return seek_from(target, /*latest_snapshot=*/true); }

Status State::replay_from_start(Epoch target) { return seek_from(target, /*latest_snapshot=*/false); }

Status State::seek_from(Epoch target, bool latest_snapshot) {
  if (target < rec_.start_epoch() || target > rec_.last_epoch())
    return Status(Code::kOutOfRange, "epoch " + std::to_string(target) + " is outside the recording " +
                                         rec_.dir().string() + " (epochs " + std::to_string(rec_.start_epoch()) +
                                         ".." + std::to_string(rec_.last_epoch()) + ")");
  // The nearest complete snapshot at or before the target; the first one
  // (needed only by a recording that began past epoch 0) for a full replay.
  const SnapshotInfo* best = nullptr;
  for (const SnapshotInfo& s : rec_.snapshots())
    if (s.complete && s.last_epoch <= target && (!best || s.last_epoch > best->last_epoch)) best = &s;
  if (!latest_snapshot) {
    best = nullptr;
    if (rec_.start_epoch() > 0)
      for (const SnapshotInfo& s : rec_.snapshots())
        if (s.complete && s.last_epoch == rec_.start_epoch()) best = &s;
  }
  const bool forward = latest_snapshot && valid_ && target >= epoch_ && (!best || epoch_ >= best->last_epoch);
  if (!forward) {
    Status s;
    if (best) {
      s = load_snapshot(*best);
    } else {
      s = reset_to_start();
      epoch_ = rec_.segments().front().start_epoch;  // 0: every page starts as zeros
      valid_ = s.ok();
    }
    if (!s.ok()) {
      valid_ = false;
      return s;
    }
  }
  Status s = apply(epoch_, target);
  if (!s.ok()) valid_ = false;
  return s;
}

}  // namespace mmsb::replay
