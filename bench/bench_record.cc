// record: the apply loop of the `apply` bench with an mmsb::capture::Recorder
// (default RecorderOptions) attached, writing a fresh recording directory.
//
// Each repeat runs in a forked child, so that its memory figures belong to
// this run alone (the workload is generated once, in the parent, before the
// fork). In the child, outside the clock: a fresh Bus with the P pages
// p0..p{P-1}, Recorder::start() on a fresh directory. Timed: every delta with
// Bus::apply (apply_loop.h: the very loop of the apply bench), then
// Recorder::stop(), so the writer's whole work -- batching, zstd, write(2),
// snapshots, the index and trailer -- is inside the clock. Around it, in the
// same child: an untimed warm-up loop, then the plain apply loop without a
// recorder timed just before and just after the recorded one (app_overhead).
//   deltas_per_s         deltas / (apply loop + stop()): the writer's sustained rate
//   mb_per_s             changed bytes / the same time
//   log_bytes_per_delta  RecorderStats::delta_bytes / deltas (delta frames, headers included)
//   bytes_per_delta      sum of the recording's file sizes / deltas
//   app_overhead         apply-loop time with the recorder / the mean of the plain loops
//                        just before and after it (per repeat, then median)
//   app_waits            RecorderStats::app_waits: appends that waited for the writer
//   write_mb_per_s       write(2) of 1 MiB chunks into the recording's filesystem (the limit)
//   app_overhead_floor   max(1, on-disk bytes / write_mb_per_s / plain loop time)
//   peak_rss_mb          peak VmRSS during the run (sampled every 1 ms from
//                        /proc/self/statm by a sampler thread) minus VmRSS just
//                        before the bus was created
// Outside the clock, the parent reads every run's recording back frame by
// frame (checksums, zstd, FlatBuffers verification) and checks every delta
// against the workload and every snapshot part whose epoch it can rebuild
// against a byte-array model; a mismatch fails the bench.
#include <fcntl.h>
#include <flatbuffers/flatbuffers.h>
#include <stdlib.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>

#include "apply_loop.h"
#include "json.h"
#include "mmsb/capture/recorder.h"
#include "mmsb/fb/mmsb_tlog_generated.h"
#include "mmsb/format.h"
#include "registry.h"

namespace mmsb::bench {

namespace fs = std::filesystem;

namespace {

// ------------------------------------------------------------------ memory

// Resident set size now, from /proc/self/statm (second field, in pages).
uint64_t rss_bytes(int statm_fd) {
  char buf[256];
  const ssize_t n = ::pread(statm_fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char* end = nullptr;
  (void)std::strtoull(buf, &end, 10);                      // size
  const uint64_t pages = std::strtoull(end, nullptr, 10);  // resident
  return pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// VmHWM of /proc/self/status in bytes (0 if absent).
uint64_t hwm_bytes() {
  FILE* f = std::fopen("/proc/self/status", "re");
  if (!f) return 0;
  char line[256];
  uint64_t kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmHWM:", 6) == 0) kb = std::strtoull(line + 6, nullptr, 10);
  std::fclose(f);
  return kb * 1024;
}

// Tracks the peak of VmRSS with one sample per millisecond.
class RssSampler {
 public:
  RssSampler() : fd_(::open("/proc/self/statm", O_RDONLY | O_CLOEXEC)) {}
  ~RssSampler() {
    if (thread_.joinable()) finish();
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const noexcept { return fd_ >= 0; }
  uint64_t now() const { return rss_bytes(fd_); }
  void start() {
    sample();
    thread_ = std::thread([this] {
      while (!stop_.load(std::memory_order_relaxed)) {
        sample();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  // Stops the thread, takes a last sample and returns the peak.
  uint64_t finish() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
    sample();
    return peak_.load();
  }
  uint64_t samples() const { return samples_.load(); }

 private:
  void sample() {
    const uint64_t r = now();
    if (r > peak_.load(std::memory_order_relaxed)) peak_.store(r, std::memory_order_relaxed);
    samples_.fetch_add(1, std::memory_order_relaxed);
  }
  int fd_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> peak_{0};
  std::atomic<uint64_t> samples_{0};
};

// ------------------------------------------------------------- the child

// The apply loop on a fresh bus without a recorder: its time, or -1 with
// `why` set.
double plain_loop(const Workload& w, std::vector<PageId>& ids, std::vector<Version>& versions, std::string* why) {
  auto bus = std::make_unique<Bus>();
  if (Status s = create_workload_pages(*bus, w, &ids); !s.ok()) {
    *why = s.to_string();
    return -1;
  }
  const ApplyLoop run = apply_workload(*bus, w, ids, versions);
  if (!run.ok()) {
    *why = "plain apply: delta " + std::to_string(run.failed_at) + ": " + run.error.to_string();
    return -1;
  }
  return run.seconds;
}

// What a child sends back through its pipe (trivially copyable).
struct ChildReport {
  bool ok = false;
  char error[1024] = {};
  double app_seconds = 0;    // the apply loop, recorder attached
  double total_seconds = 0;  // apply loop + Recorder::stop()
  double plain_seconds = 0;  // the apply loop, no recorder
  uint64_t base_rss = 0;     // VmRSS just before the bus was created
  uint64_t peak_rss = 0;     // sampled peak of VmRSS during the run
  uint64_t hwm = 0;          // VmHWM right after the run
  uint64_t rss_samples = 0;
  capture::RecorderStats stats;
};
static_assert(std::is_trivially_copyable_v<ChildReport>);

void fail(ChildReport* r, const std::string& what) {
  r->ok = false;
  std::snprintf(r->error, sizeof r->error, "%s", what.c_str());
}

void run_child(const Workload& w, const fs::path& dir, ChildReport* r) {
  const size_t n = w.count();
  RssSampler rss;
  if (!rss.ok())
    return fail(r, std::string("cannot open /proc/self/statm: ") + std::strerror(errno));
  std::vector<PageId> ids;
  std::vector<Version> versions;
  ids.reserve(w.spec.pages);
  versions.reserve(w.spec.pages);

  r->base_rss = rss.now();
  // Warm-up, untimed: the first pass over the workload in a fresh process
  // pays for cold caches, TLB and allocator growth; without it the recorded
  // loop was charged ~30% for them. Then the plain loop is timed just before
  // and just after the recorded one, and app_overhead uses their mean: on a
  // shared machine the speed drifts between runs by more than the effect.
  std::string why;
  if (plain_loop(w, ids, versions, &why) < 0) return fail(r, why);
  const double plain_before = plain_loop(w, ids, versions, &why);
  if (plain_before < 0) return fail(r, why);
  rss.start();
  {
    auto bus = std::make_unique<Bus>();
    if (Status s = create_workload_pages(*bus, w, &ids); !s.ok()) return fail(r, s.to_string());
    Result<std::unique_ptr<capture::Recorder>> rec = capture::Recorder::start(*bus, dir);
    if (!rec.ok()) return fail(r, "Recorder::start: " + rec.status().to_string());

    const ApplyLoop run = apply_workload(*bus, w, ids, versions);
    const Status stopped = (*rec)->stop();
    r->total_seconds = seconds_since(run.start);
    r->app_seconds = run.seconds;

    r->peak_rss = rss.finish();
    r->hwm = hwm_bytes();
    r->rss_samples = rss.samples();
    r->stats = (*rec)->stats();
    if (!run.ok())
      return fail(r, "delta " + std::to_string(run.failed_at) + " (page p" +
                         std::to_string(w.page[run.failed_at]) + "): " + run.error.to_string());
    if (!stopped.ok()) return fail(r, "Recorder::stop: " + stopped.to_string());
    if (r->stats.deltas != n || r->stats.last_epoch != n)
      return fail(r, "RecorderStats: " + std::to_string(r->stats.deltas) + " deltas, last epoch " +
                         std::to_string(r->stats.last_epoch) + "; expected " + std::to_string(n));
  }
  const double plain_after = plain_loop(w, ids, versions, &why);
  if (plain_after < 0) return fail(r, why);
  r->plain_seconds = (plain_before + plain_after) / 2;
  r->ok = true;
}

// Forks; the child runs run_child and sends its report back.
bool measure_in_child(const Workload& w, const fs::path& dir, ChildReport* out, std::string* why) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    *why = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    *why = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  if (pid == 0) {
    ::close(fds[0]);
    auto report = std::make_unique<ChildReport>();
    run_child(w, dir, report.get());
    const auto* p = reinterpret_cast<const char*>(report.get());
    size_t done = 0;
    while (done < sizeof(ChildReport)) {
      const ssize_t k = ::write(fds[1], p + done, sizeof(ChildReport) - done);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) ::_exit(3);
      done += static_cast<size_t>(k);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  auto* p = reinterpret_cast<char*>(out);
  size_t got = 0;
  while (got < sizeof(ChildReport)) {
    const ssize_t k = ::read(fds[0], p + got, sizeof(ChildReport) - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    got += static_cast<size_t>(k);
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    *why = "the measuring child died of signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
    return false;
  }
  if (got != sizeof(ChildReport) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    *why = "the measuring child exited with status " + std::to_string(WEXITSTATUS(status)) +
           " after sending " + std::to_string(got) + " of " + std::to_string(sizeof(ChildReport)) +
           " report bytes";
    return false;
  }
  if (!out->ok) {
    *why = out->error;
    return false;
  }
  return true;
}

// ------------------------------------------------------ recording directory

bool is_segment_name(const std::string& s) {
  if (s.size() != 15 || s.compare(0, 4, "seg-") != 0 || s.compare(10, 5, ".tlog") != 0)
    return false;
  return std::all_of(s.begin() + 4, s.begin() + 10, [](char c) { return c >= '0' && c <= '9'; });
}

// Removes the segment files an earlier run left in `dir` (nothing else: if
// something else is there, Recorder::start refuses the directory and says so).
void remove_old_segments(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && is_segment_name(e.path().filename().string()))
      fs::remove(e.path(), ec);
}

uint64_t directory_bytes(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) total += e.file_size(ec);
  return total;
}

// The machine's limit for a lossless recorder: write(2) throughput into the
// page cache of the filesystem the recording goes to, 1 MiB at a time (the
// size of a delta frame), over `bytes` of incompressible data into a fresh
// file, removed afterwards. The best of three passes: a process's first pass
// ran at a tenth of the later ones on the VMs measured. 0 if it fails.
double write_mb_per_s(const fs::path& dir, const Workload& w, uint64_t bytes) {
  constexpr size_t kChunk = size_t{1} << 20;
  const size_t avail = std::min<uint64_t>(w.total_bytes, 64 * kChunk);  // random bytes to write from
  if (avail < kChunk) return 0;
  const fs::path file = dir / "write-reference.tmp";
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const int fd = ::open(file.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return 0;
    uint64_t written = 0;
    bool ok = true;
    const Clock::time_point start = Clock::now();
    for (size_t at = 0; ok && written < bytes; at = (at + kChunk) % (avail - kChunk + 1)) {
      ok = ::write(fd, w.bytes.get() + at, kChunk) == static_cast<ssize_t>(kChunk);
      written += kChunk;
    }
    const double secs = seconds_since(start);
    ::close(fd);
    ::unlink(file.c_str());
    if (!ok) return 0;
    if (secs > 0) best = std::max(best, static_cast<double>(written) / secs / kMB);
  }
  return best;
}

std::string filesystem_of(const fs::path& p) {
  struct statfs s;
  if (::statfs(p.c_str(), &s) != 0) return "unknown filesystem";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x01021994:
      return "tmpfs (RAM)";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794C7630:
      return "overlayfs";
    case 0x2FC12FC1:
      return "zfs";
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "filesystem type 0x%lx", static_cast<unsigned long>(s.f_type));
  return buf;
}

// ------------------------------------------------------- reading it back

struct ReadBack {
  uint64_t segments = 0;
  uint64_t delta_frame_bytes = 0;     // header + payload of every delta frame
  uint64_t snapshot_frame_bytes = 0;  // same for snapshot frames
  uint64_t snapshots = 0;             // complete snapshots
  uint64_t parts_checked = 0;         // snapshot parts compared with the model
  uint64_t parts_unchecked = 0;       // parts whose epoch the model had passed
};

class Reader {
 public:
  Reader(const Workload& w, ReadBack* out)
      : w_(w), out_(out), state_(w.state_bytes(), std::byte{0}), versions_(w.spec.pages, 0) {}

  bool read(const fs::path& dir, std::string* why) {
    why_ = why;
    std::vector<std::string> names;
    std::error_code ec;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (!is_segment_name(name)) return bad("unexpected file " + name + " in the recording");
      names.push_back(name);
    }
    if (ec) return bad("cannot list " + dir.string() + ": " + ec.message());
    std::sort(names.begin(), names.end());
    for (uint32_t k = 0; k < names.size(); ++k) {
      char expect[32];
      std::snprintf(expect, sizeof expect, "seg-%06u.tlog", k);
      if (names[k] != expect) return bad("segment " + std::string(expect) + " is missing");
      if (!read_segment(dir / names[k], k)) return false;
    }
    out_->segments = names.size();
    if (epoch_ != w_.count())
      return bad("the recording holds deltas up to epoch " + std::to_string(epoch_) + " of " +
                 std::to_string(w_.count()));
    for (const auto& [id, parts] : snapshot_parts_)
      if (parts.first == parts.second) ++out_->snapshots;
    return true;
  }

 private:
  bool bad(const std::string& what) {
    *why_ = where_.empty() ? what : where_ + ": " + what;
    return false;
  }

  bool pread_all(int fd, void* dst, size_t n, uint64_t off) {
    auto* p = static_cast<char*>(dst);
    while (n > 0) {
      const ssize_t k = ::pread(fd, p, n, static_cast<off_t>(off));
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return false;
      p += k;
      n -= static_cast<size_t>(k);
      off += static_cast<uint64_t>(k);
    }
    return true;
  }

  bool read_segment(const fs::path& path, uint32_t k) {
    struct Fd {
      int fd;
      ~Fd() {
        if (fd >= 0) ::close(fd);
      }
    } f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    where_ = path.filename().string();
    if (f.fd < 0) return bad(std::string("open: ") + std::strerror(errno));
    std::error_code ec;
    const uint64_t size = fs::file_size(path, ec);
    if (ec) return bad("cannot stat: " + ec.message());
    std::byte hdr[format::kFileHeaderBytes];
    if (!pread_all(f.fd, hdr, sizeof hdr, 0)) return bad("cannot read the file header");
    format::FileHeader fh;
    if (Status s = format::decode(hdr, &fh, where_); !s.ok()) return bad(s.message());
    if (fh.segment != k || fh.start_epoch != epoch_)
      return bad("header says segment " + std::to_string(fh.segment) + " from epoch " +
                 std::to_string(fh.start_epoch) + "; expected " + std::to_string(k) + " from " +
                 std::to_string(epoch_));
    // Recorder::stop() closes every segment: each must end with a trailer.
    if (size < format::kFileHeaderBytes + format::kTrailerBytes)
      return bad("too short for a closed segment");
    std::byte tb[format::kTrailerBytes];
    format::Trailer trailer;
    if (!pread_all(f.fd, tb, sizeof tb, size - sizeof tb)) return bad("cannot read the trailer");
    if (Status s = format::decode(tb, &trailer, where_); !s.ok()) return bad(s.message());

    std::vector<uint64_t> offsets;
    uint64_t off = format::kFileHeaderBytes;
    const uint64_t end = size - format::kTrailerBytes;
    const Epoch segment_start = epoch_;  // the trailer names this segment's last delta, 0 if none
    bool index_seen = false;
    while (off < end) {
      if (index_seen) return bad("bytes after the index frame at offset " + std::to_string(off));
      std::byte fhb[format::kFrameHeaderBytes];
      if (off + sizeof fhb > end || !pread_all(f.fd, fhb, sizeof fhb, off))
        return bad("truncated frame header at offset " + std::to_string(off));
      format::FrameHeader h;
      const std::string at = where_ + " @" + std::to_string(off);
      if (Status s = format::decode(fhb, &h, at); !s.ok()) return bad(s.message());
      const uint64_t frame_end = off + format::kFrameHeaderBytes + h.payload_bytes;
      if (frame_end > end)
        return bad("frame at offset " + std::to_string(off) + " runs past the trailer");
      payload_.resize(h.payload_bytes);
      if (!pread_all(f.fd, payload_.data(), payload_.size(), off + format::kFrameHeaderBytes))
        return bad("cannot read the payload at offset " + std::to_string(off));
      if (format::checksum(payload_) != h.payload_checksum)
        return bad("payload checksum mismatch at offset " + std::to_string(off));
      if (Status s = unzstd_.decompress(payload_, h.raw_bytes, &raw_, at); !s.ok())
        return bad(s.message());
      flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(raw_.data()), raw_.size());
      if (!fb::VerifyFrameBuffer(verifier))
        return bad("frame at offset " + std::to_string(off) + " fails FlatBuffers verification");
      const fb::Frame* frame = fb::GetFrame(raw_.data());
      if (offsets.empty() && h.kind != format::FrameKind::kMeta)
        return bad("the first frame is not a meta frame");
      const uint64_t bytes = frame_end - off;
      bool ok = true;
      switch (h.kind) {
        case format::FrameKind::kMeta:
          ok = check_meta(frame->body_as_Meta(), k);
          break;
        case format::FrameKind::kPageTable:
          ok = check_pages(frame->body_as_PageTable());
          break;
        case format::FrameKind::kDeltas:
          ok = check_deltas(frame->body_as_DeltaBatch(), h, at);
          out_->delta_frame_bytes += bytes;
          break;
        case format::FrameKind::kSnapshot:
          ok = check_snapshot(frame->body_as_Snapshot(), h);
          out_->snapshot_frame_bytes += bytes;
          break;
        case format::FrameKind::kIndex:
          ok = check_index(frame->body_as_SegmentIndex(), offsets, off, trailer);
          index_seen = true;
          break;
        default:
          return bad("unknown frame kind " + std::to_string(static_cast<int>(h.kind)));
      }
      if (!ok) return false;
      if (h.kind != format::FrameKind::kIndex) offsets.push_back(off);
      off = frame_end;
    }
    if (!index_seen) return bad("no index frame before the trailer");
    if (trailer.last_epoch != (epoch_ == segment_start ? 0 : epoch_))
      return bad("trailer says last delta epoch " + std::to_string(trailer.last_epoch) +
                 ", frames end at " + std::to_string(epoch_));
    return true;
  }

  bool check_meta(const fb::Meta* m, uint32_t k) {
    if (!m) return bad("meta frame without a Meta body");
    if (m->segment() != k || m->start_epoch() != epoch_ || m->format_major() != format::kMajor)
      return bad("meta frame disagrees with the segment (number, start epoch or version)");
    return true;
  }

  bool check_pages(const fb::PageTable* t) {
    if (!t || !t->ids() || !t->sizes() || !t->names() || !t->epochs())
      return bad("page table with missing columns");
    const uint32_t m = t->ids()->size();
    if (t->sizes()->size() != m || t->names()->size() != m || t->epochs()->size() != m)
      return bad("page table columns disagree in length");
    for (uint32_t i = 0; i < m; ++i) {
      const uint32_t id = t->ids()->Get(i);
      const std::string name = "p" + std::to_string(pages_);
      if (id != pages_ || t->sizes()->Get(i) != w_.spec.page_size ||
          t->names()->Get(i)->str() != name || t->epochs()->Get(i) != 0)
        return bad("page table entry " + std::to_string(i) + " is not page " + name + " (" +
                   std::to_string(w_.spec.page_size) + " bytes, created at epoch 0)");
      ++pages_;
    }
    if (pages_ > w_.spec.pages) return bad("more pages declared than the workload has");
    return true;
  }

  bool check_deltas(const fb::DeltaBatch* b, const format::FrameHeader& h, const std::string& at) {
    if (Status s = batch_.open(b, at); !s.ok()) return bad(s.message());
    if (batch_.first_epoch() != epoch_ + 1 || h.first_epoch != epoch_ + 1 ||
        h.last_epoch != epoch_ + batch_.count())
      return bad("delta frame covers epochs " + std::to_string(h.first_epoch) + ".." +
                 std::to_string(h.last_epoch) + " (batch from " +
                 std::to_string(batch_.first_epoch()) + ", " + std::to_string(batch_.count()) +
                 " deltas); expected it to start at " + std::to_string(epoch_ + 1));
    const size_t S = w_.spec.page_size;
    for (uint32_t i = 0; i < batch_.count(); ++i) {
      const DeltaView d = batch_.delta(i);
      const uint64_t e = epoch_ + 1;
      if (e > w_.count()) return bad("more deltas than the workload has");
      const size_t x = e - 1;
      if (d.page != w_.page[x] || d.page >= pages_ || d.cause != kNoCause || d.ranges.size() != 1 ||
          d.ranges[0].offset != w_.offset[x] || d.ranges[0].length != w_.length[x] ||
          d.bytes.size() != w_.length[x] ||
          std::memcmp(d.bytes.data(), w_.delta_bytes(x), w_.length[x]) != 0)
        return bad("delta of epoch " + std::to_string(e) + " differs from the workload's delta " +
                   std::to_string(x));
      std::memcpy(state_.data() + d.page * S + d.ranges[0].offset, d.bytes.data(), d.bytes.size());
      ++versions_[d.page];
      epoch_ = e;
    }
    return true;
  }

  bool check_snapshot(const fb::Snapshot* s, const format::FrameHeader& h) {
    if (!s || !s->ids() || !s->versions() || !s->epochs() || !s->sizes() || !s->data())
      return bad("snapshot frame with missing columns");
    const uint32_t m = s->ids()->size();
    if (s->versions()->size() != m || s->epochs()->size() != m || s->sizes()->size() != m ||
        s->part() >= s->parts() || h.first_epoch != h.last_epoch)
      return bad("snapshot part columns disagree");
    const size_t S = w_.spec.page_size;
    if (s->data()->size() != uint64_t{m} * S)
      return bad("snapshot part data size disagrees with its pages");
    const Epoch e = h.first_epoch;
    if (e > epoch_)
      return bad("snapshot part of epoch " + std::to_string(e) + " precedes deltas up to it");
    // Every delta up to e precedes the part; when nothing after e does yet,
    // the model is the state at e and the images must equal it.
    const bool checkable = e == epoch_;
    for (uint32_t i = 0; i < m; ++i) {
      const uint32_t id = s->ids()->Get(i);
      if (id >= pages_ || s->sizes()->Get(i) != S || s->epochs()->Get(i) != e)
        return bad("snapshot part lists page " + std::to_string(id) +
                   " with a wrong size or epoch");
      if (checkable && (s->versions()->Get(i) != versions_[id] ||
                        std::memcmp(s->data()->data() + uint64_t{i} * S,
                                    state_.data() + uint64_t{id} * S, S) != 0))
        return bad("snapshot " + std::to_string(s->id()) + " part " + std::to_string(s->part()) +
                   ": page p" + std::to_string(id) + " differs from the state at epoch " +
                   std::to_string(e));
    }
    ++(checkable ? out_->parts_checked : out_->parts_unchecked);
    auto& [seen, parts] = snapshot_parts_[s->id()];
    parts = s->parts();
    ++seen;
    return true;
  }

  bool check_index(const fb::SegmentIndex* idx, const std::vector<uint64_t>& offsets, uint64_t off,
                   const format::Trailer& t) {
    if (!idx || !idx->frames()) return bad("index frame without entries");
    if (t.index_offset != off || t.frames != offsets.size() ||
        idx->frames()->size() != offsets.size())
      return bad("index/trailer disagree with the frames read (" + std::to_string(offsets.size()) +
                 " frames)");
    for (uint32_t i = 0; i < offsets.size(); ++i)
      if (idx->frames()->Get(i)->offset() != offsets[i])
        return bad("index entry " + std::to_string(i) + " points at the wrong offset");
    return true;
  }

  const Workload& w_;
  ReadBack* out_;
  std::string* why_ = nullptr;
  std::string where_;
  std::vector<std::byte> state_;
  std::vector<uint64_t> versions_;
  Epoch epoch_ = 0;                                                   // last delta epoch read
  uint32_t pages_ = 0;                                                // pages declared so far
  std::map<uint32_t, std::pair<uint32_t, uint32_t>> snapshot_parts_;  // id -> (parts seen, parts)
  std::vector<std::byte> payload_, raw_;
  format::Decompressor unzstd_;
  format::BatchReader batch_;
};

}  // namespace

Outcome run_record(Context& ctx) {
  const Workload& w = ctx.workload;
  const std::string wl(w.spec.name);
  const double n = static_cast<double>(w.count());

  // Where the recordings go: --keep DIR/<workload>/ (the last run's stays),
  // else a temporary directory removed afterwards.
  std::unique_ptr<TempDir> tmp;
  fs::path dir;
  if (const std::string keep = ctx.keep_path(); !keep.empty()) {
    dir = keep;
  } else {
    tmp = std::make_unique<TempDir>("record");
    if (tmp->path().empty()) {
      note("record %s: FAILED: cannot create a temporary directory: %s", wl.c_str(),
           std::strerror(errno));
      return Outcome::kFailed;
    }
    dir = tmp->path() / wl;
  }
  {
    std::error_code ec;
    fs::create_directories(dir.parent_path(), ec);
    note("record %s: recording to %s (%s)%s", wl.c_str(), dir.c_str(),
         filesystem_of(dir.parent_path()).c_str(),
         tmp ? ", removed after each run" : ", the last run's kept");
  }

  // Outside every clock: how fast this filesystem takes write(2)s, over about
  // what one run writes (64 to 256 MiB a pass).
  const double disk_mbps = write_mb_per_s(
      dir.parent_path(), w, std::clamp<uint64_t>(w.total_bytes + w.total_bytes / 8, 64 << 20, 256 << 20));
  if (disk_mbps > 0)
    note("record %s: write(2) reference: %.0f MB/s", wl.c_str(), disk_mbps);
  else
    note("record %s: write(2) reference: could not write a file in %s (write_mb_per_s and "
         "app_overhead_floor report 0)",
         wl.c_str(), dir.parent_path().c_str());

  std::vector<double> total_s, app_s, plain_s, overhead, peak, hwm, dir_bytes, delta_bytes,
      snap_bytes, snapshots, segments, frames, waits;
  bool stats_total_noted = false;
  for (int r = 0; r < ctx.repeat(); ++r) {
    remove_old_segments(dir);
    ChildReport rep;
    std::string why;
    if (!measure_in_child(w, dir, &rep, &why)) {
      note("record %s: FAILED: %s", wl.c_str(), why.c_str());
      return Outcome::kFailed;
    }
    // Outside the clock: read the whole recording back.
    ReadBack back;
    Reader reader(w, &back);
    if (!reader.read(dir, &why)) {
      note("record %s: FAILED: the recording does not read back: %s", wl.c_str(), why.c_str());
      return Outcome::kFailed;
    }
    const uint64_t on_disk = directory_bytes(dir);
    const capture::RecorderStats& st = rep.stats;
    if (back.delta_frame_bytes != st.delta_bytes ||
        back.snapshot_frame_bytes != st.snapshot_bytes || back.snapshots != st.snapshots ||
        back.segments != st.segments) {
      note(
          "record %s: FAILED: RecorderStats (delta_bytes %llu, snapshot_bytes %llu, snapshots "
          "%llu, segments "
          "%llu) disagree with the files (%llu, %llu, %llu, %llu)",
          wl.c_str(), (unsigned long long)st.delta_bytes, (unsigned long long)st.snapshot_bytes,
          (unsigned long long)st.snapshots, (unsigned long long)st.segments,
          (unsigned long long)back.delta_frame_bytes, (unsigned long long)back.snapshot_frame_bytes,
          (unsigned long long)back.snapshots, (unsigned long long)back.segments);
      return Outcome::kFailed;
    }
    if (st.total_bytes != on_disk && !stats_total_noted) {
      note(
          "record %s: note: RecorderStats::total_bytes = %llu, the files hold %llu bytes "
          "(difference %lld)",
          wl.c_str(), (unsigned long long)st.total_bytes, (unsigned long long)on_disk,
          (long long)on_disk - (long long)st.total_bytes);
      stats_total_noted = true;
    }
    note(
        "record %s: run %d: %.3f s (apply loop %.3f s, plain %.3f s), %llu B on disk, %llu "
        "snapshot(s) "
        "(%llu part(s) checked), peak RSS +%.1f MB (%llu samples), %llu app wait(s)",
        wl.c_str(), r + 1, rep.total_seconds, rep.app_seconds, rep.plain_seconds,
        (unsigned long long)on_disk, (unsigned long long)st.snapshots,
        (unsigned long long)back.parts_checked,
        static_cast<double>(rep.peak_rss - rep.base_rss) / kMB,
        (unsigned long long)rep.rss_samples, (unsigned long long)st.app_waits);

    total_s.push_back(rep.total_seconds);
    app_s.push_back(rep.app_seconds);
    plain_s.push_back(rep.plain_seconds);
    overhead.push_back(rep.app_seconds / rep.plain_seconds);
    peak.push_back(static_cast<double>(rep.peak_rss) - static_cast<double>(rep.base_rss));
    hwm.push_back(static_cast<double>(rep.hwm) - static_cast<double>(rep.base_rss));
    dir_bytes.push_back(static_cast<double>(on_disk));
    delta_bytes.push_back(static_cast<double>(st.delta_bytes));
    snap_bytes.push_back(static_cast<double>(st.snapshot_bytes));
    snapshots.push_back(static_cast<double>(st.snapshots));
    segments.push_back(static_cast<double>(st.segments));
    frames.push_back(static_cast<double>(st.frames));
    waits.push_back(static_cast<double>(st.app_waits));
    if (tmp) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  }

  const double s = median(total_s);
  const double peak_mb = median(peak) / kMB;
  const double state_mb = static_cast<double>(w.state_bytes()) / kMB;
  JsonLine("record", w.spec.name)
      .num("deltas_per_s", n / s)
      .num("mb_per_s", static_cast<double>(w.total_bytes) / s / kMB)
      .num("log_bytes_per_delta", median(delta_bytes) / n)
      .num("bytes_per_delta", median(dir_bytes) / n)
      .num("app_overhead", median(overhead))
      .num("app_waits", median(waits))
      .num("write_mb_per_s", disk_mbps)
      // The least app_overhead any lossless recorder could show here: the
      // application cannot outrun, by more than the ring, a writer that must
      // write(2) the recording's bytes at write_mb_per_s.
      .num("app_overhead_floor",
           disk_mbps > 0 ? std::max(1.0, median(dir_bytes) / (disk_mbps * kMB) / median(plain_s)) : 0)
      .num("peak_rss_mb", peak_mb)
      .num("state_mb", state_mb)
      .num("rss_over_state_mb", peak_mb - state_mb)
      .num("hwm_rss_mb", median(hwm) / kMB)
      .num("snapshot_bytes_per_delta", median(snap_bytes) / n)
      .num("log_ratio_data", median(delta_bytes) / static_cast<double>(w.total_bytes))
      .num("snapshots", median(snapshots))
      .num("segments", median(segments))
      .num("frames", median(frames))
      .num("app_deltas_per_s", n / median(app_s))
      .num("plain_deltas_per_s", n / median(plain_s))
      .integer("deltas", static_cast<int64_t>(w.count()))
      .num("seconds", s)
      .num("app_seconds", median(app_s))
      .num("plain_seconds", median(plain_s))
      .emit();
  return Outcome::kOk;
}

}  // namespace mmsb::bench
