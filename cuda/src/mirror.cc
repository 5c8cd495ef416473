#include "mmsb/cuda/mirror.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <string>

#include "device.h"
#include "mmsb/cuda/batch.h"
#include "mmsb/cuda/diff.h"
#include "mmsb/hash.h"

namespace mmsb::cuda {
namespace {

constexpr uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string page_name(PageId id) { return "page " + std::to_string(id); }

// What a page that differs from the bus most likely means, and what to do.
// An untracked page is hashed from the live image, which kernels and
// write_page() change; a tracked one from its synced image, which only the
// mirror writes (and track() copies from the live image).
std::string incoherence_hint(bool tracked) {
  return tracked ? " -- its synced image differs from the bus: track() was called after a kernel changed the "
                   "page (the change became part of the synced image), or this is a bug (please report it); "
                   "request_resync() then sync() copies the bus's state again"
                 : " -- its live image differs from the bus: did a kernel or write_page() change this untracked "
                   "page? Only tracked pages are written back: track() it before kernels change it; "
                   "request_resync() then sync() copies the bus's state again";
}

unsigned pack_threads(unsigned asked) {
  if (asked > 0) return asked;
  return std::min(usable_cpus(), 16u);
}

}  // namespace

// One lane of the TLog walk: the deltas of records [begin, end) into a lane
// of the packer, on one of its threads.
struct alignas(64) DeviceMirror::WalkLane {  // a cache line each: lanes run side by side
  uint64_t begin = 0, end = 0;  // stream positions: record starts (or the head)
  uint64_t deltas = 0, bytes = 0, echoes = 0;
  bool unknown_page = false;  // a delta names a page the mirror lacks:
  PageId page = 0;            // ... this one,
  Epoch epoch = 0;            // ... at this epoch
};

std::string DeviceInfo::describe() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "CUDA device %d: %s (sm_%d%d, %.1f GiB, driver %d.%d, runtime %d.%d)", ordinal,
                name.c_str(), major, minor, static_cast<double>(memory_bytes) / (1024.0 * 1024.0 * 1024.0),
                driver_version / 1000, driver_version % 1000 / 10, runtime_version / 1000,
                runtime_version % 1000 / 10);
  return buf;
}

// ---- DiffResult ----

DeltaView DiffResult::delta(size_t i) const noexcept {
  const PageDiff& p = pages[i];
  return DeltaView{p.page,
                   p.base,
                   0,
                   kNoCause,
                   std::span<const Range>(ranges.data() + p.first_range, p.range_count),
                   std::span<const std::byte>(bytes.data() + p.first_byte, p.byte_count)};
}

void DiffResult::clear() noexcept {
  pages.clear();
  ranges.clear();
  bytes.clear();
  compared_bytes = 0;
}

// ---- opening ----

Result<std::unique_ptr<DeviceMirror>> DeviceMirror::open(Bus& bus, const MirrorOptions& options) {
  std::unique_ptr<Device> device;
  std::string backend;
  if (options.backend != Backend::kCpu) {
    Result<std::unique_ptr<Device>> d = open_cuda_device(options.device);
    if (d.ok()) {
      device = std::move(d).value();
      backend = device->description();
    } else if (options.backend == Backend::kCuda) {
      return d.status();
    } else {
      backend = "CPU path (" + d.status().message() + ")";
    }
  }
  if (!device) {
    device = make_host_device();
    if (backend.empty()) backend = "CPU path (asked for)";
  }
  std::unique_ptr<DeviceMirror> m(new DeviceMirror(bus, options, std::move(device), std::move(backend)));
  m->track_all_ = options.track_all;
  if (options.reserve_bytes > 0 || options.track_all) {
    const uint64_t bytes = align_up(options.reserve_bytes, kPageAlign);
    if (Status s = m->device_->reserve_images(bytes, 0, options.track_all); !s.ok()) return s;
  }
  // The first sync is a full copy (need_resync_ starts true); it is not
  // counted as a resync.
  Result<uint64_t> first = m->sync();
  if (!first.ok()) return first.status();
  m->stats_.resyncs = 0;
  return m;
}

DeviceMirror::DeviceMirror(Bus& bus, const MirrorOptions& options, std::unique_ptr<Device> device,
                           std::string backend)
    : bus_(bus),
      link_(bus),
      options_(options),
      device_(std::move(device)),
      backend_(std::move(backend)),
      packer_(std::make_unique<BatchPacker>(device_->staging(), pack_threads(options.pack_threads))),
      plan_(std::make_unique<DiffPlan>()) {}

DeviceMirror::~DeviceMirror() {
  if (in_flight_) (void)device_->wait();
}

bool DeviceMirror::on_gpu() const noexcept { return device_->gpu(); }
void* DeviceMirror::stream() const noexcept { return device_->stream(); }

// ---- bus -> device ----

// Gives the pages the bus has beyond ours their slots, in id order (the
// order their creation records have in the TLog).
Status DeviceMirror::add_new_pages_locked() {
  for (PageId id = static_cast<PageId>(pages_.size()); id < bus_.page_count(); ++id) {
    const uint64_t size = bus_.page_bytes(id).size();
    const uint64_t slot = align_up(size, kPageAlign);
    if (used_ + slot > device_->image_capacity()) {
      const uint64_t want = std::max(used_ + slot, options_.reserve_bytes);
      if (Status s = device_->reserve_images(want, used_, device_->has_synced()); !s.ok()) return s;
    }
    pages_.push_back(Page{used_, size, 0, track_all_});
    used_ += slot;
  }
  return Status::OK();
}

// Lays the whole state out as one batch (every page, every byte) and restarts
// the cursor at the head; the caller holds the bus lock, so it is one epoch.
Status DeviceMirror::resync_locked(SyncStats* st) {
  need_resync_ = true;  // until the copy is packed
  cursor_ = *bus_.tlog().open(/*pinned=*/false);  // unpinned cursors cannot fail to open
  echoes_.clear();
  if (Status s = add_new_pages_locked(); !s.ok()) return s;
  packer_->reset();
  *st = SyncStats{};
  st->resynced = true;
  st->pages = pages_.size();
  for (PageId id = 0; id < pages_.size(); ++id) {
    Page& p = pages_[id];
    packer_->add(p.offset, bus_.page_bytes(id).data(), p.size, flags_of(p));
    p.version = bus_.version_locked(id);
    st->bytes += p.size;
  }
  epoch_ = bus_.epoch();
  ++stats_.resyncs;
  need_resync_ = false;
  return Status::OK();
}

// Brings the batch up to the head of the TLog: page creations first
// (add_new_pages_locked), then the changed pages whole (the page path) or
// the deltas. The deltas are read on several threads when there are many:
// TLog::first_record_from() cuts the span at record starts, and each lane
// fills its own lane of the packer. kLagged when the ring no longer holds
// the cursor's records and the deltas were asked for.
Status DeviceMirror::read_log_locked(SyncStats* st) {
  TLog& log = bus_.tlog();
  TLogRecord rec;
  bool got = false;
  const Status first = log.read(cursor_, &rec, &got);  // checks the lag
  const bool lagged = first.code() == Code::kLagged;
  if (!lagged && (!first.ok() || !got)) return first;
  if (lagged && options_.sync_path == SyncPath::kDeltas) return first;
  if (Status s = add_new_pages_locked(); !s.ok()) return s;
  const uint64_t begin = cursor_.position(), head = log.head(), span = head - begin;
  if (lagged) find_changed_pages(UINT64_MAX);  // the deltas are gone, the versions are not
  if (lagged || ship_pages_cheaper(span)) {
    ship_pages_locked(st);
    return Status::OK();
  }
  size_t n = 1;
  if (span >= 2 * kLaneBytes) n = static_cast<size_t>(std::min<uint64_t>(packer_->width(), span / kLaneBytes));
  if (lanes_.size() < n) lanes_.resize(n);
  for (size_t k = 0; k < n; ++k) {
    lanes_[k] = WalkLane{};
    lanes_[k].begin = k == 0 ? begin : log.first_record_from(begin + span / n * k, head);
    if (k > 0) lanes_[k - 1].end = lanes_[k].begin;
  }
  lanes_[n - 1].end = head;
  packer_->fill_lanes(
      n,
      [](void* self, size_t k, BatchPacker::Lane& lane) {
        auto* m = static_cast<DeviceMirror*>(self);
        m->walk(m->lanes_[k], lane);
      },
      this);
  for (size_t k = 0; k < n; ++k) {
    const WalkLane& w = lanes_[k];
    if (w.unknown_page)
      return Status(Code::kCorruption, "device mirror: the TLog has a delta to page " + std::to_string(w.page) +
                                           " at epoch " + std::to_string(w.epoch) + ", but the bus has only " +
                                           std::to_string(pages_.size()) + " pages");
    st->deltas += w.deltas;
    st->bytes += w.bytes;
    stats_.echoes += w.echoes;
  }
  echoes_.clear();  // the walk reached the head, past every written-back delta
  rec.next = head;  // the cursor moves past the last record
  log.advance(cursor_, rec);
  return Status::OK();
}

// The page path pays off when the pages the deltas changed weigh no more
// than the records that hold the deltas: packing a page is one copy, reading
// a record costs more than copying its bytes. Looking at every page's
// version is only worth it when the span is large against the page count.
// Leaves the changed pages in changed_ when it says yes.
bool DeviceMirror::ship_pages_cheaper(uint64_t span) {
  switch (options_.sync_path) {
    case SyncPath::kDeltas:
      return false;
    case SyncPath::kPages:
      find_changed_pages(UINT64_MAX);
      return true;
    case SyncPath::kAuto:
      break;
  }
  if (span < kLaneBytes || span / 32 < pages_.size()) return false;
  return find_changed_pages(span) <= span;
}

// The pages whose version moved since the mirror's copy, into changed_,
// stopping once they weigh more than `budget` bytes; returns their bytes.
uint64_t DeviceMirror::find_changed_pages(uint64_t budget) {
  changed_.clear();
  uint64_t bytes = 0;
  for (PageId id = 0; id < pages_.size() && bytes <= budget; ++id) {
    if (pages_[id].version == bus_.version_locked(id)) continue;
    changed_.push_back(id);
    bytes += pages_[id].size;
  }
  return bytes;
}

// Packs the pages in changed_ whole, the bus's bytes now: a tracked page
// with a merging op (its device changes survive where the bus left the
// byte's value alone), an untracked one plainly. The deltas since the last
// sync are the versions' moves: every delta adds one to its page's version,
// and writeback() set the version past the mirror's own (the echoes), which
// both images hold already. The cursor restarts at the head.
void DeviceMirror::ship_pages_locked(SyncStats* st) {
  for (PageId id : changed_) {
    Page& p = pages_[id];
    const Version now = bus_.version_locked(id);
    if (p.size > 0) packer_->add(p.offset, bus_.page_bytes(id).data(), p.size, flags_of(p) | (p.tracked ? kMerge : 0u));
    st->deltas += now - p.version;
    st->bytes += p.size;
    p.version = now;
  }
  st->pages = changed_.size();
  st->by_pages = true;
  stats_.echoes += echoes_.size();
  echoes_.clear();
  cursor_ = *bus_.tlog().open(/*pinned=*/false);  // unpinned cursors cannot fail to open
}

// Lane w's records into `lane`. Runs beside other lanes: reads pages_ and
// echoes_, and sets a page's version (to the bus's, the same value in every
// lane) through an atomic.
void DeviceMirror::walk(WalkLane& w, BatchPacker::Lane& lane) {
  const TLog& log = bus_.tlog();
  TLogRecord rec;
  size_t echo = 0;
  bool echo_found = false;
  uint64_t deltas = 0, bytes = 0, echoes = 0;  // into w at the end
  for (uint64_t pos = w.begin; pos < w.end; pos = rec.next) {
    log.read_at(pos, &rec);
    if (rec.kind != RecordKind::kDelta) continue;  // padding, or a page creation (done)
    const DeltaView& d = rec.delta;
    if (d.page >= pages_.size()) {
      w.unknown_page = true;
      w.page = d.page;
      w.epoch = d.epoch;
      break;
    }
    Page& p = pages_[d.page];
    if (!echo_found) {  // the first written-back delta at or after this one
      echo = static_cast<size_t>(std::lower_bound(echoes_.begin(), echoes_.end(), d.epoch) - echoes_.begin());
      echo_found = true;
    }
    while (echo < echoes_.size() && echoes_[echo] < d.epoch) ++echo;
    if (echo < echoes_.size() && echoes_[echo] == d.epoch) {
      // Our own writeback: both images hold these bytes already (and
      // kernels may have changed the live image since).
      ++echo;
      ++echoes;
    } else {
      lane.add_delta(p.offset, d.ranges, d.bytes, flags_of(p));
      ++deltas;
      bytes += d.bytes.size();
    }
    // Reading to the head: the page ends at the bus's version.
    std::atomic_ref<Version> version(p.version);
    const Version now = bus_.version_locked(d.page);
    if (version.load(std::memory_order_relaxed) != now) version.store(now, std::memory_order_relaxed);
  }
  w.deltas = deltas;
  w.bytes = bytes;
  w.echoes = echoes;
}

Result<uint64_t> DeviceMirror::sync() {
  Result<uint64_t> n = sync_async();
  if (!n.ok()) return n;
  if (Status s = wait(); !s.ok()) return s;
  return n;
}

Result<uint64_t> DeviceMirror::sync_async() {
  if (link_.gone()) return link_.gone_error("DeviceMirror::sync");
  if (Status s = bus_.check_not_in_callback("DeviceMirror::sync"); !s.ok()) return s;
  if (in_flight_) {
    if (Status s = wait(); !s.ok()) return s;
  }
  const auto t0 = Clock::now();
  SyncStats st;
  Result<BatchLayout> layout = BatchLayout{};
  {
    auto lock = bus_.lock_writes();
    packer_->reset();
    if (need_resync_) {
      if (Status s = resync_locked(&st); !s.ok()) return s;
    } else {
      const auto r0 = Clock::now();
      Status r = read_log_locked(&st);
      st.read_ms = ms_since(r0);
      if (r.code() == Code::kLagged) {
        // The ring overwrote records we needed (SyncPath::kDeltas): copy
        // everything instead.
        if (Status c = resync_locked(&st); !c.ok()) return c;
      } else if (!r.ok()) {
        need_resync_ = true;
        return r;
      }
      epoch_ = bus_.epoch();
    }
    if (options_.verify) {
      expected_.resize(pages_.size());
      for (PageId id = 0; id < pages_.size(); ++id) expected_[id] = hash_bytes(bus_.page_bytes(id));
      verify_pending_ = true;
    }
    // Under the lock: the packer reads the bytes from the TLog ring and the
    // pages only now.
    layout = packer_->finish(used_);
  }
  if (!layout.ok()) {
    need_resync_ = true;  // the batch is lost: copy everything next time
    return layout.status();
  }
  st.ops = layout->op_count;
  st.pack_threads = static_cast<uint32_t>(packer_->last_chunks());
  st.batch_bytes = layout->total_bytes;
  st.pack_ms = ms_since(t0);
  if (layout->op_count > 0) {
    if (Status s = device_->scatter(*layout); !s.ok()) {
      need_resync_ = true;
      return s;
    }
    in_flight_ = true;
  }
  stats_.last_sync = st;
  ++stats_.syncs;
  stats_.deltas += st.deltas;
  stats_.bytes += st.bytes;
  return st.deltas;
}

Status DeviceMirror::wait() {
  if (in_flight_) {
    in_flight_ = false;
    if (Status s = device_->wait(); !s.ok()) {
      need_resync_ = true;
      return s;
    }
    stats_.last_sync.device = device_->last_timing();
  }
  if (verify_pending_) {
    verify_pending_ = false;
    if (Status s = download_state(); !s.ok()) return s;
    for (PageId id = 0; id < expected_.size(); ++id) {
      const uint64_t mine = hash_bytes(host_page(pages_[id]));
      if (mine != expected_[id]) {
        char buf[160];
        std::snprintf(buf, sizeof buf, ": hash %016" PRIx64 " after the sync to epoch %" PRIu64
                                        ", the bus's %016" PRIx64, mine, epoch_, expected_[id]);
        return Status(Code::kCorruption,
                      "device mirror " + page_name(id) + buf + incoherence_hint(pages_[id].tracked));
      }
    }
  }
  return Status::OK();
}

// ---- pages ----

uint64_t DeviceMirror::page_size(PageId id) const noexcept { return id < pages_.size() ? pages_[id].size : 0; }
Version DeviceMirror::page_version(PageId id) const noexcept {
  return id < pages_.size() ? pages_[id].version : 0;
}
bool DeviceMirror::tracked(PageId id) const noexcept { return id < pages_.size() && pages_[id].tracked; }

std::byte* DeviceMirror::device_data(PageId id) noexcept {
  if (id >= pages_.size()) return nullptr;
  return device_->image(Image::kLive) + pages_[id].offset;
}

Status DeviceMirror::read_page(PageId id, std::vector<std::byte>* out) {
  if (id >= pages_.size()) return Status(Code::kNotFound, "device mirror has no " + page_name(id));
  if (Status s = wait(); !s.ok()) return s;
  out->resize(pages_[id].size);
  return device_->download(Image::kLive, pages_[id].offset, *out);
}

Status DeviceMirror::write_page(PageId id, uint64_t offset, std::span<const std::byte> bytes) {
  if (id >= pages_.size()) return Status(Code::kNotFound, "device mirror has no " + page_name(id));
  if (offset > pages_[id].size || bytes.size() > pages_[id].size - offset)
    return Status(Code::kOutOfRange, "device mirror " + page_name(id) + ": " + std::to_string(bytes.size()) +
                                         " byte(s) at offset " + std::to_string(offset) + " go past its " +
                                         std::to_string(pages_[id].size) + " bytes");
  if (Status s = wait(); !s.ok()) return s;
  return device_->upload(Image::kLive, pages_[id].offset + offset, bytes);
}

// ---- device -> bus ----

Status DeviceMirror::ensure_synced_image() {
  if (device_->has_synced()) return Status::OK();
  if (Status s = wait(); !s.ok()) return s;
  return device_->reserve_images(device_->image_capacity(), used_, /*with_synced=*/true);
}

Status DeviceMirror::track(PageId id) {
  if (id >= pages_.size()) return Status(Code::kNotFound, "device mirror has no " + page_name(id) + " (sync first?)");
  if (pages_[id].tracked) return Status::OK();
  if (Status s = ensure_synced_image(); !s.ok()) return s;
  if (Status s = device_->copy_image(Image::kSynced, Image::kLive, pages_[id].offset, pages_[id].size); !s.ok())
    return s;
  pages_[id].tracked = true;
  return device_->wait();
}

Status DeviceMirror::track_all() {
  if (Status s = ensure_synced_image(); !s.ok()) return s;
  for (Page& p : pages_) {
    if (p.tracked) continue;
    if (Status s = device_->copy_image(Image::kSynced, Image::kLive, p.offset, p.size); !s.ok()) return s;
    p.tracked = true;
  }
  track_all_ = true;
  return device_->wait();
}

Status DeviceMirror::diff(std::span<const PageId> pages, DiffResult* out) {
  return run_diff(pages, out);
}

// Runs the diff kernels over the pages and turns the runs (image offsets)
// into page-relative ranges, page by page.
Status DeviceMirror::run_diff(std::span<const PageId> pages, DiffResult* out) {
  out->clear();
  if (Status s = wait(); !s.ok()) return s;
  if (!std::is_sorted(pages.begin(), pages.end()) ||
      std::adjacent_find(pages.begin(), pages.end()) != pages.end())
    return Status(Code::kInvalidArgument, "device mirror diff: list each page once, in increasing id order");
  plan_->clear();
  for (PageId id : pages) {
    if (id >= pages_.size()) return Status(Code::kNotFound, "device mirror has no " + page_name(id));
    if (!pages_[id].tracked)
      return Status(Code::kFailedPrecondition, "device mirror " + page_name(id) +
                                                   " is not tracked: call track() before kernels change it");
    plan_->add_page(pages_[id].offset, pages_[id].size);
  }
  out->compared_bytes = plan_->bytes();
  if (pages.empty()) return Status::OK();
  DiffRuns runs;
  if (Status s = device_->diff(plan_->tiles(), &runs); !s.ok()) return s;
  stats_.last_diff = device_->last_timing();
  if (runs.starts.size() != runs.ends.size())
    return Status(Code::kCorruption, "device mirror diff: run starts and ends do not pair up");
  // Runs come in image order, which is page id order; none spans two pages.
  size_t r = 0;
  uint64_t byte_at = 0;
  out->ranges.reserve(runs.starts.size());
  out->bytes.assign(runs.bytes.begin(), runs.bytes.end());
  for (PageId id : pages) {
    const Page& p = pages_[id];
    PageDiff pd{id, p.version, out->ranges.size(), 0, byte_at, 0};
    while (r < runs.starts.size() && runs.starts[r] < p.offset + p.size) {
      const uint64_t start = runs.starts[r], end = runs.ends[r];
      if (start < p.offset || end > p.offset + p.size || end <= start)
        return Status(Code::kCorruption, "device mirror diff: run [" + std::to_string(start) + ", " +
                                             std::to_string(end) + ") does not lie inside " + page_name(id));
      out->ranges.push_back(Range{static_cast<uint32_t>(start - p.offset), static_cast<uint32_t>(end - start)});
      pd.byte_count += end - start;
      ++r;
    }
    pd.range_count = out->ranges.size() - pd.first_range;
    byte_at += pd.byte_count;
    if (pd.range_count > 0) out->pages.push_back(pd);
  }
  if (r != runs.starts.size() || byte_at != runs.bytes.size())
    return Status(Code::kCorruption, "device mirror diff: runs and bytes do not match the pages compared");
  return Status::OK();
}

Status DeviceMirror::writeback(std::span<const PageId> pages, WritebackStats* stats) {
  if (link_.gone()) return link_.gone_error("DeviceMirror::writeback");
  WritebackStats st;
  st.pages = pages.size();
  if (Status s = run_diff(pages, &scratch_); !s.ok()) return s;
  st.changed = scratch_.pages.size();
  Status first_error;
  packer_->reset();
  for (size_t i = 0; i < scratch_.pages.size(); ++i) {
    const DeltaView d = scratch_.delta(i);
    Epoch epoch = 0;
    Status s = bus_.apply(d, &epoch);
    if (epoch == 0) {  // refused: nothing applied, the device keeps its changes
      ++st.refused;
      if (first_error.ok()) {
        // The bus's own kConflict advice (rebuild the delta) does not apply
        // here: the mirror rebuilds it, after a sync.
        const std::string why =
            s.code() == Code::kConflict
                ? "the bus changed the page since the mirror's last sync (the mirror holds version " +
                      std::to_string(d.base_version) + ", the bus " + std::to_string(bus_.info(d.page)->version) +
                      "); nothing applied"
                : s.message();
        // Only a conflict is cured by a sync; other refusals (a call from a
        // callback or an update function) keep the bus's own advice.
        first_error = Status(s.code(), "device mirror writeback of " + page_name(d.page) + ": " + why +
                                           (s.code() == Code::kConflict
                                                ? " -- its device changes are kept: sync() (the bus wins on bytes "
                                                  "both changed) and write back again"
                                                : " -- its device changes are kept"));
      }
      continue;
    }
    // Applied (s may still carry an update function's error from the
    // propagation it fired: report it, the delta stands).
    if (!s.ok() && first_error.ok()) first_error = s;
    echoes_.push_back(epoch);
    Page& p = pages_[d.page];
    p.version = d.new_version();
    packer_->add_delta(p.offset, d.ranges, d.bytes, kToSynced);  // the synced image takes what the bus took
    ++st.applied;
    st.bytes += d.bytes.size();
  }
  if (!packer_->empty()) {
    Result<BatchLayout> layout = packer_->finish(used_);
    Status s = layout.ok() ? device_->scatter(*layout) : layout.status();
    if (s.ok()) s = device_->wait();
    if (!s.ok()) {
      need_resync_ = true;
      return s;
    }
  }
  stats_.writebacks += st.applied;
  stats_.writeback_bytes += st.bytes;
  if (stats) *stats = st;
  return first_error;
}

Status DeviceMirror::writeback(PageId id, WritebackStats* stats) {
  return writeback(std::span<const PageId>(&id, 1), stats);
}

Status DeviceMirror::writeback_all(WritebackStats* stats) {
  std::vector<PageId> ids;
  for (PageId id = 0; id < pages_.size(); ++id)
    if (pages_[id].tracked) ids.push_back(id);
  return writeback(ids, stats);
}

// ---- coherence ----

Status DeviceMirror::download_state() {
  if (Status s = wait(); !s.ok()) return s;
  host_live_.resize(used_);
  if (Status s = device_->download(Image::kLive, 0, host_live_); !s.ok()) return s;
  if (device_->has_synced()) {
    host_synced_.resize(used_);
    if (Status s = device_->download(Image::kSynced, 0, host_synced_); !s.ok()) return s;
  }
  return Status::OK();
}

std::span<const std::byte> DeviceMirror::host_page(const Page& p) const noexcept {
  const std::vector<std::byte>& img = p.tracked ? host_synced_ : host_live_;
  return {img.data() + p.offset, p.size};
}

Result<uint64_t> DeviceMirror::page_hash(PageId id) {
  if (id >= pages_.size()) return Status(Code::kNotFound, "device mirror has no " + page_name(id));
  if (Status s = wait(); !s.ok()) return s;
  const Page& p = pages_[id];
  std::vector<std::byte> bytes(p.size);
  if (Status s = device_->download(p.tracked ? Image::kSynced : Image::kLive, p.offset, bytes); !s.ok()) return s;
  return hash_bytes(bytes);
}

Result<uint64_t> DeviceMirror::state_hash() {
  if (Status s = download_state(); !s.ok()) return s;
  StateHasher h;
  for (PageId id = 0; id < pages_.size(); ++id) h.add_page(id, host_page(pages_[id]));
  return h.digest();
}

Status DeviceMirror::check_coherence() {
  if (link_.gone()) return link_.gone_error("DeviceMirror::check_coherence");
  if (Status s = bus_.check_not_in_callback("DeviceMirror::check_coherence"); !s.ok()) return s;
  if (Status s = wait(); !s.ok()) return s;
  auto lock = bus_.lock_writes();
  if (epoch_ != bus_.epoch())
    return Status(Code::kFailedPrecondition, "device mirror is synced to epoch " + std::to_string(epoch_) +
                                                 " but the bus is at " + std::to_string(bus_.epoch()) +
                                                 ": sync() before checking coherence");
  // Creating a page does not advance the epoch: a mirror at the bus's epoch
  // may still lack the pages created since its last sync.
  if (pages_.size() < bus_.page_count())
    return Status(Code::kFailedPrecondition, "device mirror holds " + std::to_string(pages_.size()) +
                                                 " pages but the bus has " + std::to_string(bus_.page_count()) +
                                                 " (pages were created since the last sync): sync() before "
                                                 "checking coherence");
  if (pages_.size() > bus_.page_count())
    return Status(Code::kCorruption, "device mirror holds " + std::to_string(pages_.size()) + " pages, the bus only " +
                                         std::to_string(bus_.page_count()) + " (a bug: please report it)");
  if (Status s = download_state(); !s.ok()) return s;
  for (PageId id = 0; id < pages_.size(); ++id) {
    const uint64_t mine = hash_bytes(host_page(pages_[id]));
    const uint64_t theirs = hash_bytes(bus_.page_bytes(id));
    if (mine != theirs || pages_[id].version != bus_.version_locked(id)) {
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    ": hash %016" PRIx64 " version %" PRIu64 ", the bus's hash %016" PRIx64 " version %" PRIu64
                    " at epoch %" PRIu64,
                    mine, pages_[id].version, theirs, bus_.version_locked(id), epoch_);
      const std::string hint = mine != theirs ? incoherence_hint(pages_[id].tracked)
                                              : " -- the bytes agree, the versions do not (a bug: please report it)";
      return Status(Code::kCorruption, "device mirror " + page_name(id) + buf + hint);
    }
  }
  return Status::OK();
}

}  // namespace mmsb::cuda
