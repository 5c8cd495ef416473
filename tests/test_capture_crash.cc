// Crash safety: a forked child records a deterministic pseudo-random workload
// and is killed with SIGKILL at a random moment; what the independent reader
// finds must be an exact prefix of that workload's history (regenerated here
// with the plain model). Damaged tails (garbage, truncation, bit flips) and a
// file size limit (RLIMIT_FSIZE) must also leave an exact prefix.
//
// Children never touch Catch2: they run plain code and leave with _exit().
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "engine_model.h"
#include "mmsb/bus.h"
#include "mmsb/capture/recorder.h"
#include "mmsb/format.h"
#include "tlog_reader.h"

namespace fs = std::filesystem;
using mmsb::Bus;
using mmsb::Code;
using mmsb::Epoch;
using mmsb::capture::Recorder;
using mmsb::capture::RecorderOptions;

namespace {

using model::TempDir;

// One delta of the deterministic history.
struct Want {
  uint64_t epoch = 0;
  uint32_t page = 0;
  uint64_t base = 0;
  std::vector<model::Run> runs;
  std::vector<uint8_t> bytes;
};

// One operation of the workload.
struct Op {
  enum Kind { kWrite, kApply, kAssign, kCreate } kind = kWrite;
  uint32_t page = 0;
  uint64_t offset = 0;               // kWrite
  std::vector<model::Run> runs;      // kApply, kAssign (the expected diff)
  std::vector<uint8_t> bytes;        // kWrite/kApply values; kAssign: the full image
  uint64_t base = 0;                 // kApply: the base version
  uint64_t size = 0;                 // kCreate
  std::string name;                  // kCreate
};

// The deterministic workload: the same seed gives the same operations, each
// applied to the model as it is generated. Every non-create operation is
// exactly one delta (assign always changes at least one byte).
class History {
 public:
  explicit History(uint64_t seed) : rng_(seed) {
    const uint64_t sizes[] = {64, 1000, 4096, 5, 20000, 333, 1};
    for (size_t i = 0; i < std::size(sizes); ++i) m.create(sizes[i], i % 2 ? "" : "p" + std::to_string(i));
  }

  model::Model m;
  std::vector<Want> deltas;  // filled when `keep` is set
  bool keep = true;

  Op next() {
    Op op;
    const uint64_t r = rng_.below(1000);
    if (r < 8 && m.pages.size() < 40) {
      const uint64_t sizes[] = {7, 64, 300, 4096, 5000, 1, 65536};
      op.kind = Op::kCreate;
      op.size = sizes[rng_.below(std::size(sizes))];
      op.name = m.pages.size() % 2 ? "" : "c" + std::to_string(m.pages.size());
      m.create(op.size, op.name);
      return op;
    }
    op.page = static_cast<uint32_t>(rng_.below(m.pages.size()));
    const uint64_t size = m.pages[op.page].bytes.size();
    const uint64_t base = m.pages[op.page].version;
    if (r < 750) {
      op.kind = Op::kWrite;
      op.offset = rng_.below(size);
      op.bytes = rng_.bytes(rng_.between(1, std::min<uint64_t>(64, size - op.offset)));
      op.runs = {{op.offset, op.bytes.size()}};
      const uint64_t e = m.write(op.page, op.offset, op.bytes);
      add(e, op.page, base, op.runs, op.bytes);
    } else if (r < 900) {
      op.kind = Op::kApply;
      uint64_t cur = rng_.below(std::min<uint64_t>(size, 16));
      const uint64_t k = rng_.between(1, 4);
      uint64_t total = 0;
      while (op.runs.size() < k && cur < size) {
        const uint64_t len = rng_.between(1, std::min<uint64_t>(24, size - cur));
        op.runs.push_back({cur, len});
        total += len;
        cur += len + 1 + rng_.below(40);
      }
      op.bytes = rng_.bytes(total);
      op.base = base;
      const uint64_t e = m.apply(op.page, op.runs, op.bytes);
      add(e, op.page, base, op.runs, op.bytes);
    } else {
      op.kind = Op::kAssign;
      std::vector<uint8_t> image = m.pages[op.page].bytes;
      const uint64_t n = rng_.between(1, 3);
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t off = rng_.below(size);
        const uint64_t len = rng_.between(1, std::min<uint64_t>(16, size - off));
        for (uint64_t j = 0; j < len; ++j) image[off + j] ^= static_cast<uint8_t>(rng_.byte() | 1);
      }
      if (image == m.pages[op.page].bytes) image[0] ^= 1;  // flips can cancel out: keep one delta per op
      op.runs = model::diff_runs(m.pages[op.page].bytes, image);
      op.bytes = image;
      const uint64_t e = m.assign(op.page, image);
      add(e, op.page, base, op.runs, model::gather(image, op.runs));
    }
    return op;
  }

  // Runs the workload until the model reaches `epoch` (one delta per op).
  void run_to(uint64_t epoch) {
    while (m.epoch < epoch) next();
  }

 private:
  void add(uint64_t e, uint32_t page, uint64_t base, const std::vector<model::Run>& runs,
           const std::vector<uint8_t>& bytes) {
    if (keep) deltas.push_back({e, page, base, runs, bytes});
  }
  model::Rng rng_;
};

// Applies one op to the bus; false when the bus disagrees with the model.
bool apply_op(Bus& bus, const Op& op, uint64_t want_epoch) {
  Epoch e = 0;
  mmsb::Status s;
  switch (op.kind) {
    case Op::kCreate: {
      auto id = bus.create_page(op.size, op.name);
      return id.ok();
    }
    case Op::kWrite: s = bus.write(op.page, op.offset, model::to_bytes(op.bytes), &e); break;
    case Op::kApply: {
      const std::vector<mmsb::Range> ranges = model::to_ranges(op.runs);
      const std::vector<std::byte> bytes = model::to_bytes(op.bytes);
      s = bus.apply(mmsb::DeltaView{op.page, op.base, 0, 0, ranges, bytes}, &e);
      break;
    }
    case Op::kAssign: s = bus.assign(op.page, model::to_bytes(op.bytes), &e); break;
  }
  if (s.ok() && e == want_epoch) return true;
  // Diagnostics for the parent's INFO (children have no Catch2).
  std::fprintf(stderr, "child: op kind %d page %u offset %llu runs %zu base %llu: %s, epoch %llu want %llu\n",
               static_cast<int>(op.kind), op.page, static_cast<unsigned long long>(op.offset), op.runs.size(),
               static_cast<unsigned long long>(op.base), s.to_string().c_str(), static_cast<unsigned long long>(e),
               static_cast<unsigned long long>(want_epoch));
  return false;
}

// Child exit codes (anything but these is a crash).
enum ChildExit : int {
  kChildOk = 0,
  kChildStartFailed = 20,
  kChildBusDisagrees = 21,
  kChildFlushFailed = 22,
  kChildNoError = 30,
  kChildWrongCode = 31,
  kChildNoFileInMessage = 32,
  kChildNoLimitInMessage = 33,
  kChildStatusDiffers = 34,
  kChildStopDiffers = 35,
  kChildBusStuck = 36,
};

RecorderOptions crash_options() {
  RecorderOptions opt;
  opt.program = "crash-child";
  opt.flush_interval = std::chrono::milliseconds(5);
  opt.batch_deltas = 64;
  opt.segment_bytes = 40 << 10;
  opt.snapshot_every_deltas = 600;
  opt.snapshot_log_ratio = 0;
  opt.snapshot_part_bytes = 8 << 10;
  return opt;
}

// The size of the highest-numbered segment file (0 if none).
uint64_t last_segment_bytes(const fs::path& dir) {
  std::string last;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) last = std::max(last, e.path().filename().string());
  return last.empty() ? 0 : fs::file_size(dir / last, ec);
}

// The child: creates the initial pages, records, runs the workload (forever
// when max_ops is 0), flushing every 500 ops; after the first flush past
// epoch 300 it writes one byte to ready_fd. Plain code only; returns the exit
// code.
int child_record(const fs::path& dir, uint64_t seed, int ready_fd, uint64_t max_ops, bool stop_at_end) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  Bus bus;
  History h(seed);
  h.keep = false;
  for (const model::Page& p : h.m.pages)
    if (!bus.create_page(p.bytes.size(), p.name).ok()) return kChildStartFailed;
  auto started = Recorder::start(bus, dir, crash_options());
  if (!started.ok()) return kChildStartFailed;
  std::unique_ptr<Recorder> rec = std::move(*started);
  bool told = false;
  for (uint64_t i = 0; max_ops == 0 || i < max_ops; ++i) {
    const Op op = h.next();
    if (!apply_op(bus, op, h.m.epoch)) return kChildBusDisagrees;
    if (i % 500 == 499) {
      if (!rec->flush().ok()) return kChildFlushFailed;
      if (!told && ready_fd >= 0 && h.m.epoch >= 300) {
        const char c = 'r';
        if (::write(ready_fd, &c, 1) != 1) return kChildFlushFailed;
        told = true;
      }
    }
  }
  // Go on until the last segment holds a few frames (rotation may just have
  // opened it): the tail tests damage that segment.
  for (uint64_t i = 0; max_ops != 0 && last_segment_bytes(dir) < 8192; ++i) {
    const Op op = h.next();
    if (!apply_op(bus, op, h.m.epoch)) return kChildBusDisagrees;
    if (i % 50 == 49 && !rec->flush().ok()) return kChildFlushFailed;
  }
  if (!rec->flush().ok()) return kChildFlushFailed;
  // Without stop() -- and without the recorder's destructor, which stops it --
  // the last segment stays without trailer, as after a crash.
  if (!stop_at_end) ::_exit(kChildOk);
  if (!rec->stop().ok()) return kChildFlushFailed;
  return kChildOk;
}

std::string describe_wait(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                                  strsignal(WTERMSIG(status)) + ")";
  return "status " + std::to_string(status);
}

// Runs child_record in a child that finishes on its own; returns its wait status.
int run_child_to_end(const fs::path& dir, uint64_t seed, uint64_t ops, bool stop_at_end) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(child_record(dir, seed, -1, ops, stop_at_end));
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// "" when `rec` holds exactly the first deltas of the seeded history (and
// nothing else), and its state at its last epoch equals the model's.
std::string check_prefix(const tlogr::Recording& rec, uint64_t seed) {
  if (!rec.ok()) return "not readable: " + rec.error;
  if (!rec.problems.empty()) return "problem: " + rec.problems.front();
  if (!rec.gap.empty()) return "gap: " + rec.gap;
  if (rec.start_epoch != 0) return "start epoch " + std::to_string(rec.start_epoch);
  History h(seed);
  h.run_to(rec.last_epoch);
  if (h.deltas.size() != rec.deltas.size())
    return std::to_string(rec.deltas.size()) + " deltas, the history has " + std::to_string(h.deltas.size()) +
           " up to epoch " + std::to_string(rec.last_epoch);
  for (size_t i = 0; i < rec.deltas.size(); ++i) {
    const tlogr::Delta& d = rec.deltas[i];
    const Want& w = h.deltas[i];
    if (d.epoch != w.epoch || d.page != w.page || d.cause != 0 || d.runs != w.runs || d.bytes != w.bytes ||
        d.base_version != std::optional<uint64_t>(w.base))
      return "delta #" + std::to_string(i) + " (epoch " + std::to_string(d.epoch) + ", page " +
             std::to_string(d.page) + ") differs from the history (epoch " + std::to_string(w.epoch) + ", page " +
             std::to_string(w.page) + ")";
  }
  for (const tlogr::PageDecl& p : rec.pages) {
    if (p.id >= h.m.pages.size()) {
      // Declared, created at the last epoch or later: the model may not have
      // reached its creation yet. Generate on until it does.
      History more(seed);
      more.keep = false;
      while (more.m.pages.size() <= p.id && more.m.epoch <= rec.last_epoch + 100000) more.next();
      if (more.m.pages.size() <= p.id) return "page " + std::to_string(p.id) + " is not in the history";
      if (more.m.pages[p.id].bytes.size() != p.size || more.m.pages[p.id].name != p.name ||
          more.m.pages[p.id].created_epoch != p.created_epoch)
        return "page " + std::to_string(p.id) + " declared differently from the history";
      continue;
    }
    const model::Page& m = h.m.pages[p.id];
    if (m.bytes.size() != p.size || m.name != p.name || m.created_epoch != p.created_epoch)
      return "page " + std::to_string(p.id) + " declared differently from the history";
  }
  std::string why;
  for (int via : {-2, -1}) {
    auto st = rec.state_at(rec.last_epoch, via, &why);
    if (!st) return "no state at " + std::to_string(rec.last_epoch) + ": " + why;
    const size_t n = std::min(st->size(), h.m.pages.size());
    const std::vector<model::Page> pages(h.m.pages.begin(), h.m.pages.begin() + static_cast<long>(n));
    const std::string d = tlogr::compare_state(*st, pages, rec.last_epoch);
    if (!d.empty()) return (via == -2 ? "state (best snapshot): " : "state (from epoch 0): ") + d;
  }
  const auto snap = rec.verify_snapshots();
  if (!snap.empty()) return "snapshot: " + snap.front();
  return {};
}

// Every segment but the last is closed cleanly; the walk of the last may stop
// at a torn frame.
std::string check_segments(const tlogr::Recording& rec) {
  for (size_t i = 0; i + 1 < rec.segments.size(); ++i) {
    const tlogr::Segment& s = rec.segments[i];
    if (!s.stop.empty()) return s.name + " (not the last) stopped: " + s.stop;
    if (!s.has_trailer || !s.index_ok) return s.name + " (not the last) has no valid trailer/index";
  }
  return {};
}

// A crash (or a write cut short by a limit) can only leave a frame that is
// whole up to where it stops: the walk of the last segment ends cleanly, or
// at a frame the file ends inside of -- never at garbage or a bad checksum.
bool tail_is_torn_only(const tlogr::Segment& s) {
  return s.stop.empty() || s.stop.rfind("torn frame header", 0) == 0 ||
         s.stop.find("runs past the end of the file") != std::string::npos ||
         s.stop.rfind("torn file header", 0) == 0;
}

void copy_dir(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

}  // namespace

TEST_CASE("kill -9 at random moments: the recording is an exact prefix of the history", "[capture][crash]") {
  model::Rng rng(0xdead0001);
  const int iterations = 30;
  int torn = 0, multi_segment = 0, with_snapshot = 0;
  uint64_t total_deltas = 0;
  for (int it = 0; it < iterations; ++it) {
    const uint64_t seed = 0x5eed0000 + static_cast<uint64_t>(it);
    INFO("iteration " << it << " seed " << seed);
    TempDir dir("kill");
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      ::_exit(child_record(dir.path, seed, fds[1], 0, false));
    }
    ::close(fds[1]);
    char c = 0;
    const ssize_t got = ::read(fds[0], &c, 1);  // the child flushed past epoch 300
    ::close(fds[0]);
    // The live writer holds the recording's lock (what keeps recover off it).
    if (got == 1) CHECK(mmsb::format::DirLock::held(dir.path));
    if (got == 1) std::this_thread::sleep_for(std::chrono::milliseconds(rng.below(60)));
    ::kill(pid, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    INFO("child " << describe_wait(status));
    REQUIRE(got == 1);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);
    CHECK_FALSE(mmsb::format::DirLock::held(dir.path));  // the kernel dropped it with the process

    const tlogr::Recording rec = tlogr::read_recording(dir.path);
    INFO(rec.summary());
    REQUIRE(rec.ok());
    CHECK(rec.last_epoch >= 300);  // flush() had returned for these
    CHECK(check_segments(rec) == "");
    CHECK(check_prefix(rec, seed) == "");
    CHECK(tail_is_torn_only(rec.segments.back()));
    if (!rec.segments.back().stop.empty()) ++torn;
    if (rec.segments.size() > 1) ++multi_segment;
    if (std::any_of(rec.snapshots.begin(), rec.snapshots.end(), [](const tlogr::Snapshot& s) { return s.complete; }))
      ++with_snapshot;
    total_deltas += rec.deltas.size();
  }
  // Not assertions about timing: just what the runs covered.
  WARN("kill -9 runs: " << iterations << ", torn tails " << torn << ", multi-segment " << multi_segment
                        << ", with a complete snapshot " << with_snapshot << ", deltas read " << total_deltas);
}

TEST_CASE("damaged tails: garbage, truncation and bit flips leave an exact prefix", "[capture][crash]") {
  const uint64_t seed = 0x7a110001;
  const bool closed = GENERATE(false, true);
  INFO((closed ? "closed recording" : "recording without trailer (writer died)"));
  TempDir base("tail-base");
  const int status = run_child_to_end(base.path, seed, 3500, closed);
  INFO("child " << describe_wait(status));
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == kChildOk);

  const tlogr::Recording orig = tlogr::read_recording(base.path);
  INFO(orig.summary());
  REQUIRE(orig.ok());
  REQUIRE(orig.clean());
  REQUIRE(check_prefix(orig, seed) == "");
  REQUIRE(orig.segments.size() >= 2);
  CHECK(orig.segments.back().has_trailer == closed);
  const size_t last = orig.segments.size() - 1;
  const tlogr::Segment& L = orig.segments[last];
  REQUIRE(L.frame_count >= 3);

  // The deltas that survive when the last segment keeps only frames [0, k).
  auto expected_prefix = [&](size_t frames_kept) {
    size_t n = 0;
    for (const tlogr::Delta& d : orig.deltas) {
      const tlogr::Frame& f = orig.frames[d.frame];
      if (f.segment == last && d.frame >= L.first_frame + frames_kept) break;
      ++n;
    }
    return n;
  };

  model::Rng rng(seed ^ (closed ? 1 : 2));
  const std::vector<uint8_t> file = tlogr::read_file(L.path);
  for (int trial = 0; trial < 27; ++trial) {
    TempDir dir("tail");
    copy_dir(base.path, dir.path);
    const fs::path seg = dir.path / L.name;
    std::vector<uint8_t> bytes = file;
    size_t kept = L.frame_count;
    std::string what;
    switch (trial % 3) {
      case 0: {  // truncate at a random offset (sometimes a frame boundary, sometimes inside the header)
        uint64_t t = rng.below(bytes.size());
        if (trial % 9 == 0) t = orig.frames[L.first_frame + rng.below(L.frame_count)].offset;
        if (trial % 9 == 3) t = rng.below(tlogr::kFileHeaderBytes);
        bytes.resize(t);
        kept = 0;
        while (kept < L.frame_count && orig.frames[L.first_frame + kept].end() <= t) ++kept;
        what = "truncated to " + std::to_string(t) + " bytes";
        break;
      }
      case 1: {  // garbage appended (sometimes starting like a frame)
        std::vector<uint8_t> junk = rng.bytes(rng.between(1, 300));
        if (trial % 2 && junk.size() >= 4) std::memcpy(junk.data(), "MMSF", 4);
        bytes.insert(bytes.end(), junk.begin(), junk.end());
        what = std::to_string(junk.size()) + " garbage bytes appended";
        break;
      }
      case 2: {  // one bit flipped in the last frame, or in a random frame of the segment
        const size_t k = trial % 2 ? L.frame_count - 1 : rng.below(L.frame_count);
        const tlogr::Frame& f = orig.frames[L.first_frame + k];
        const uint64_t at = f.offset + rng.below(f.bytes());
        bytes[at] ^= static_cast<uint8_t>(1u << rng.below(8));
        kept = k;
        what = "bit flipped at offset " + std::to_string(at) + " in frame " + std::to_string(k) + " (kind " +
               std::to_string(f.kind) + ")";
        break;
      }
    }
    tlogr::write_file(seg, bytes);
    INFO("trial " << trial << ": " << L.name << " " << what);
    const tlogr::Recording rec = tlogr::read_recording(dir.path);
    INFO(rec.summary());
    REQUIRE(rec.ok());
    CHECK(rec.problems.empty());
    CHECK(rec.gap.empty());
    // The damage was seen -- unless the file was cut exactly at a frame boundary.
    bool at_boundary = trial % 3 == 0 && bytes.size() == tlogr::kFileHeaderBytes;
    if (trial % 3 == 0)
      for (size_t k = 0; k < L.frame_count; ++k) at_boundary |= orig.frames[L.first_frame + k].end() == bytes.size();
    if (!at_boundary) CHECK(!rec.segments.back().stop.empty());
    const size_t want = expected_prefix(kept);
    CHECK(rec.deltas.size() == want);
    CHECK(check_prefix(rec, seed) == "");
    CHECK(check_segments(rec) == "");
  }
}

TEST_CASE("file size limit: the recorder reports EFBIG clearly, survives, and earlier frames stay a prefix",
          "[capture][crash][disk-full]") {
  const uint64_t seed = 0xf11e0001;
  TempDir dir("fsize");
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::alarm(60);  // a watchdog against a hang, not a timing assertion
    ::signal(SIGXFSZ, SIG_DFL);  // the recorder must cope with the default action
    struct rlimit lim{64 << 10, 64 << 10};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(kChildStartFailed);
    auto report = [&](int code, const std::string& msg) {
      const std::string m = msg.substr(0, 4000);
      (void)!::write(fds[1], m.data(), m.size());
      ::_exit(code);
    };
    Bus bus;
    History h(seed);
    h.keep = false;
    for (const model::Page& p : h.m.pages)
      if (!bus.create_page(p.bytes.size(), p.name).ok()) report(kChildStartFailed, "create_page");
    RecorderOptions opt = crash_options();
    opt.segment_bytes = 64 << 20;  // one segment: it runs into the limit
    auto started = Recorder::start(bus, dir.path, opt);
    if (!started.ok()) report(kChildStartFailed, started.status().to_string());
    std::unique_ptr<Recorder> rec = std::move(*started);
    mmsb::Status err;
    for (uint64_t i = 0; i < 400000 && err.ok(); ++i) {
      const Op op = h.next();
      if (!apply_op(bus, op, h.m.epoch)) report(kChildBusDisagrees, "apply");
      if (i % 200 == 199) err = rec->flush();
    }
    if (err.ok()) report(kChildNoError, "no error after 400000 ops");
    const std::string msg = err.message();
    if (err.code() != Code::kIOError) report(kChildWrongCode, err.to_string());
    if (msg.find("seg-000000.tlog") == std::string::npos) report(kChildNoFileInMessage, msg);
    if (msg.find("limit") == std::string::npos && msg.find("File too large") == std::string::npos)
      report(kChildNoLimitInMessage, msg);
    const mmsb::Status st = rec->status();
    if (st.code() != err.code() || st.message() != msg) report(kChildStatusDiffers, st.to_string());
    // The application runs on: far more than the TLog ring holds.
    for (uint64_t i = 0; i < 40000; ++i) {
      const Op op = h.next();
      if (!apply_op(bus, op, h.m.epoch)) report(kChildBusStuck, "apply after the error");
    }
    const mmsb::Status again = rec->flush();
    if (again.code() != Code::kIOError) report(kChildStatusDiffers, "flush after the error: " + again.to_string());
    const mmsb::Status stopped = rec->stop();
    if (stopped.code() != Code::kIOError) report(kChildStopDiffers, stopped.to_string());
    report(kChildOk, msg);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO("child " << describe_wait(status) << ": " << msg);
  REQUIRE(WIFEXITED(status));  // not killed by SIGXFSZ (25) or anything else
  REQUIRE(WEXITSTATUS(status) == kChildOk);
  WARN("the recorder's error: " << msg);

  const tlogr::Recording rec = tlogr::read_recording(dir.path);
  INFO(rec.summary());
  REQUIRE(rec.ok());
  REQUIRE(rec.segments.size() == 1);
  CHECK(rec.segments[0].file_size <= (64u << 10));
  CHECK_FALSE(rec.segments[0].has_trailer);
  CHECK(tail_is_torn_only(rec.segments[0]));
  CHECK(rec.last_epoch > 0);
  CHECK(check_prefix(rec, seed) == "");
}
