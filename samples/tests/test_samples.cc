// The samples' claims, checked by running them briefly and reading what they
// recorded with mmsb::replay:
//   physics          two runs record identical histories; derived deltas name
//                    their cause; the recorded final state is the live one
//   nondeterminism   identical without the switch; with it, the first
//                    divergence is in 'bodies', in the storm's first step,
//                    and the recorded wind differs
//   crash            a SIGKILLed run, recovered, keeps every durable epoch and
//                    equals an uncrashed reference run up to where it ends; a
//                    torn tail is cut; the resumed run starts from exactly the
//                    recovered state and ends where the reference ends
// The reference is always a separate run of the program, never the code under
// test: two runs, or a run that did not crash.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "mmsb/format.h"
#include "mmsb/replay/index.h"
#include "mmsb/replay/recording.h"
#include "mmsb/replay/tools.h"

namespace fs = std::filesystem;
using mmsb::Epoch;
using mmsb::PageId;
using mmsb::replay::CompareOptions;
using mmsb::replay::CompareReport;
using Outcome = mmsb::replay::CompareReport::Outcome;

namespace {

// A directory removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path() /
           ("mmsb-sample-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

// One run of a program: its wait status and everything it printed.
struct Run {
  int status = -1;
  std::string output;
  bool exited_ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
  bool killed_by(int sig) const { return WIFSIGNALED(status) && WTERMSIG(status) == sig; }
};

Run run(const std::string& program, const std::vector<std::string>& args, const fs::path& log) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) ::_exit(127);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  Run r;
  while (::waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  return r;
}

// The last match of `pattern` in `text` (its first group, as a number).
uint64_t last_number(const std::string& text, const std::string& pattern, int group = 1) {
  const std::regex re(pattern);
  uint64_t value = 0;
  bool found = false;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    value = std::stoull((*it)[group].str(), nullptr, 0);
    found = true;
  }
  INFO("looking for /" << pattern << "/ in:\n" << text);
  REQUIRE(found);
  return value;
}
std::string state_hash_of(const std::string& output) {
  std::smatch m;
  INFO(output);
  REQUIRE(std::regex_search(output, m, std::regex("state hash ([0-9a-f]{16})")));
  return m[1].str();
}

// A recording opened and indexed.
struct Opened {
  std::unique_ptr<mmsb::replay::Recording> rec;
  std::unique_ptr<mmsb::replay::Index> index;
  PageId page(const std::string& name) const {
    if (std::optional<PageId> id = rec->page_named(name)) return *id;
    FAIL("no page '" << name << "' in " << rec->dir());
    return mmsb::kNoPage;
  }
  std::vector<std::byte> page_at(const std::string& name, Epoch epoch) const {
    std::vector<std::byte> out;
    const mmsb::Status s = index->page_at(page(name), epoch, &out);
    INFO(s.to_string());
    REQUIRE(s.ok());
    return out;
  }
  template <class T>
  T read_at(const std::string& name, Epoch epoch, size_t offset = 0) const {
    const std::vector<std::byte> bytes = page_at(name, epoch);
    REQUIRE(offset + sizeof(T) <= bytes.size());
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof value);
    return value;
  }
};
Opened open(const fs::path& dir) {
  Opened o;
  auto rec = mmsb::replay::Recording::open(dir);
  INFO(dir << ": " << rec.status().to_string());
  REQUIRE(rec.ok());
  o.rec = std::move(rec).value();
  auto index = mmsb::replay::Index::build(*o.rec);
  INFO(dir << ": " << index.status().to_string());
  REQUIRE(index.ok());
  o.index = std::move(index).value();
  return o;
}

CompareReport compare(const Opened& a, const Opened& b, CompareOptions options = {}) {
  auto r = mmsb::replay::compare(*a.index, *b.index, options);
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  INFO("compare: " << r.value().summary);
  return std::move(r).value();
}

}  // namespace

#ifdef MMSB_SAMPLE_PHYSICS  // built when Box2D is found
TEST_CASE("physics: two runs record identical histories") {
  TempDir tmp("physics");
  const std::vector<std::string> args = {"--steps", "150", "--print-every", "0", "--record"};
  auto with = [&](const std::string& dir) {
    std::vector<std::string> a = args;
    a.push_back((tmp / dir).string());
    return a;
  };
  const Run r1 = run(MMSB_SAMPLE_PHYSICS, with("a.mmsb"), tmp / "a.log");
  const Run r2 = run(MMSB_SAMPLE_PHYSICS, with("b.mmsb"), tmp / "b.log");
  REQUIRE(r1.exited_ok());
  REQUIRE(r2.exited_ok());
  const Opened a = open(tmp / "a.mmsb"), b = open(tmp / "b.mmsb");
  REQUIRE(a.rec->damage().ok());
  REQUIRE(a.index->last_epoch() >= 3 * 150);  // every step moves something and writes 'world'

  const CompareReport report = compare(a, b);
  INFO(report.summary);
  CHECK(report.outcome == Outcome::kIdentical);
  CHECK(report.epochs_compared >= a.index->last_epoch());

  // The recorded final state is the one the program had (it prints its hash).
  mmsb::replay::StateView view(*a.index);
  REQUIRE(view.seek(a.index->last_epoch()).ok());
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016" PRIx64, view.state_hash());
  CHECK(state_hash_of(r1.output) == hash);
  CHECK(a.read_at<uint64_t>("world", a.index->last_epoch()) == 150);  // WorldHeader::step

  // The dependency graph at work: 'regions' deltas are derived, and each one
  // names a 'bodies' delta as its cause; the application's deltas are not.
  const PageId bodies = a.page("bodies"), regions = a.page("regions");
  REQUIRE(!a.index->page_epochs(regions).empty());
  for (const Epoch e : a.index->page_epochs(regions)) {
    const auto d = a.index->delta(e);
    REQUIRE(d.has_value());
    REQUIRE(d->derived());
    CHECK(a.index->delta(d->cause)->page == bodies);
  }
  for (const Epoch e : a.index->page_epochs(bodies)) CHECK_FALSE(a.index->delta(e)->derived());
}

#endif  // MMSB_SAMPLE_PHYSICS

#ifdef MMSB_SAMPLE_NONDETERMINISM
TEST_CASE("nondeterminism: without the switch two runs are identical") {
  TempDir tmp("nd-off");
  const Run r1 = run(MMSB_SAMPLE_NONDETERMINISM, {"--steps", "60", "--record", (tmp / "a.mmsb").string()}, tmp / "a.log");
  const Run r2 = run(MMSB_SAMPLE_NONDETERMINISM, {"--steps", "60", "--record", (tmp / "b.mmsb").string()}, tmp / "b.log");
  REQUIRE(r1.exited_ok());
  REQUIRE(r2.exited_ok());
  const CompareReport report = compare(open(tmp / "a.mmsb"), open(tmp / "b.mmsb"));
  CHECK(report.outcome == Outcome::kIdentical);
}

TEST_CASE("nondeterminism: with the switch two runs diverge in page bodies in the first storm step") {
  TempDir tmp("nd-on");
  constexpr uint64_t kStorm = 20;
  auto args = [&](const std::string& dir) {
    return std::vector<std::string>{"--steps", "45", "--storm-step", std::to_string(kStorm), "--nondeterministic",
                                    "--record", (tmp / dir).string()};
  };
  const Run r1 = run(MMSB_SAMPLE_NONDETERMINISM, args("a.mmsb"), tmp / "a.log");
  const Run r2 = run(MMSB_SAMPLE_NONDETERMINISM, args("b.mmsb"), tmp / "b.log");
  REQUIRE(r1.exited_ok());
  REQUIRE(r2.exited_ok());
  const Opened a = open(tmp / "a.mmsb"), b = open(tmp / "b.mmsb");
  const CompareReport report = compare(a, b);
  INFO(report.summary);
  REQUIRE(report.outcome == Outcome::kDiverged);
  CHECK(report.page_name == "bodies");
  REQUIRE(!report.ranges.empty());
  CHECK(report.a_bytes.size() == report.b_bytes.size());
  CHECK(report.a_bytes != report.b_bytes);

  // Where: the state before the divergent delta is the end of step kStorm-1
  // ('world' is written last in a step), identical in both runs.
  const Epoch e = report.epoch;
  REQUIRE(e > 1);
  CHECK(a.read_at<uint64_t>("world", e - 1) == kStorm - 1);
  CHECK(b.read_at<uint64_t>("world", e - 1) == kStorm - 1);
  CHECK(a.index->delta(e)->page == a.page("bodies"));

  // Why: the wind the step used, recorded in 'world' (offset 16: wind_x,
  // wind_y) when the step completes, differs between the runs.
  const auto world_a = a.index->next_change(a.page("world"), e);
  const auto world_b = b.index->next_change(b.page("world"), e);
  REQUIRE(world_a.has_value());
  REQUIRE(world_b.has_value());
  CHECK(a.read_at<uint64_t>("world", *world_a) == kStorm);
  const std::vector<std::byte> wa = a.page_at("world", *world_a), wb = b.page_at("world", *world_b);
  CHECK(std::memcmp(wa.data() + 16, wb.data() + 16, 8) != 0);
}

#endif  // MMSB_SAMPLE_NONDETERMINISM

namespace {
// Runs mmsb-sample-crash to `steps` into `dir`, killed by SIGKILL after
// `crash_at`; returns the last durable epoch it announced.
Epoch crashed_run(const TempDir& tmp, const std::string& dir, int steps, int crash_at, std::string* output) {
  const Run r = run(MMSB_SAMPLE_CRASH,
                    {"--steps", std::to_string(steps), "--flush-every", "10", "--crash-at", std::to_string(crash_at),
                     "--record", (tmp / dir).string()},
                    tmp / (dir + ".log"));
  INFO(r.output);
  REQUIRE(r.killed_by(SIGKILL));
  *output = r.output;
  CHECK(last_number(r.output, R"(crash: SIGKILL at step (\d+))") == static_cast<uint64_t>(crash_at));
  return last_number(r.output, R"(durable: step \d+, epoch (\d+))");
}

// Checks the recording in `dir` after recover, and returns it opened:
// undamaged, holding every durable epoch, and a strict prefix of the
// uncrashed run `reference` (every epoch it holds equals the reference's).
Opened check_recovered(const Opened& reference, const fs::path& dir, Epoch durable) {
  Opened recovered = open(dir);
  CHECK(recovered.rec->damage().ok());
  CHECK(recovered.index->last_epoch() >= durable);
  const CompareReport prefix = compare(reference, recovered);
  CHECK(prefix.outcome == Outcome::kPrefix);
  CHECK(prefix.shorter == "b");
  CHECK(prefix.b_last == recovered.index->last_epoch());
  return recovered;
}
}  // namespace

TEST_CASE("crash: recovery keeps every durable epoch and the resumed run ends where an uncrashed run ends") {
  TempDir tmp("crash");
  const Run ref = run(MMSB_SAMPLE_CRASH, {"--steps", "120", "--record", (tmp / "ref.mmsb").string()}, tmp / "ref.log");
  REQUIRE(ref.exited_ok());
  std::string out;
  const Epoch durable = crashed_run(tmp, "bank.mmsb", 120, 77, &out);
  CHECK(last_number(out, R"(durable: step (\d+), epoch)") == 70);

  // recover: a kill leaves at most a torn last frame and an unclosed segment.
  auto rec = mmsb::replay::recover(tmp / "bank.mmsb");
  INFO(rec.status().to_string());
  REQUIRE(rec.ok());
  INFO(rec.value().summary);
  REQUIRE(rec.value().outcome != mmsb::replay::RecoverReport::Outcome::kNothing);
  CHECK(rec.value().last_good_epoch >= durable);

  const Opened reference = open(tmp / "ref.mmsb");
  const Opened recovered = check_recovered(reference, tmp / "bank.mmsb", durable);

  // Resume: from the last complete step, into a new recording.
  const Run resumed = run(MMSB_SAMPLE_CRASH,
                          {"--steps", "120", "--resume", (tmp / "bank.mmsb").string(), "--record",
                           (tmp / "bank2.mmsb").string()},
                          tmp / "resumed.log");
  REQUIRE(resumed.exited_ok());
  const uint64_t step = last_number(resumed.output, R"(restored step (\d+): the state at epoch)");
  const Epoch from = last_number(resumed.output, R"(the state at epoch (\d+) of)");
  const Epoch restored_to = last_number(resumed.output, R"(recreated as epochs 1\.\.(\d+))");
  CHECK(step >= 70);
  CHECK(step <= 77);
  CHECK(from >= durable);
  CHECK(from <= recovered.index->last_epoch());
  CHECK(recovered.read_at<uint64_t>("journal", from) == step);

  // It starts from exactly the recovered state...
  const Opened continued = open(tmp / "bank2.mmsb");
  for (const std::string page : {"journal", "accounts", "branches"})
    CHECK(continued.page_at(page, restored_to) == recovered.page_at(page, from));
  // ... and ends exactly where the uncrashed run ended.
  CHECK(state_hash_of(resumed.output) == state_hash_of(ref.output));
  CompareOptions final_only;
  final_only.final_only = true;
  CHECK(compare(reference, continued, final_only).outcome == Outcome::kIdentical);
  CHECK(continued.read_at<uint64_t>("journal", continued.index->last_epoch()) == 120);
}

TEST_CASE("crash: recover cuts a torn last frame and keeps every durable epoch") {
  TempDir tmp("torn");
  const Run ref = run(MMSB_SAMPLE_CRASH, {"--steps", "80", "--record", (tmp / "ref.mmsb").string()}, tmp / "ref.log");
  REQUIRE(ref.exited_ok());
  std::string out;
  const Epoch durable = crashed_run(tmp, "bank.mmsb", 80, 55, &out);

  // Simulate a write cut short by the kill: append the first half of the last
  // frame again, header and all, to the end of its segment.
  fs::path segment;
  uint64_t torn_bytes = 0;
  {
    auto r = mmsb::replay::Recording::open(tmp / "bank.mmsb");
    REQUIRE(r.ok());
    const mmsb::replay::Recording& rec = *r.value();
    REQUIRE(!rec.frames().empty());
    const mmsb::replay::FrameRef& last = rec.frames().back();
    segment = rec.segments()[last.segment].path;
    // (A real torn write may already follow it: start again from its end.)
    const uint64_t end = last.offset + mmsb::format::kFrameHeaderBytes + last.header.payload_bytes;
    REQUIRE(end <= fs::file_size(segment));
    fs::resize_file(segment, end);
    torn_bytes = mmsb::format::kFrameHeaderBytes + last.header.payload_bytes / 2;
    std::vector<char> bytes(torn_bytes);
    std::ifstream in(segment, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(last.offset));
    REQUIRE(in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())));
    std::ofstream outf(segment, std::ios::binary | std::ios::app);
    outf.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(outf.good());
  }

  auto rec = mmsb::replay::recover(tmp / "bank.mmsb");
  INFO(rec.status().to_string());
  REQUIRE(rec.ok());
  INFO(rec.value().summary);
  CHECK(rec.value().outcome == mmsb::replay::RecoverReport::Outcome::kCut);
  CHECK(rec.value().bytes_cut == torn_bytes);
  REQUIRE(!rec.value().set_aside.empty());
  for (const fs::path& p : rec.value().set_aside) CHECK(fs::exists(p));
  CHECK(rec.value().last_good_epoch >= durable);

  check_recovered(open(tmp / "ref.mmsb"), tmp / "bank.mmsb", durable);
  // Nothing to do the second time.
  auto again = mmsb::replay::recover(tmp / "bank.mmsb");
  REQUIRE(again.ok());
  CHECK(again.value().outcome == mmsb::replay::RecoverReport::Outcome::kIntact);
}
