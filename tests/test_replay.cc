// The replay library against the plain byte-array model of engine_model.h:
// random workloads are recorded while the model keeps copies of every page at
// chosen epochs; Recording/State must rebuild exactly those bytes and
// versions. Frame boundaries for the damage tests are read straight from the
// segment files per docs/FORMAT.md, never from Recording's own frame list.
#include "replay_workload.h"
#include "mmsb/replay/tools.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdio>

TEST_CASE("seek matches the model at random epochs, forward and backward", "[replay]") {
  const uint64_t seed = GENERATE(0x5eed01ULL, 0x5eed02ULL);
  INFO("seed " << seed);
  TempDir dir("replay-seek");
  Bus bus;
  Workload w(bus, seed);
  for (uint64_t s : {1, 3, 100, 4095, 4096, 9000}) w.create(s, s == 100 ? "hundred" : (s == 1 ? "one" : ""));
  w.add_dependency();
  w.save();  // epoch 0

  auto started = Recorder::start(bus, dir.path, small_options());
  REQUIRE(started.ok());
  run_workload(w, **started, 2000);
  REQUIRE(w.errors.empty());
  REQUIRE((*started)->stop().ok());

  // Several segments, several snapshots (from the files themselves).
  const std::vector<fs::path> segs = segment_files(dir.path);
  CHECK(segs.size() >= 3);

  auto opened = Recording::open(dir.path);
  REQUIRE(opened.ok());
  const Recording& rec = **opened;
  INFO("damage: " << rec.damage().to_string());
  CHECK(rec.damage().ok());
  CHECK(rec.start_epoch() == 0);
  CHECK(rec.last_epoch() == w.m.epoch);
  CHECK(rec.snapshots().size() >= 3);

  // Pages: ids, sizes, names, creation epochs as created.
  REQUIRE(rec.pages().size() == w.m.pages.size());
  for (uint32_t id = 0; id < w.m.pages.size(); ++id) {
    INFO("page " << id);
    CHECK(rec.pages()[id].id == id);
    CHECK(rec.pages()[id].size == w.m.pages[id].bytes.size());
    CHECK(rec.pages()[id].name == w.m.pages[id].name);
    CHECK(rec.pages()[id].created == w.m.pages[id].created_epoch);
  }
  // Some pages were created mid-recording.
  CHECK(std::any_of(w.m.pages.begin(), w.m.pages.end(), [](const model::Page& p) { return p.created_epoch > 0; }));

  std::vector<Epoch> targets;
  for (const auto& [e, snap] : w.saved) targets.push_back(e);
  model::Rng order(seed ^ 0xabc);
  for (size_t i = targets.size(); i > 1; --i) std::swap(targets[i - 1], targets[order.below(i)]);
  // First and last epochs, then random order (forward and backward jumps),
  // then an ascending walk (forward-only seeks).
  targets.insert(targets.begin(), {0, w.m.epoch, 0});
  std::vector<Epoch> asc;
  for (const auto& [e, snap] : w.saved) asc.push_back(e);
  targets.insert(targets.end(), asc.begin(), asc.end());

  State st(rec);
  for (Epoch e : targets) {
    const mmsb::Status s = st.seek(e);
    INFO("seek " << e << ": " << s.to_string());
    REQUIRE(s.ok());
    check_state(st, w.saved.at(e), e);
  }
  CHECK(st.seek(w.m.epoch + 1).code() == Code::kOutOfRange);
}

TEST_CASE("a recording that began past epoch 0", "[replay]") {
  TempDir dir("replay-late");
  Bus bus;
  Workload w(bus, 0x1a7e);
  for (uint64_t s : {2, 64, 5000, 300}) w.create(s);
  w.add_dependency();
  for (int i = 0; i < 300; ++i) w.step(/*may_create=*/true);
  REQUIRE(w.errors.empty());
  const Epoch e0 = w.m.epoch;
  REQUIRE(e0 > 0);
  w.save();

  auto started = Recorder::start(bus, dir.path, small_options());
  REQUIRE(started.ok());
  // A copy at every epoch while the first (fuzzy) snapshot is being written,
  // until the recorder says it is complete, so whatever epoch it completes at
  // has a model copy. flush() now and then makes the writer progress.
  w.save_all = true;
  for (int i = 0; (*started)->stats().snapshots == 0; ++i) {
    REQUIRE(i < 20000);
    w.step(/*may_create=*/false);
    if (i % 50 == 49) REQUIRE((*started)->flush().ok());
  }
  w.save_all = false;
  const Epoch dense_until = w.m.epoch;
  run_workload(w, **started, 900);
  REQUIRE(w.errors.empty());
  REQUIRE((*started)->stop().ok());

  auto opened = Recording::open(dir.path);
  REQUIRE(opened.ok());
  const Recording& rec = **opened;
  CHECK(rec.damage().ok());
  // The state is known from the first complete snapshot's last part on, as
  // the independent reader finds it in the files.
  const tlogr::Recording tr = tlogr::read_recording(dir.path);
  INFO(tr.summary());
  REQUIRE(tr.ok());
  auto first = std::find_if(tr.snapshots.begin(), tr.snapshots.end(), [](const tlogr::Snapshot& s) { return s.complete; });
  REQUIRE(first != tr.snapshots.end());
  const Epoch start = first->max_epoch;
  std::ostringstream snaps;
  for (const auto& sn : tr.snapshots)
    snaps << "\ntlogr snapshot " << sn.id << " parts " << sn.parts << " complete " << sn.complete << " epochs "
          << sn.min_epoch << ".." << sn.max_epoch;
  for (const auto& sn : rec.snapshots())
    snaps << "\nreplay snapshot " << sn.id << " parts " << sn.parts.size() << " complete " << sn.complete
          << " epochs " << sn.first_epoch << ".." << sn.last_epoch;
  snaps << "\ne0 " << e0 << " saved densely up to " << dense_until;
  INFO(snaps.str());
  CHECK(start >= e0);
  CHECK(rec.start_epoch() == start);
  CHECK(rec.last_epoch() == w.m.epoch);
  REQUIRE(rec.pages().size() == w.m.pages.size());

  State st(rec);
  CHECK(st.seek(start - 1).code() == Code::kOutOfRange);
  CHECK(st.seek(0).code() == Code::kOutOfRange);
  CHECK(st.seek(w.m.epoch + 1).code() == Code::kOutOfRange);
  std::vector<Epoch> targets;
  for (const auto& [e, snap] : w.saved)
    if (e >= start) targets.push_back(e);
  REQUIRE(targets.size() >= 10);
  model::Rng order(77);
  for (size_t i = targets.size(); i > 1; --i) std::swap(targets[i - 1], targets[order.below(i)]);
  targets.push_back(w.m.epoch);
  REQUIRE(w.saved.count(start));
  targets.insert(targets.begin(), {start, w.m.epoch, start});
  for (Epoch e : targets) {
    const mmsb::Status s = st.seek(e);
    INFO("seek " << e << ": " << s.to_string());
    REQUIRE(s.ok());
    check_state(st, w.saved.at(e), e);
  }
}

namespace {

// Copies the shared recording; returns the last segment's frames as read from
// the file, with its index frame and trailer cut off (the state a writer that
// died after its last delta frame leaves), so the segment must be scanned.
struct Damaged {
  TempDir dir{"replay-damaged"};
  fs::path last_seg;
  std::vector<uint8_t> bytes;
  std::vector<RawFrame> frames;
  Epoch last_before_last_seg = 0;  // last delta epoch of earlier segments
};
void prepare(Damaged& d) {
  Recorded& src = shared_recording();
  fs::copy(src.dir.path, d.dir.path);
  std::vector<fs::path> segs = segment_files(d.dir.path);
  // Where segments rotate depends on the writer's timing: a last segment with
  // fewer than 2 delta frames is dropped (as if the writer had died before
  // rotating), so the damaged segment has frames before the damaged one.
  auto delta_frames_in = [](const fs::path& p) {
    const std::vector<RawFrame> fr = raw_frames(read_file(p));
    return std::count_if(fr.begin(), fr.end(), [](const RawFrame& f) { return f.kind == kDeltasKind; });
  };
  while (segs.size() > 2 && delta_frames_in(segs.back()) < 2) {
    fs::remove(segs.back());
    segs.pop_back();
  }
  REQUIRE(segs.size() >= 2);
  for (size_t i = 0; i + 1 < segs.size(); ++i)
    for (const RawFrame& f : raw_frames(read_file(segs[i])))
      if (f.kind == kDeltasKind) d.last_before_last_seg = std::max(d.last_before_last_seg, f.last);
  d.last_seg = segs.back();
  d.bytes = read_file(d.last_seg);
  d.frames = raw_frames(d.bytes);
  REQUIRE(!d.frames.empty());
  if (d.frames.back().kind == kIndexKind) {
    d.bytes.resize(d.frames.back().offset);
    d.frames.pop_back();
  }
  REQUIRE(std::count_if(d.frames.begin(), d.frames.end(), [](const RawFrame& f) { return f.kind == kDeltasKind; }) >= 2);
}

// Last delta epoch of the frames that end at or before `cut`.
Epoch intact_last(const Damaged& d, uint64_t cut) {
  Epoch e = d.last_before_last_seg;
  for (const RawFrame& f : d.frames)
    if (f.kind == kDeltasKind && f.end() <= cut) e = std::max(e, f.last);
  return e;
}

void check_damaged(const Damaged& d, uint64_t bad_offset, Epoch want_last) {
  auto opened = Recording::open(d.dir.path);
  REQUIRE(opened.ok());
  const Recording& rec = **opened;
  const std::string msg = rec.damage().to_string();
  INFO("damage: " << msg);
  CHECK(!rec.damage().ok());
  CHECK(rec.damage().code() == Code::kCorruption);
  CHECK(msg.find(d.last_seg.filename().string()) != std::string::npos);
  CHECK(msg.find("offset " + std::to_string(bad_offset)) != std::string::npos);
  CHECK(rec.last_epoch() == want_last);
  const Recorded& src = shared_recording();
  // The model copy at want_last: replay the saved copies? Only saved epochs
  // have copies, so seek to the newest saved epoch <= want_last and to want_last
  // when it was saved; and check out-of-range just after.
  State st(rec);
  auto it = src.saved.upper_bound(want_last);
  REQUIRE(it != src.saved.begin());
  --it;
  REQUIRE(st.seek(it->first).ok());
  check_state(st, it->second, it->first);
  if (const Snap* s = model_at(src.saved, want_last)) {
    REQUIRE(st.seek(want_last).ok());
    check_state(st, *s, want_last);
  }
  CHECK(st.seek(want_last + 1).code() == Code::kOutOfRange);
}

}  // namespace

TEST_CASE("damage: a truncated last segment ends the history at the intact prefix", "[replay]") {
  Damaged d;
  prepare(d);
  model::Rng rng(0x7a11);
  std::vector<RawFrame> deltas;
  for (const RawFrame& f : d.frames)
    if (f.kind == kDeltasKind) deltas.push_back(f);
  for (int round = 0; round < 4; ++round) {
    // A cut strictly inside a delta frame (header or payload).
    const RawFrame& f = deltas[rng.below(deltas.size())];
    const uint64_t cut = f.offset + 1 + rng.below(f.end() - f.offset - 1);
    INFO("round " << round << " cut at " << cut << " inside frame at " << f.offset << " (epochs " << f.first << ".."
                  << f.last << ")");
    std::vector<uint8_t> cutb(d.bytes.begin(), d.bytes.begin() + static_cast<long>(cut));
    write_file(d.last_seg, cutb);
    check_damaged(d, f.offset, intact_last(d, f.offset));
  }
}

TEST_CASE("damage: a flipped byte in a delta frame's payload", "[replay]") {
  Damaged d;
  prepare(d);
  // The last segment is scanned (no index): the frame fails its payload
  // checksum at open.
  model::Rng rng(0xf11b);
  std::vector<RawFrame> deltas;
  for (const RawFrame& f : d.frames)
    if (f.kind == kDeltasKind) deltas.push_back(f);
  const RawFrame& f = deltas[1 + rng.below(deltas.size() - 1)];
  std::vector<uint8_t> b = d.bytes;
  b[f.offset + 40 + rng.below(f.payload)] ^= 0x10;
  write_file(d.last_seg, b);
  INFO("flipped inside frame at " << f.offset << " (epochs " << f.first << ".." << f.last << ")");
  check_damaged(d, f.offset, f.first - 1);
}

TEST_CASE("damage: a frame whose flags say its payload is not zstd", "[replay]") {
  // Format 1.x compresses every payload (flags bit 0). A header that says
  // otherwise, with a valid checksum, is refused like any damaged frame.
  Damaged d;
  prepare(d);
  std::vector<RawFrame> deltas;
  for (const RawFrame& f : d.frames)
    if (f.kind == kDeltasKind) deltas.push_back(f);
  REQUIRE(deltas.size() >= 2);
  const RawFrame& f = deltas[1];
  std::vector<uint8_t> b = d.bytes;
  REQUIRE((b[f.offset + 5] & 1) == 1);
  b[f.offset + 5] &= 0xFE;
  const uint32_t sum = static_cast<uint32_t>(XXH3_64bits(b.data() + f.offset, 36));
  std::memcpy(b.data() + f.offset + 36, &sum, 4);
  write_file(d.last_seg, b);
  INFO("cleared the zstd flag of the frame at " << f.offset << " (epochs " << f.first << ".." << f.last << ")");
  check_damaged(d, f.offset, f.first - 1);
  auto opened = Recording::open(d.dir.path);
  REQUIRE(opened.ok());
  CHECK((*opened)->damage().message().find("bit 0") != std::string::npos);
}

TEST_CASE("damage: a flipped delta payload byte in a closed segment is never applied silently", "[replay]") {
  // A closed segment is listed from its index; the payload checksum is then
  // verified on demand. Either way, a seek through the bad frame must not
  // succeed with wrong bytes: it fails with the file and offset, or the
  // history ends before it.
  Recorded& src = shared_recording();
  TempDir dir("replay-flip-closed");
  fs::copy(src.dir.path, dir.path);
  const fs::path seg = segment_files(dir.path).front();
  std::vector<uint8_t> b = read_file(seg);
  std::vector<RawFrame> deltas;
  for (const RawFrame& f : raw_frames(b))
    if (f.kind == kDeltasKind) deltas.push_back(f);
  REQUIRE(deltas.size() >= 2);
  const RawFrame f = deltas[deltas.size() / 2];
  b[f.offset + 40 + f.payload / 2] ^= 0x01;
  write_file(seg, b);

  auto opened = Recording::open(dir.path);
  REQUIRE(opened.ok());
  const Recording& rec = **opened;
  INFO("flipped inside " << seg.filename().string() << " frame at " << f.offset << " (epochs " << f.first << ".."
                         << f.last << "); damage: " << rec.damage().to_string());
  if (rec.last_epoch() < f.first) {  // found at open: the history ends before the frame
    CHECK(!rec.damage().ok());
    CHECK(rec.last_epoch() == f.first - 1);
  }
  State st(rec);
  auto check_seek = [&](Epoch e) {
    const mmsb::Status s = st.seek(e);
    INFO("seek " << e << ": " << s.to_string());
    if (s.ok()) {
      if (const Snap* m = model_at(src.saved, e)) check_state(st, *m, e);
    } else if (e <= rec.last_epoch()) {
      CHECK(s.code() == Code::kCorruption);
      CHECK(s.message().find(seg.filename().string()) != std::string::npos);
      CHECK(s.message().find("offset " + std::to_string(f.offset)) != std::string::npos);
    }
    return s.ok();
  };
  // Just before the frame, then straight through it: unless a snapshot
  // covers it, the bad frame has to be read and refused.
  if (rec.last_epoch() >= f.last) {
    REQUIRE(check_seek(f.first - 1));
    check_seek(f.last);
  }
  // Whatever succeeds anywhere matches the model.
  for (const auto& [e, snap] : src.saved)
    if (e <= rec.last_epoch()) check_seek(e);
}

TEST_CASE("open errors: missing, empty, unrelated, newer major version", "[replay]") {
  SECTION("missing directory") {
    TempDir dir("replay-missing");
    auto r = Recording::open(dir.path);
    REQUIRE(!r.ok());
    CHECK(r.status().code() == Code::kNotFound);
  }
  SECTION("empty directory") {
    TempDir dir("replay-empty", /*create=*/true);
    auto r = Recording::open(dir.path);
    REQUIRE(!r.ok());
    INFO(r.status().to_string());
    CHECK(r.status().code() == Code::kCorruption);
    CHECK(r.status().message().find("not an MMSB recording") != std::string::npos);
  }
  SECTION("unrelated files") {
    TempDir dir("replay-unrelated", /*create=*/true);
    write_file(dir.path / "notes.txt", {'h', 'i', '\n'});
    write_file(dir.path / "seg-1.tlog", {1, 2, 3});
    write_file(dir.path / "data.bin", std::vector<uint8_t>(100, 7));
    auto r = Recording::open(dir.path);
    REQUIRE(!r.ok());
    INFO(r.status().to_string());
    CHECK(r.status().code() == Code::kCorruption);
    CHECK(r.status().message().find("not an MMSB recording") != std::string::npos);
  }
  SECTION("the first segment file is missing") {
    Recorded& src = shared_recording();
    TempDir dir("replay-no-seg0");
    fs::copy(src.dir.path, dir.path);
    const std::vector<fs::path> segs = segment_files(dir.path);
    REQUIRE(segs.size() >= 2);
    fs::remove(segs[0]);
    auto r = Recording::open(dir.path);
    REQUIRE(!r.ok());
    INFO(r.status().to_string());
    CHECK(r.status().code() == Code::kCorruption);
    CHECK(r.status().message().find(segs[1].filename().string()) != std::string::npos);
    CHECK(r.status().message().find("seg-000000.tlog") != std::string::npos);
    CHECK(r.status().message().find("missing") != std::string::npos);
    // Nothing to recover, and nothing touched.
    auto rep = mmsb::replay::recover(dir.path);
    REQUIRE(rep.ok());
    CHECK(rep->outcome == mmsb::replay::RecoverReport::Outcome::kNothing);
    CHECK(segment_files(dir.path).size() == segs.size() - 1);
  }
  SECTION("major version 2, and 0 (never written)") {
    for (const uint8_t major : {2, 0}) {
      INFO("major " << int(major));
      Recorded& src = shared_recording();
      TempDir dir("replay-v2");
      fs::copy(src.dir.path, dir.path);
      const fs::path seg = segment_files(dir.path).front();
      std::vector<uint8_t> b = read_file(seg);
      REQUIRE(b.size() >= 32);
      REQUIRE(get<uint16_t>(b, 8) == 1);
      b[8] = major;
      b[9] = 0;
      b[10] = 7;  // minor 7
      b[11] = 0;
      const uint32_t sum = static_cast<uint32_t>(XXH3_64bits(b.data(), 28));
      std::memcpy(b.data() + 28, &sum, 4);
      write_file(seg, b);
      auto r = Recording::open(dir.path);
      REQUIRE(!r.ok());
      const std::string msg = r.status().message();
      INFO(r.status().to_string());
      CHECK(r.status().code() == Code::kUnsupported);
      CHECK(msg.find(seg.filename().string()) != std::string::npos);
      CHECK(msg.find(std::to_string(major) + ".7") != std::string::npos);
      CHECK(msg.find("(1.1)") != std::string::npos);  // this reader's version, FORMAT.md's title
    }
  }
}

TEST_CASE("open: a FIFO, a directory or a dangling link named like a segment is not read", "[replay]") {
  // Reading a FIFO would block forever: such a file is refused as segment 0,
  // and ends the history as a later segment, like an unreadable header.
  Recorded& src = shared_recording();
  const size_t n = segment_files(src.dir.path).size();
  char next[32];
  std::snprintf(next, sizeof next, "seg-%06zu.tlog", n);  // FORMAT.md's name of the next segment
  for (const std::string kind : {"FIFO", "directory", "dangling link"}) {
    INFO(kind);
    TempDir dir("replay-not-regular");
    fs::copy(src.dir.path, dir.path);
    const fs::path extra = dir.path / next;
    if (kind == "FIFO") REQUIRE(::mkfifo(extra.c_str(), 0600) == 0);
    if (kind == "directory") fs::create_directory(extra);
    if (kind == "dangling link") fs::create_symlink(dir.path / "nowhere", extra);
    auto r = Recording::open(dir.path);
    REQUIRE(r.ok());
    INFO((*r)->damage().to_string());
    CHECK((*r)->last_epoch() == src.last);
    CHECK((*r)->damage_at().file == extra);
    CHECK((*r)->damage().message().find(extra.filename().string() + " is not a segment file") != std::string::npos);
    CHECK((*r)->damage().message().find(kind == "dangling link" ? "symbolic link" : kind) != std::string::npos);
    // recover sets it aside, and nothing is lost.
    auto rep = mmsb::replay::recover(dir.path);
    REQUIRE(rep.ok());
    CHECK(rep->outcome == mmsb::replay::RecoverReport::Outcome::kIntact);
    CHECK(rep->bytes_cut == 0);
    CHECK(rep->last_good_epoch == src.last);
    CHECK(fs::symlink_status(fs::path(extra.string() + ".orphan")).type() != fs::file_type::not_found);
  }
  // As the only segment file: refused, naming it.
  TempDir only("replay-fifo-only", /*create=*/true);
  REQUIRE(::mkfifo((only.path / "seg-000000.tlog").c_str(), 0600) == 0);
  auto r = Recording::open(only.path);
  REQUIRE_FALSE(r.ok());
  INFO(r.status().to_string());
  CHECK(r.status().code() == Code::kCorruption);
  CHECK(r.status().message().find("seg-000000.tlog is not a segment file: it is a FIFO") != std::string::npos);
}

TEST_CASE("open: more segments than the open-file limit is a clear error -- the limit can be raised", "[replay]") {
  TempDir dir("replay-many-segments");
  {
    Bus bus;
    const mmsb::PageId p = bus.create_page(64).value();
    RecorderOptions opt = small_options();
    opt.batch_deltas = 1;
    opt.segment_bytes = 1;  // a segment per frame
    auto started = Recorder::start(bus, dir.path, opt);
    REQUIRE(started.ok());
    for (int i = 0; i < 80; ++i) {
      const std::byte b{static_cast<unsigned char>(i)};
      REQUIRE(bus.write(p, static_cast<uint64_t>(i % 64), std::span(&b, 1)).ok());
      REQUIRE((*started)->flush().ok());
    }
    REQUIRE((*started)->stop().ok());
  }
  const size_t segments = segment_files(dir.path).size();
  REQUIRE(segments >= 80);
  size_t open_now = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++open_now;
  struct rlimit saved;
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  REQUIRE(saved.rlim_max >= open_now + segments + 16);
  struct rlimit low = saved;
  low.rlim_cur = open_now + segments / 2;  // room for half the segments
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  auto refused = Recording::open(dir.path);
  mmsb::replay::raise_open_file_limit();
  struct rlimit raised;
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &raised) == 0);
  auto opened = Recording::open(dir.path);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kIOError);
  CHECK(refused.status().message().find("ulimit -n") != std::string::npos);
  if (saved.rlim_max != RLIM_INFINITY) CHECK(raised.rlim_cur == saved.rlim_max);
  REQUIRE(opened.ok());
  CHECK((*opened)->segments().size() == segments);
  CHECK((*opened)->last_epoch() == 80u);
}
