#include "mmsb/capture/recorder.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "mmsb/capture/segment_writer.h"
#include "mmsb/fb/mmsb_tlog_generated.h"
#include "mmsb/format.h"

namespace mmsb::capture {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string this_program() {
  return program_invocation_short_name ? program_invocation_short_name : "";  // glibc, <errno.h>
}

std::string this_host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

std::span<const std::byte> bytes_of(const flatbuffers::FlatBufferBuilder& fbb) {
  return {reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

}  // namespace

// Everything the writer thread owns. Methods without "Locked"/"request" in
// their description run on the writer thread only.
class Recorder::Writer {
 public:
  Writer(Bus& bus, fs::path dir, RecorderOptions opt)
      : bus_(bus), log_(bus.tlog()), dir_(std::move(dir)), opt_(std::move(opt)), zstd_(opt_.zstd_level) {}

  // On the caller's thread, before the writer thread starts.
  Status begin();
  void run();

  // Called from application threads.
  Status flush();
  void request_stop() {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  Status error() const {
    std::lock_guard<std::mutex> lk(mu_);
    return error_;
  }
  RecorderStats stats() const {
    std::lock_guard<std::mutex> lk(mu_);
    RecorderStats s = stats_;
    // Once done, the count finish() kept: the bus (and its TLog) may be gone.
    s.app_waits = done_ ? app_waits_ : log_.producer_waits() - waits_at_start_;
    return s;
  }
  // From the application thread, in an event callback of the bus: the
  // writer must not wait for the bus lock (lock_bus_draining fails).
  void abandon_lock() { abandon_.store(true, std::memory_order_release); }

 private:
  Status drain(bool may_emit);
  Status emit_batch();
  Status emit_pages();
  Status append(format::FrameKind kind, Epoch first, Epoch last, const flatbuffers::FlatBufferBuilder& fbb);
  Status open_segment(Epoch start_epoch);
  Status rotate_if_needed();
  Status snapshot();
  bool snapshot_due() const;
  Status lock_bus_draining(std::unique_lock<std::mutex>* lk);
  void finish(Status s);

  Bus& bus_;
  TLog& log_;
  fs::path dir_;
  RecorderOptions opt_;
  TLog::Cursor cursor_;
  format::Compressor zstd_;
  format::BatchBuilder batch_;
  Clock::time_point batch_started_;
  flatbuffers::FlatBufferBuilder fbb_{size_t{1} << 20};  // meta, pages, deltas
  flatbuffers::FlatBufferBuilder snap_{opt_.snapshot_part_bytes + (size_t{64} << 10)};  // snapshot parts
  format::DirLock lock_;  // held from begin() until finish(): readers see a live writer
  std::unique_ptr<SegmentWriter> seg_;
  uint32_t segment_no_ = 0;
  Epoch start_epoch_ = 0;    // bus epoch when recording began
  Epoch written_ = 0;        // last delta epoch in a frame
  Epoch segment_last_ = 0;   // last delta epoch in the current segment (0: none)
  struct NewPage {
    PageId id;
    uint64_t size;
    std::string name;
    Epoch epoch;
  };
  std::vector<NewPage> new_pages_;     // created, not yet in a PageTable frame
  std::vector<uint64_t> page_sizes_;   // every page known, by id
  uint64_t state_bytes_ = 0;
  uint64_t log_since_snapshot_ = 0;
  uint64_t deltas_since_snapshot_ = 0;
  uint32_t snapshot_id_ = 0;
  bool initial_snapshot_ = false;

  mutable std::mutex mu_;  // guards the members below
  std::condition_variable cv_;
  Status error_;
  RecorderStats stats_;
  uint64_t waits_at_start_ = 0;  // TLog::producer_waits() when the cursor opened
  uint64_t app_waits_ = 0;       // producer waits while recording, kept by finish()
  uint64_t flush_requests_ = 0;  // tickets handed out by flush()
  uint64_t flush_served_ = 0;    // tickets whose deltas are all in frames
  bool stop_ = false;
  bool done_ = false;
  std::atomic<bool> abandon_{false};
};

Status Recorder::Writer::begin() {
  if (Status s = lock_.acquire(dir_); !s.ok())
    return s.code() == Code::kFailedPrecondition
               ? Status(Code::kAlreadyExists, "recording directory " + dir_.string() +
                                                  " is being recorded into by another Recorder; choose a new directory")
               : s;
  {
    auto lock = bus_.lock_writes();
    Result<TLog::Cursor> c = log_.open(/*pinned=*/true);
    if (!c.ok()) return c.status();
    cursor_ = *c;
    waits_at_start_ = log_.producer_waits();
    start_epoch_ = written_ = bus_.epoch();
    for (PageId id = 0; id < bus_.page_count(); ++id) {
      Result<PageInfo> info = bus_.info_locked(id);
      new_pages_.push_back(NewPage{id, info->size, info->name, info->created_epoch});
      page_sizes_.push_back(info->size);
      state_bytes_ += info->size;
    }
  }
  initial_snapshot_ = start_epoch_ > 0;
  Status s = open_segment(start_epoch_);
  if (s.ok()) s = emit_pages();
  if (!s.ok()) log_.close(cursor_);
  return s;
}

Status Recorder::Writer::open_segment(Epoch start_epoch) {
  if (segment_no_ >= format::kMaxSegments)
    return Status(Code::kResourceExhausted,
                  "recording " + dir_.string() + " has " + std::to_string(format::kMaxSegments) +
                      " segment files, the most its six-digit names allow; record with a larger segment_bytes");
  Result<std::unique_ptr<SegmentWriter>> w =
      SegmentWriter::create(dir_ / format::segment_file_name(segment_no_), segment_no_, start_epoch);
  if (!w.ok()) return w.status();
  seg_ = std::move(*w);
  segment_last_ = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.total_bytes += seg_->size();  // the file header
    ++stats_.segments;
  }
  fbb_.Clear();
  std::vector<flatbuffers::Offset<fb::Label>> labels;
  for (const auto& [k, v] : opt_.labels) labels.push_back(fb::CreateLabelDirect(fbb_, k.c_str(), v.c_str()));
  auto meta = fb::CreateMetaDirect(
      fbb_, format::kMajor, format::kMinor, (opt_.program.empty() ? this_program() : opt_.program).c_str(),
      this_host().c_str(), static_cast<uint32_t>(::getpid()),
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count()),
      static_cast<uint32_t>(kDefaultPageSize), &labels, segment_no_, start_epoch);
  fbb_.Finish(fb::CreateFrame(fbb_, fb::Body::Meta, meta.Union()), fb::FrameIdentifier());
  return append(format::FrameKind::kMeta, start_epoch, start_epoch, fbb_);
}

Status Recorder::Writer::append(format::FrameKind kind, Epoch first, Epoch last,
                                const flatbuffers::FlatBufferBuilder& fbb) {
  const uint64_t before = seg_->size();
  Status s = seg_->append(kind, first, last, bytes_of(fbb), zstd_);
  const uint64_t n = seg_->size() - before;
  std::lock_guard<std::mutex> lk(mu_);
  stats_.total_bytes += n;
  if (!s.ok()) return s;
  ++stats_.frames;
  if (kind == format::FrameKind::kDeltas) stats_.delta_bytes += n;
  if (kind == format::FrameKind::kSnapshot) stats_.snapshot_bytes += n;
  return s;
}

Status Recorder::Writer::rotate_if_needed() {
  if (seg_->size() < opt_.segment_bytes) return Status::OK();
  const uint64_t before = seg_->size();
  Status s = seg_->close(segment_last_, /*last_segment=*/false, zstd_, opt_.durability != Durability::kProcess);
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.total_bytes += seg_->size() - before;
  }
  if (!s.ok()) return s;
  ++segment_no_;
  return open_segment(written_);
}

Status Recorder::Writer::emit_pages() {
  if (new_pages_.empty()) return Status::OK();
  fbb_.Clear();
  std::vector<uint32_t> ids;
  std::vector<uint64_t> sizes, epochs;
  std::vector<flatbuffers::Offset<flatbuffers::String>> names;
  for (const NewPage& p : new_pages_) {
    ids.push_back(p.id);
    sizes.push_back(p.size);
    epochs.push_back(p.epoch);
    names.push_back(fbb_.CreateString(p.name));
  }
  auto table = fb::CreatePageTableDirect(fbb_, &ids, &sizes, &names, &epochs);
  fbb_.Finish(fb::CreateFrame(fbb_, fb::Body::PageTable, table.Union()), fb::FrameIdentifier());
  Status s = append(format::FrameKind::kPageTable, new_pages_.front().epoch, new_pages_.back().epoch, fbb_);
  new_pages_.clear();
  return s;
}

Status Recorder::Writer::emit_batch() {
  // Pages first: a durable delta never refers to a page the file lacks.
  if (Status s = emit_pages(); !s.ok()) return s;
  if (batch_.empty()) return Status::OK();
  fbb_.Clear();
  batch_.build(fbb_);
  const uint64_t before = seg_->size();
  if (Status s = append(format::FrameKind::kDeltas, batch_.first_epoch(), batch_.last_epoch(), fbb_); !s.ok())
    return s;
  log_since_snapshot_ += seg_->size() - before;
  deltas_since_snapshot_ += batch_.count();
  written_ = segment_last_ = batch_.last_epoch();
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.deltas += batch_.count();
    stats_.last_epoch = written_;
  }
  batch_.clear();
  return rotate_if_needed();
}

// Moves every record the ring holds into the batch (and pending pages);
// emits full batches when may_emit.
Status Recorder::Writer::drain(bool may_emit) {
  // Up to the head as it is now, not chasing the records appended meanwhile:
  // those lines are still being written by the application's core.
  const uint64_t limit = log_.head();
  TLogRecord rec;  // outside the loop: not zeroed per record
  while (cursor_.position() < limit) {
    bool got = false;
    if (Status s = log_.read(cursor_, &rec, &got); !s.ok()) return s;
    if (!got) break;  // not reached: the head only moves forward
    if (rec.kind == RecordKind::kPageCreated) {
      new_pages_.push_back(NewPage{rec.page.page, rec.page.size, std::string(rec.page.name), rec.page.epoch});
      page_sizes_.push_back(rec.page.size);
      state_bytes_ += rec.page.size;
    } else {
      if (batch_.empty()) batch_started_ = Clock::now();
      batch_.add(rec.delta);
    }
    log_.advance(cursor_, rec);
    if (may_emit && (batch_.count() >= opt_.batch_deltas || batch_.data_bytes() >= opt_.batch_bytes)) {
      if (Status s = emit_batch(); !s.ok()) return s;
    }
  }
  log_.commit(cursor_);  // show the producer the space we freed
  return Status::OK();
}

// The bus lock, taken without deadlocking against an application thread
// that holds it while waiting for ring space: keep draining until it is free,
// then drain what is left, so the ring is empty and no delta can arrive.
// Writers are asked to step aside (Bus::want_lock) meanwhile: a busy
// application holds the lock nearly all the time. Outside the lock, full
// batches still go out, so the batch cannot grow without bound.
Status Recorder::Writer::lock_bus_draining(std::unique_lock<std::mutex>* lk) {
  bus_.want_lock(true);
  for (;;) {
    if (Status s = drain(true); !s.ok()) {
      bus_.want_lock(false);
      return s;
    }
    *lk = bus_.try_lock_writes();
    if (lk->owns_lock()) break;
    if (abandon_.load(std::memory_order_acquire)) {
      bus_.want_lock(false);
      return Status(Code::kFailedPrecondition,
                    "the Recorder was destroyed from an event callback of its bus, which holds the bus lock: "
                    "the snapshot it owed was not taken; the frames written before stay readable");
    }
#if defined(__x86_64__) || defined(__i386__)
    for (int i = 0; i < 64; ++i) __builtin_ia32_pause();
#endif
  }
  bus_.want_lock(false);
  return drain(false);  // under the lock: the ring empties, nothing arrives
}

bool Recorder::Writer::snapshot_due() const {
  if (initial_snapshot_) return true;
  // Deltas taken from the ring count, not only those in a frame: a batch
  // that neither fills nor ages would otherwise hold snapshots back.
  if (opt_.snapshot_every_deltas && deltas_since_snapshot_ + batch_.count() >= opt_.snapshot_every_deltas)
    return true;
  return opt_.snapshot_log_ratio > 0 && state_bytes_ > 0 &&
         static_cast<double>(log_since_snapshot_) >= opt_.snapshot_log_ratio * static_cast<double>(state_bytes_);
}

// A fuzzy snapshot in parts of about snapshot_part_bytes: each part is copied
// under the bus lock at one epoch, and written after every delta up to that
// epoch. The page list is fixed under the first part's lock, so the snapshot
// holds every page that exists at its first epoch.
Status Recorder::Writer::snapshot() {
  std::vector<std::pair<uint32_t, uint32_t>> parts;  // [first, last) page ids
  std::vector<uint32_t> ids;
  std::vector<uint64_t> versions, epochs, sizes;
  uint32_t n = 0;
  for (uint32_t p = 0; p == 0 || p < parts.size(); ++p) {
    Epoch e;
    flatbuffers::Offset<flatbuffers::Vector<uint8_t>> data;
    {
      std::unique_lock<std::mutex> lk;
      if (Status s = lock_bus_draining(&lk); !s.ok()) return s;
      if (p == 0) {
        n = static_cast<uint32_t>(page_sizes_.size());
        for (uint32_t i = 0; i < n;) {
          uint32_t j = i;
          uint64_t bytes = 0;
          while (j < n && (j == i || bytes + page_sizes_[j] <= opt_.snapshot_part_bytes)) bytes += page_sizes_[j++];
          parts.emplace_back(i, j);
          i = j;
        }
        if (parts.empty()) break;  // no pages: nothing to snapshot
      }
      const auto [first, last] = parts[p];
      uint64_t total = 0;
      for (uint32_t id = first; id < last; ++id) total += page_sizes_[id];
      snap_.Clear();
      uint8_t* dst = nullptr;
      data = snap_.CreateUninitializedVector<uint8_t>(total, &dst);
      ids.clear();
      versions.clear();
      epochs.clear();
      sizes.clear();
      e = bus_.epoch();
      for (uint32_t id = first; id < last; ++id) {
        std::span<const std::byte> page = bus_.page_bytes(id);
        std::memcpy(dst, page.data(), page.size());
        dst += page.size();
        ids.push_back(id);
        versions.push_back(bus_.version_locked(id));
        epochs.push_back(e);
        sizes.push_back(page.size());
      }
    }
    // Every delta up to e reaches the file before the part that holds it.
    if (Status s = emit_batch(); !s.ok()) return s;
    auto snap = fb::CreateSnapshot(snap_, snapshot_id_, p, static_cast<uint32_t>(parts.size()), n,
                                   snap_.CreateVector(ids), snap_.CreateVector(versions), snap_.CreateVector(epochs),
                                   snap_.CreateVector(sizes), data);
    snap_.Finish(fb::CreateFrame(snap_, fb::Body::Snapshot, snap.Union()), fb::FrameIdentifier());
    if (Status s = append(format::FrameKind::kSnapshot, e, e, snap_); !s.ok()) return s;
  }
  initial_snapshot_ = false;
  log_since_snapshot_ = 0;
  deltas_since_snapshot_ = 0;
  if (parts.empty()) return Status::OK();
  ++snapshot_id_;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.snapshots;
  }
  return rotate_if_needed();
}

void Recorder::Writer::finish(Status s) {
  const uint64_t waits = log_.producer_waits() - waits_at_start_;
  log_.close(cursor_);  // the application never waits for us again
  lock_.release();      // nothing more is written: recover() may cut or close what is there
  std::lock_guard<std::mutex> lk(mu_);
  app_waits_ = waits;
  if (error_.ok()) error_ = std::move(s);
  done_ = true;
  cv_.notify_all();
}

void Recorder::Writer::run() {
  ::pthread_setname_np(::pthread_self(), "mmsb-recorder");  // shows in top, gdb, perf
  const auto nap = std::chrono::microseconds(1000);
  for (;;) {
    bool stop;
    uint64_t requests;
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop = stop_;
      requests = flush_requests_;
    }
    // Read after the request: draining now reaches every delta applied
    // before flush() was called.
    Status s = drain(true);
    const bool aged = !batch_.empty() && Clock::now() - batch_started_ >= opt_.flush_interval;
    const bool flushing = requests > flush_served_ || stop;
    if (s.ok() && (aged || flushing || !new_pages_.empty())) s = emit_batch();
    if (s.ok() && opt_.durability == Durability::kFsyncFlush && (aged || flushing)) s = seg_->sync();
    if (s.ok() && (!stop || initial_snapshot_) && snapshot_due()) s = snapshot();
    if (s.ok() && stop) {
      const uint64_t before = seg_->size();
      s = seg_->close(segment_last_, /*last_segment=*/true, zstd_, opt_.durability != Durability::kProcess);
      std::lock_guard<std::mutex> lk(mu_);
      stats_.total_bytes += seg_->size() - before;
    }
    if (s.ok() && flushing) {
      std::lock_guard<std::mutex> lk(mu_);
      flush_served_ = requests;
      cv_.notify_all();
    }
    if (!s.ok() || stop) {
      finish(std::move(s));
      return;
    }
    // Sleep until a long run of records is there (or the nap ends): taking
    // them in runs, well behind the head, keeps this core off the cache
    // lines the application is writing. The nap bounds the delay a flush
    // request or an aging batch sees.
    log_.wait(cursor_, nap, log_.wake_bytes());
  }
}

Status Recorder::Writer::flush() {
  std::unique_lock<std::mutex> lk(mu_);
  const uint64_t ticket = ++flush_requests_;
  cv_.wait(lk, [&] { return flush_served_ >= ticket || done_; });
  return error_;
}

// ---------------------------------------------------------------- Recorder

Recorder::Recorder(Bus& bus, fs::path dir)
    : bus_(bus), dir_(std::move(dir)), link_(bus, [this] { (void)finish(); }) {}

Result<std::unique_ptr<Recorder>> Recorder::start(Bus& bus, const fs::path& dir, RecorderOptions options) {
  // It opens a cursor under the bus's write lock.
  if (Status s = bus.check_not_in_callback("Recorder::start"); !s.ok()) return s;
  auto bad = [](const std::string& what) { return Status(Code::kInvalidArgument, "RecorderOptions: " + what); };
  if (options.batch_deltas == 0) return bad("batch_deltas is 0 (at least 1 delta a frame)");
  if (options.batch_bytes == 0) return bad("batch_bytes is 0 (at least 1 byte a frame)");
  if (options.snapshot_part_bytes == 0) return bad("snapshot_part_bytes is 0");
  if (options.flush_interval.count() < 0 || options.flush_interval > std::chrono::hours(24))
    return bad("flush_interval of " + std::to_string(options.flush_interval.count()) + " ms is outside 0..24 h");
  if (!(options.snapshot_log_ratio >= 0) || std::isinf(options.snapshot_log_ratio))
    return bad("snapshot_log_ratio must be a finite number >= 0 (0: never), not " +
               std::to_string(options.snapshot_log_ratio));
  if (options.durability != Durability::kProcess && options.durability != Durability::kFsyncSegment &&
      options.durability != Durability::kFsyncFlush)
    return bad("durability " + std::to_string(static_cast<int>(options.durability)) + " is not a Durability");
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec))
      return Status(Code::kAlreadyExists, dir.string() + " exists and is not a directory; choose another path");
    if (!fs::is_empty(dir, ec))
      return Status(Code::kAlreadyExists, "recording directory " + dir.string() +
                                              " already exists and is not empty; choose a new directory or remove it");
  } else if (!fs::create_directories(dir, ec)) {
    return Status(Code::kIOError, "cannot create recording directory " + dir.string() + ": " + ec.message());
  }
  // A write past RLIMIT_FSIZE must come back as EFBIG (a clear error), not
  // kill the process with SIGXFSZ.
  struct sigaction old = {};
  if (::sigaction(SIGXFSZ, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) ::signal(SIGXFSZ, SIG_IGN);

  std::unique_ptr<Recorder> r(new Recorder(bus, dir));
  r->writer_ = std::make_unique<Writer>(bus, dir, std::move(options));
  if (Status s = r->writer_->begin(); !s.ok()) {
    r->stopped_ = true;
    return s;
  }
  r->thread_ = std::thread([w = r->writer_.get()] { w->run(); });
  return r;
}

Recorder::~Recorder() {
  // After the bus went (stopped_ set by its link) bus_ must not be touched.
  if (!stopped_ && !bus_.check_not_in_callback("~Recorder").ok()) writer_->abandon_lock();
  (void)finish();
}

// flush() and stop() wait for the writer thread, which takes the bus's
// write lock: from one of its event callbacks they would never return.
Status Recorder::flush() {
  if (stopped_) return writer_->error();  // also after the bus went
  if (Status s = bus_.check_not_in_callback("Recorder::flush"); !s.ok()) return s;
  return writer_->flush();
}

Status Recorder::stop() {
  if (stopped_) return writer_->error();
  if (Status s = bus_.check_not_in_callback("Recorder::stop"); !s.ok()) return s;
  return finish();
}

Status Recorder::finish() {
  std::lock_guard<std::mutex> g(stop_mu_);  // a second caller waits for the first's join
  if (stopped_ || !writer_) return writer_ ? writer_->error() : Status::OK();
  writer_->request_stop();
  if (thread_.joinable()) thread_.join();
  stopped_ = true;
  return writer_->error();
}

Status Recorder::status() const { return writer_->error(); }

RecorderStats Recorder::stats() const { return writer_->stats(); }

}  // namespace mmsb::capture
