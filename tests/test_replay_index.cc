// Index, StateView and the tools (verify, compare, recover, export, restore)
// against the plain byte-array model: the workload keeps a copy of every page
// after every delta, a log of what each delta wrote and each derived delta's
// cause, so every answer is checked against what the model computed while
// recording, never against the library's own output.
#include "replay_workload.h"

#include <zstd.h>

#include "mmsb/fb/mmsb_tlog_generated.h"

#include "mmsb/replay/index.h"
#include "mmsb/replay/tools.h"

using mmsb::replay::CompareOptions;
using mmsb::replay::CompareReport;
using mmsb::replay::Index;
using mmsb::replay::IndexOptions;
using mmsb::replay::RecoverReport;
using mmsb::replay::StateView;

namespace {

// A recording with a copy of the model after every delta.
struct Full {
  TempDir dir{"replay-full"};
  std::map<uint64_t, Snap> saved;
  std::map<Epoch, Workload::Written> log;
  Epoch last = 0;
};

// Records `ops` random steps of workload `seed`. `tamper` (if set) is called
// before each step with the step number and may write to the bus itself.
void record_full(Full& f, uint64_t seed, int ops, RecorderOptions opt = small_options(),
                 const std::function<void(int, Workload&)>& tamper = {}) {
  Bus bus;
  Workload w(bus, seed);
  w.save_all = true;
  for (uint64_t s : {1, 3, 100, 4095, 4096, 9000}) w.create(s, s == 100 ? "hundred" : (s == 1 ? "one" : ""));
  w.add_dependency();
  w.save();
  auto started = Recorder::start(bus, f.dir.path, opt);
  REQUIRE(started.ok());
  for (int i = 0; i < ops; ++i) {
    if (tamper) tamper(i, w);
    w.step(/*may_create=*/true);
    w.save();
  }
  REQUIRE(w.errors.empty());
  REQUIRE((*started)->stop().ok());
  f.saved = w.saved;
  f.log = w.log;
  f.last = w.m.epoch;
}

std::unique_ptr<Recording> open_rec(const fs::path& dir) {
  auto r = Recording::open(dir);
  REQUIRE(r.ok());
  return std::move(*r);
}

std::unique_ptr<Index> build(const Recording& rec, IndexOptions opt = {}) {
  auto ix = Index::build(rec, std::move(opt));
  INFO(ix.status().to_string());
  REQUIRE(ix.ok());
  return std::move(*ix);
}

bool covers(const std::vector<model::Run>& runs, uint64_t b) {
  for (const model::Run& r : runs)
    if (b >= r.offset && b < r.offset + r.length) return true;
  return false;
}

// Small segments: several of them even when batches compress well.
// Small segments, so that every test that needs three or more gets them:
// with 8 KiB a 600-step run made 4 or 5, but 2 once on a loaded machine
// (the writer's timing decides how deltas batch into frames).
RecorderOptions many_segments() {
  RecorderOptions opt = small_options();
  opt.segment_bytes = 4 << 10;
  return opt;
}

void copy_dir(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from)) fs::copy_file(e.path(), to / e.path().filename());
}

// The FlatBuffer a frame holds: its payload, decompressed with stock zstd.
std::vector<uint8_t> frame_buffer(const fs::path& seg, const RawFrame& target) {
  const std::vector<uint8_t> file = read_file(seg);
  const uint32_t raw_size = get<uint32_t>(file, target.offset + 12);
  std::vector<uint8_t> fbuf(raw_size);
  REQUIRE(ZSTD_decompress(fbuf.data(), fbuf.size(), file.data() + target.offset + 40, target.payload) == raw_size);
  return fbuf;
}

// Replaces a frame's payload with `fbuf` compressed, and sets the header's
// sizes and both checksums (FORMAT.md) so that every frame check passes:
// only what the FlatBuffer says can be wrong.
void rewrite_frame(const fs::path& seg, const RawFrame& target, const std::vector<uint8_t>& fbuf) {
  const std::vector<uint8_t> file = read_file(seg);
  std::vector<uint8_t> payload(ZSTD_compressBound(fbuf.size()));
  const size_t n = ZSTD_compress(payload.data(), payload.size(), fbuf.data(), fbuf.size(), 1);
  REQUIRE(!ZSTD_isError(n));
  payload.resize(n);
  std::vector<uint8_t> header(file.begin() + target.offset, file.begin() + target.offset + 40);
  const uint32_t psize = static_cast<uint32_t>(n);
  const uint32_t pcheck = static_cast<uint32_t>(XXH3_64bits(payload.data(), payload.size()));
  std::memcpy(header.data() + 8, &psize, 4);
  std::memcpy(header.data() + 32, &pcheck, 4);
  const uint32_t hcheck = static_cast<uint32_t>(XXH3_64bits(header.data(), 36));
  std::memcpy(header.data() + 36, &hcheck, 4);
  std::vector<uint8_t> out(file.begin(), file.begin() + target.offset);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), payload.begin(), payload.end());
  out.insert(out.end(), file.begin() + target.end(), file.end());
  write_file(seg, out);
}

// `rec` is damaged at `segment`, `offset` (the damage message holding
// `what`), and its history ends at epoch `intact`.
void check_damage(const Recording& rec, uint32_t segment, uint64_t offset, const std::string& what, Epoch intact) {
  INFO(rec.damage().to_string());
  CHECK_FALSE(rec.damage().ok());
  CHECK(rec.damage_at().segment == segment);
  CHECK(rec.damage_at().offset == offset);
  CHECK(rec.damage().message().find(what) != std::string::npos);
  CHECK(rec.last_epoch() == intact);
}

// After recover: the recording verifies clean and ends at `last`, whose
// state is the model's.
void check_recovered(const fs::path& dir, const Full& f, Epoch last) {
  auto again = mmsb::replay::verify(dir);
  INFO(again.problem);
  CHECK(again.ok);
  auto kept = open_rec(dir);
  CHECK(kept->last_epoch() == last);
  auto ix = build(*kept);
  StateView v(*ix);
  REQUIRE(v.seek(last).ok());
  const Snap& want = f.saved.at(last);
  for (uint32_t p = 0; p < v.page_count(); ++p) {
    INFO("page " << p << " at epoch " << last);
    CHECK(model::first_mismatch(v.page(p), want.pages[p].bytes) == -1);
  }
}

// The model of a recording that keeps only its first `n` segment files:
// the last delta epoch in them, read from their bytes (FORMAT.md).
Epoch last_delta_in(const std::vector<fs::path>& segs, size_t n) {
  Epoch last = 0;
  for (size_t s = 0; s < n; ++s)
    for (const RawFrame& r : raw_frames(read_file(segs[s])))
      if (r.kind == kDeltasKind) last = std::max(last, r.last);
  return last;
}

// recover finds nothing to do: the recording is whole (recovered before,
// or never damaged).
void check_recovered_again(const fs::path& dir) {
  auto twice = mmsb::replay::recover(dir);
  REQUIRE(twice.ok());
  INFO(twice->summary);
  CHECK(twice->outcome == RecoverReport::Outcome::kIntact);
  CHECK(twice->actions.empty());
}

// Recovers `dir`, which must lose a damaged part and keep exactly the epochs
// up to `intact`, with the model's state; returns recover's report.
RecoverReport recover_cut(const fs::path& dir, const Full& f, Epoch intact) {
  auto rep = mmsb::replay::recover(dir);
  REQUIRE(rep.ok());
  INFO(rep->summary);
  REQUIRE(rep->outcome == RecoverReport::Outcome::kCut);
  CHECK(rep->last_good_epoch == intact);
  check_recovered(dir, f, intact);
  return std::move(rep).value();
}

}  // namespace

TEST_CASE("index: deltas, versions, page lists and causes match the model's log", "[replay]") {
  Full f;
  record_full(f, 0x1d01, 1200);
  auto rec = open_rec(f.dir.path);
  auto ix = build(*rec);
  REQUIRE(ix->start_epoch() == 0);
  REQUIRE(ix->first_epoch() == 1);
  REQUIRE(ix->last_epoch() == f.last);
  REQUIRE(ix->delta_count() == f.log.size());

  // Pages by name and by id (record_full names page 0 "one" and 2 "hundred").
  CHECK(rec->page_named("hundred") == std::optional<mmsb::PageId>(2));
  CHECK(rec->page_named("one") == std::optional<mmsb::PageId>(0));
  CHECK_FALSE(rec->page_named("nosuch").has_value());
  CHECK_FALSE(rec->page_named("").has_value());  // unnamed pages are not "named ''"
  CHECK(rec->find_page("hundred") == std::optional<mmsb::PageId>(2));
  CHECK(rec->find_page("3") == std::optional<mmsb::PageId>(3));
  CHECK_FALSE(rec->find_page(std::to_string(rec->pages().size())).has_value());
  CHECK_FALSE(rec->find_page("99999999999999999999999").has_value());
  CHECK_FALSE(rec->find_page("-1").has_value());

  std::map<uint32_t, std::vector<Epoch>> per_page;
  std::map<Epoch, std::vector<Epoch>> children;
  for (const auto& [e, wr] : f.log) {
    INFO("epoch " << e);
    per_page[wr.page].push_back(e);
    if (wr.cause) children[wr.cause].push_back(e);
    auto d = ix->delta(e);
    REQUIRE(d);
    CHECK(d->epoch == e);
    CHECK(d->page == wr.page);
    CHECK(d->cause == wr.cause);
    CHECK(d->version == f.saved.at(e).pages[wr.page].version);
    // The ranges are what the model says the delta wrote, and their bytes
    // are the page's bytes right after it.
    std::vector<model::Run> got;
    for (const mmsb::Range& r : d->ranges) got.push_back(model::Run{r.offset, r.length});
    CHECK(got == wr.runs);
    const auto& page = f.saved.at(e).pages[wr.page].bytes;
    size_t k = 0;
    for (const mmsb::Range& r : d->ranges)
      for (uint32_t i = 0; i < r.length; ++i) REQUIRE(static_cast<uint8_t>(d->bytes[k++]) == page[r.offset + i]);
    CHECK(k == d->bytes.size());
  }
  CHECK_FALSE(ix->delta(0));
  CHECK_FALSE(ix->delta(f.last + 1));
  CHECK_FALSE(children.empty());

  for (uint32_t p = 0; p < rec->pages().size(); ++p) {
    INFO("page " << p);
    std::span<const Epoch> es = ix->page_epochs(p);
    CHECK(std::vector<Epoch>(es.begin(), es.end()) == per_page[p]);
    // history over a sub-range, next/prev change, count_between.
    if (per_page[p].size() >= 3) {
      const auto& v = per_page[p];
      auto h = ix->history(p, v[1], v[v.size() - 2]);
      REQUIRE(h.size() == v.size() - 2);
      CHECK(h.front().epoch == v[1]);
      CHECK(ix->next_change(p, v[0]) == v[1]);
      CHECK(ix->prev_change(p, v[1]) == v[0]);
      CHECK(ix->count_between(p, v[0], v[2]) == 2);
    }
    CHECK_FALSE(ix->next_change(p, f.last));
  }
  // Propagation: children, trees and chains as the model recorded them.
  for (const auto& [cause, kids] : children) {
    std::span<const Epoch> got = ix->children(cause);
    CHECK(std::vector<Epoch>(got.begin(), got.end()) == kids);
    auto tree = ix->caused_tree(cause);
    CHECK(tree.epoch == cause);
    CHECK(tree.page == f.log.at(cause).page);
    REQUIRE(tree.children.size() == kids.size());
    CHECK(tree.children[0].page == f.log.at(kids[0]).page);
    CHECK(ix->cause_chain(kids[0]) == std::vector<Epoch>{kids[0], cause});
  }
  // A delta that caused nothing, and a root: chain of one.
  for (const auto& [e, wr] : f.log)
    if (!wr.cause && !children.count(e)) {
      CHECK(ix->children(e).empty());
      CHECK(ix->cause_chain(e) == std::vector<Epoch>{e});
      break;
    }
}

TEST_CASE("index: a build can be cancelled between delta frames", "[replay]") {
  Full f;
  record_full(f, 0x1d02, 600);
  auto rec = open_rec(f.dir.path);
  REQUIRE(rec->delta_frames().size() >= 3);
  std::atomic<bool> cancel{false};
  SECTION("cancelled before it starts") {
    cancel = true;
    IndexOptions opt;
    opt.cancel = &cancel;
    auto ix = Index::build(*rec, opt);
    REQUIRE(!ix.ok());
    CHECK(ix.status().code() == Code::kFailedPrecondition);
    CHECK(ix.status().message().find("cancelled") != std::string::npos);
  }
  SECTION("cancelled from the progress callback: it stops at the next frame") {
    IndexOptions opt;
    opt.cancel = &cancel;
    int calls = 0;
    opt.progress = [&](uint64_t, uint64_t) {
      ++calls;
      cancel = true;
    };
    auto ix = Index::build(*rec, opt);
    REQUIRE(!ix.ok());
    CHECK(ix.status().code() == Code::kFailedPrecondition);
    CHECK(calls == 1);
  }
  SECTION("never set: the whole recording") {
    IndexOptions opt;
    opt.cancel = &cancel;
    auto ix = build(*rec, opt);
    CHECK(ix->last_epoch() == f.last);
    CHECK(ix->delta_count() == f.log.size());
  }
}

TEST_CASE("index: states, pages and diffs at random epochs match the model", "[replay]") {
  // Dense checkpoints, the default (one checkpoint for this small state),
  // and none but the start state's (mmsb-replay's: nothing is applied
  // while building).
  const int mode = GENERATE(0, 1, 2);
  const bool dense = mode == 0;
  INFO("checkpoints: " << (mode == 0 ? "dense" : mode == 1 ? "default" : "none"));
  Full f;
  record_full(f, 0x1d02, 1500);
  auto rec = open_rec(f.dir.path);
  IndexOptions opt;
  if (dense) {
    opt.checkpoint_bytes = 1 << 20;
    opt.min_checkpoint_interval = 50;
  }
  if (mode == 2) opt.checkpoint_bytes = 0;
  auto ix = build(*rec, opt);
  if (dense) CHECK(ix->checkpoint_count() > 10);
  if (mode == 2) CHECK(ix->checkpoint_count() == 1);

  model::Rng rng(0x77);
  StateView view(*ix);
  std::vector<Epoch> targets = {0, f.last, 0, f.last / 2, f.last / 2 + 1, f.last / 2 + 2, 3, f.last - 1};
  for (int i = 0; i < 60; ++i) targets.push_back(rng.below(f.last + 1));
  for (Epoch e : targets) {
    INFO("seek " << e);
    REQUIRE(view.seek(e).ok());
    const Snap& want = f.saved.at(e);
    REQUIRE(view.page_count() == want.pages.size());
    for (uint32_t p = 0; p < want.pages.size(); ++p) {
      INFO("page " << p);
      CHECK(model::first_mismatch(view.page(p), want.pages[p].bytes) == -1);
      CHECK(view.version(p) == want.pages[p].version);
    }
  }
  CHECK(view.seek(f.last + 1).code() == Code::kOutOfRange);

  std::vector<std::byte> page;
  for (int i = 0; i < 300; ++i) {
    const Epoch e = rng.below(f.last + 1);
    const Snap& want = f.saved.at(e);
    const uint32_t p = static_cast<uint32_t>(rng.below(want.pages.size()));
    INFO("page " << p << " at " << e);
    REQUIRE(ix->page_at(p, e, &page).ok());
    CHECK(model::first_mismatch(page, want.pages[p].bytes) == -1);
    CHECK(ix->version_at(p, e) == want.pages[p].version);
  }
  // A page that does not exist yet at an epoch.
  const uint32_t newest = static_cast<uint32_t>(rec->pages().size() - 1);
  if (rec->pages()[newest].created > 0)
    CHECK(ix->page_at(newest, rec->pages()[newest].created - 1, &page).code() == Code::kOutOfRange);

  // Diffs between random pairs, both directions, against byte-wise model diffs.
  for (int i = 0; i < 40; ++i) {
    const Epoch a = rng.below(f.last + 1), b = rng.below(f.last + 1);
    INFO("diff " << a << " -> " << b);
    auto d = ix->diff(a, b);
    REQUIRE(d.ok());
    const Snap &sa = f.saved.at(a), &sb = f.saved.at(b);
    std::map<uint32_t, const mmsb::replay::PageDiff*> got;
    for (const auto& pd : *d) got[pd.page] = &pd;
    for (uint32_t p = 0; p < sb.pages.size(); ++p) {
      INFO("page " << p);
      const bool existed = p < sa.pages.size();
      const std::vector<uint8_t> old = existed ? sa.pages[p].bytes : std::vector<uint8_t>(sb.pages[p].bytes.size(), 0);
      const std::vector<model::Run> want = model::diff_runs(old, sb.pages[p].bytes);
      if (want.empty() && existed) {
        CHECK(got.count(p) == 0);
        continue;
      }
      REQUIRE(got.count(p) == 1);
      std::vector<model::Run> runs;
      for (const mmsb::Range& r : got[p]->ranges) runs.push_back(model::Run{r.offset, r.length});
      CHECK(runs == want);
      CHECK(got[p]->created == !existed);
      size_t k = 0;
      for (const model::Run& r : want)
        for (uint64_t j = 0; j < r.length; ++j, ++k) {
          REQUIRE(static_cast<uint8_t>(got[p]->old_bytes[k]) == old[r.offset + j]);
          REQUIRE(static_cast<uint8_t>(got[p]->new_bytes[k]) == sb.pages[p].bytes[r.offset + j]);
        }
    }
    // Pages only at a (b < a) are compared as well: every returned page exists at max(a, b).
    for (const auto& pd : *d) CHECK(pd.page < std::max(sa.pages.size(), sb.pages.size()));
  }

  // Last and next writer of random bytes, against walks of the model's log.
  for (int i = 0; i < 300; ++i) {
    const Epoch e = rng.below(f.last + 1);
    const uint32_t p = static_cast<uint32_t>(rng.below(f.saved.at(e).pages.size()));
    const uint64_t b = rng.below(f.saved.at(e).pages[p].bytes.size());
    Epoch want = 0;
    for (auto it = f.log.upper_bound(e); it != f.log.begin();) {
      --it;
      if (it->second.page == p && covers(it->second.runs, b)) {
        want = it->first;
        break;
      }
    }
    Epoch want_next = 0;
    for (auto it = f.log.upper_bound(e); it != f.log.end(); ++it)
      if (it->second.page == p && covers(it->second.runs, b)) {
        want_next = it->first;
        break;
      }
    INFO("byte " << b << " of page " << p << " at " << e);
    auto got = ix->last_writer(p, b, e);
    CHECK((got ? got->epoch : 0) == want);
    auto next = ix->next_writer(p, b, e);
    CHECK((next ? next->epoch : 0) == want_next);
    // The value the writer wrote there, and bytes it did not write.
    if (got) {
      REQUIRE(got->byte_at(b).has_value());
      CHECK(static_cast<uint8_t>(*got->byte_at(b)) == f.saved.at(got->epoch).pages[p].bytes[b]);
      const uint64_t other = rng.below(f.saved.at(e).pages[p].bytes.size());
      const bool wrote = covers(f.log.at(got->epoch).runs, other);
      CHECK(got->byte_at(other).has_value() == wrote);
      if (wrote) CHECK(static_cast<uint8_t>(*got->byte_at(other)) == f.saved.at(got->epoch).pages[p].bytes[other]);
    }

    // Bounded: the page's deltas the model's walks pass over, counted.
    const uint64_t bound = 1 + rng.below(4);
    uint64_t back = 0, ahead = 0;  // the page's deltas from e back to want (or all), after e to want_next (or all)
    bool more_back = false, more_ahead = false;  // deltas left past the bound
    for (auto it = f.log.upper_bound(e); it != f.log.begin();) {
      --it;
      if (it->second.page != p) continue;
      if (back == bound) {
        more_back = true;
        break;
      }
      ++back;
      if (it->first == want) break;
    }
    for (auto it = f.log.upper_bound(e); it != f.log.end(); ++it) {
      if (it->second.page != p) continue;
      if (ahead == bound) {
        more_ahead = true;
        break;
      }
      ++ahead;
      if (it->first == want_next) break;
    }
    const mmsb::replay::WriterSearch sl = ix->find_last_writer(p, b, e, bound);
    CHECK(sl.looked == back);
    CHECK(sl.stopped == more_back);
    CHECK((sl.writer ? sl.writer->epoch : 0) == (want != 0 && !more_back ? want : 0));
    const mmsb::replay::WriterSearch sn = ix->find_next_writer(p, b, e, bound);
    CHECK(sn.looked == ahead);
    CHECK(sn.stopped == more_ahead);
    CHECK((sn.writer ? sn.writer->epoch : 0) == (want_next != 0 && !more_ahead ? want_next : 0));
  }
}

TEST_CASE("verify: an intact recording passes -- a flipped byte is reported with file and offset", "[replay]") {
  Full f;
  record_full(f, 0x1d03, 900, many_segments());
  auto ok = mmsb::replay::verify(f.dir.path);
  INFO(ok.problem);
  CHECK(ok.ok);
  CHECK(ok.opened);
  CHECK(ok.deltas == f.last);
  // Snapshots are taken on the writer thread when it gets to them: on a
  // loaded machine a 900-step run may end with only the first one done.
  CHECK(ok.snapshots >= 1);
  CHECK(ok.snapshot_pages > 0);

  // Flip one byte in the payload of a delta frame in the middle segment.
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  REQUIRE(segs.size() >= 3);
  TempDir bad("replay-verify-bad");
  fs::remove_all(bad.path);
  copy_dir(f.dir.path, bad.path);
  const fs::path seg = bad.path / segs[1].filename();
  std::vector<uint8_t> bytes = read_file(seg);
  const std::vector<RawFrame> frames = raw_frames(bytes);
  const RawFrame* target = nullptr;
  for (const RawFrame& r : frames)
    if (r.kind == kDeltasKind) target = &r;
  REQUIRE(target);
  bytes[target->offset + 40 + target->payload / 2] ^= 0x10;
  write_file(seg, bytes);
  auto rep = mmsb::replay::verify(bad.path);
  CHECK_FALSE(rep.ok);
  CHECK(rep.opened);
  CHECK(rep.file == seg.string());
  CHECK(rep.offset == target->offset);
  CHECK(rep.epoch == target->first);
  CHECK(rep.problem.find("checksum") != std::string::npos);
  CHECK(rep.deltas == target->first - 1);  // the deltas before the bad frame were checked
  CHECK_FALSE(rep.live);

  // recover cuts there and says which epochs the cut frames held: those
  // after the bad frame's start, to the end of the last segment.
  TempDir cut("replay-verify-cut");
  fs::remove_all(cut.path);
  copy_dir(bad.path, cut.path);
  auto rec = mmsb::replay::recover(cut.path);
  REQUIRE(rec.ok());
  INFO(rec->summary);
  CHECK(rec->outcome == RecoverReport::Outcome::kCut);
  CHECK(rec->last_good_epoch == target->first - 1);
  CHECK(rec->lost_last == f.last);
  CHECK(rec->summary.find("holding epochs " + std::to_string(target->first) + ".." + std::to_string(f.last)) !=
        std::string::npos);

  // Not a recording at all.
  auto none = mmsb::replay::verify(bad.path / "nope");
  CHECK_FALSE(none.ok);
  CHECK_FALSE(none.opened);
}

TEST_CASE("a recording still being written: verify says so, recover refuses, nothing is cut", "[replay]") {
  TempDir dir("replay-live");
  Bus bus;
  Workload w(bus, 0x11fe);
  for (uint64_t s : {64, 4096}) w.create(s, "");
  w.save();
  auto started = Recorder::start(bus, dir.path, small_options());
  REQUIRE(started.ok());
  for (int i = 0; i < 300; ++i) w.step(/*may_create=*/false);
  REQUIRE(w.errors.empty());
  REQUIRE((*started)->flush().ok());  // every delta so far is in a frame

  auto rec = open_rec(dir.path);
  CHECK(rec->live());
  CHECK(rec->last_epoch() == w.m.epoch);
  auto v = mmsb::replay::verify(dir.path);
  INFO(v.problem);
  CHECK_FALSE(v.ok);
  CHECK(v.live);
  CHECK_FALSE(v.recoverable);
  CHECK(v.problem.find("still recording") != std::string::npos);
  for (bool dry_run : {true, false}) {
    auto rep = mmsb::replay::recover(dir.path, dry_run);
    REQUIRE_FALSE(rep.ok());
    CHECK(rep.status().code() == Code::kFailedPrecondition);
    CHECK(rep.status().message().find("pid " + std::to_string(::getpid())) != std::string::npos);
  }
  for (const auto& e : fs::directory_iterator(dir.path))  // nothing set aside
    CHECK(e.path().extension() == ".tlog");

  // The recording goes on and ends whole: no frame was cut under its writer.
  for (int i = 0; i < 300; ++i) w.step(/*may_create=*/false);
  REQUIRE(w.errors.empty());
  REQUIRE((*started)->stop().ok());
  w.save();
  auto done = open_rec(dir.path);
  CHECK_FALSE(done->live());
  CHECK(done->damage().ok());
  CHECK(done->last_epoch() == w.m.epoch);
  auto ok = mmsb::replay::verify(dir.path);
  INFO(ok.problem);
  CHECK(ok.ok);
  auto ix = build(*done);
  StateView view(*ix);
  REQUIRE(view.seek(w.m.epoch).ok());
  const Snap& want = w.saved.at(w.m.epoch);
  for (uint32_t p = 0; p < want.pages.size(); ++p) {
    INFO("page " << p);
    CHECK(model::first_mismatch(view.page(p), want.pages[p].bytes) == -1);
  }
  check_recovered_again(dir.path);  // a finished recording: nothing to do
}

TEST_CASE("verify: a snapshot image that disagrees with the deltas before it is named", "[replay]") {
  Full f;
  record_full(f, 0x1d07, 600, many_segments());
  // The last snapshot part in the files whose first image is past epoch 0,
  // rewritten with one image byte flipped and a valid checksum: the frame
  // checks pass, only replaying the deltas can tell.
  fs::path seg;
  RawFrame target;
  for (const fs::path& p : segment_files(f.dir.path))
    for (const RawFrame& r : raw_frames(read_file(p)))
      if (r.kind == 4 && r.first > 0) seg = p, target = r;
  REQUIRE(!seg.empty());
  std::vector<uint8_t> fbuf = frame_buffer(seg, target);
  const mmsb::fb::Snapshot* sn = mmsb::fb::GetFrame(fbuf.data())->body_as_Snapshot();
  REQUIRE(sn);
  REQUIRE(sn->ids()->size() > 0);
  const uint32_t page = sn->ids()->Get(0);
  const uint64_t epoch = sn->epochs()->Get(0);
  const size_t data_at = static_cast<size_t>(sn->data()->data() - fbuf.data());
  fbuf[data_at] ^= 0x5a;  // byte 0 of the first image
  rewrite_frame(seg, target, fbuf);

  auto rep = mmsb::replay::verify(f.dir.path);
  INFO(rep.problem);
  CHECK_FALSE(rep.ok);
  CHECK(rep.opened);
  CHECK(rep.file == seg.string());
  CHECK(rep.offset == target.offset);
  CHECK(rep.page == page);
  CHECK(rep.epoch == epoch);
  CHECK(rep.problem.find("differs from the replayed page at byte 0") != std::string::npos);
  CHECK(rep.recoverable);

  // recover drops that snapshot, every part of it, and keeps every epoch.
  auto fixed = mmsb::replay::recover(f.dir.path);
  REQUIRE(fixed.ok());
  INFO(fixed->summary);
  CHECK(fixed->outcome == RecoverReport::Outcome::kCut);
  CHECK(fixed->last_good_epoch == f.last);
  CHECK(fixed->summary.find("no epoch lost") != std::string::npos);
  CHECK(std::any_of(fixed->actions.begin(), fixed->actions.end(), [&](const std::string& a) {
    return a.find("dropped snapshot " + std::to_string(sn->id())) != std::string::npos;
  }));
  check_recovered(f.dir.path, f, f.last);
}

TEST_CASE("compare: identical runs, one changed byte, a prefix, ignores, final states", "[replay]") {
  Full a, b;
  record_full(a, 0x1d04, 700);
  record_full(b, 0x1d04, 700);
  auto ra = open_rec(a.dir.path), rb = open_rec(b.dir.path);
  auto ia = build(*ra), ib = build(*rb);
  auto same = mmsb::replay::compare(*ia, *ib, {});
  REQUIRE(same.ok());
  INFO(same->summary);
  CHECK(same->outcome == CompareReport::Outcome::kIdentical);
  CHECK(same->epochs_compared == a.last);

  // The same run, but at step 400 one byte of page 3 (4095 bytes) is
  // written with 0x41 in one run and 0x42 in the other.
  const uint64_t offset = 1234;
  Full d1, d2;
  auto tamper = [&](uint8_t value, Epoch* at) {
    return [value, at](int step, Workload& w) {
      if (step == 400) {
        w.write(3, offset, {value});
        *at = w.m.epoch;
      }
    };
  };
  Epoch at1 = 0, at2 = 0;
  record_full(d1, 0x1d04, 700, small_options(), tamper(0x41, &at1));
  record_full(d2, 0x1d04, 700, small_options(), tamper(0x42, &at2));
  REQUIRE(at1 == at2);
  auto r1 = open_rec(d1.dir.path), r2 = open_rec(d2.dir.path);
  auto i1 = build(*r1), i2 = build(*r2);
  auto div = mmsb::replay::compare(*i1, *i2, {});
  REQUIRE(div.ok());
  INFO(div->summary);
  REQUIRE(div->outcome == CompareReport::Outcome::kDiverged);
  CHECK(div->epoch == at1);
  CHECK(div->page == 3);
  REQUIRE(div->ranges.size() == 1);
  CHECK(div->ranges[0].offset == offset);
  CHECK(div->ranges[0].length == 1);
  CHECK(static_cast<uint8_t>(div->a_bytes[0]) == 0x41);
  CHECK(static_cast<uint8_t>(div->b_bytes[0]) == 0x42);
  // The model: the two runs' states first differ at that epoch (later
  // writes may overwrite the byte, so later states can agree again).
  CHECK(d1.saved.at(at1 - 1).pages[3].bytes == d2.saved.at(at1 - 1).pages[3].bytes);
  CHECK(d1.saved.at(at1).pages[3].bytes != d2.saved.at(at1).pages[3].bytes);

  // Ignoring that byte range (or the page) hides the difference, as long as
  // nothing else differs.
  CompareOptions ig;
  ig.ignore_ranges.push_back(mmsb::replay::ByteRange{3, offset, 1});
  auto hidden = mmsb::replay::compare(*i1, *i2, ig);
  REQUIRE(hidden.ok());
  CHECK(hidden->outcome == CompareReport::Outcome::kIdentical);
  CompareOptions igp;
  igp.ignore_pages.push_back("3");
  CHECK(mmsb::replay::compare(*i1, *i2, igp)->outcome == CompareReport::Outcome::kIdentical);

  // A run that stopped early is a prefix, not identical.
  Full shorter;
  record_full(shorter, 0x1d04, 500);
  auto rs = open_rec(shorter.dir.path);
  auto is = build(*rs);
  auto pre = mmsb::replay::compare(*ia, *is, {});
  REQUIRE(pre.ok());
  CHECK(pre->outcome == CompareReport::Outcome::kPrefix);
  CHECK(pre->shorter == "b");
  CHECK(pre->b_last == shorter.last);

  // Final states only: a run and its prefix differ in their final states
  // unless equal; the same run compares identical.
  CompareOptions fin;
  fin.final_only = true;
  CHECK(mmsb::replay::compare(*ia, *ib, fin)->outcome == CompareReport::Outcome::kIdentical);
  const bool finals_equal = a.saved.at(a.last).pages.size() == shorter.saved.at(shorter.last).pages.size() &&
                            [&] {
                              for (size_t p = 0; p < a.saved.at(a.last).pages.size(); ++p)
                                if (a.saved.at(a.last).pages[p].bytes != shorter.saved.at(shorter.last).pages[p].bytes)
                                  return false;
                              return true;
                            }();
  CHECK((mmsb::replay::compare(*ia, *is, fin)->outcome == CompareReport::Outcome::kIdentical) == finals_equal);
}

TEST_CASE("recover: cut and bit-flipped copies keep every intact epoch", "[replay]") {
  Full f;
  record_full(f, 0x1d05, 900, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  REQUIRE(segs.size() >= 3);
  model::Rng rng(0x2ec0);
  for (int round = 0; round < 16; ++round) {
    TempDir work("replay-recover");
    copy_dir(f.dir.path, work.path);
    // Pick a segment and an offset in it; cut there, or flip a byte there.
    const size_t si = rng.below(segs.size());
    const fs::path seg = work.path / segs[si].filename();
    std::vector<uint8_t> bytes = read_file(seg);
    const uint64_t at = rng.between(33, bytes.size() - 1);
    const bool flip = round % 2 == 1;
    if (flip)
      bytes[at] ^= 0x01;
    else
      bytes.resize(at);
    write_file(seg, bytes);
    // Every delta frame that ends before the damage, in this and earlier
    // segments, is intact: its last epoch must survive.
    Epoch intact = 0;
    for (size_t s = 0; s <= si; ++s) {
      const std::vector<uint8_t> file = s == si ? read_file(seg) : read_file(segs[s]);
      for (const RawFrame& r : raw_frames(file))
        if (r.kind == kDeltasKind && (s < si || r.end() <= at)) intact = std::max(intact, r.last);
    }
    INFO("round " << round << (flip ? ": flip" : ": cut") << " at " << at << " of " << seg.filename()
                  << ", intact up to epoch " << intact);
    auto rep = mmsb::replay::recover(work.path);
    REQUIRE(rep.ok());
    INFO(rep->summary);
    if (rep->outcome == RecoverReport::Outcome::kNothing) {
      CHECK(si == 0);
      continue;
    }
    CHECK(rep->last_good_epoch >= intact);
    CHECK(rep->last_good_epoch <= f.last);
    // A flip inside a trailer or index only costs the index: no epoch lost.
    auto rec = open_rec(work.path);
    CHECK(rec->damage().ok());
    CHECK(rec->last_epoch() == rep->last_good_epoch);
    for (const auto& s : rec->segments()) CHECK(s.closed);
    auto again = mmsb::replay::verify(work.path);
    INFO(again.problem);
    CHECK(again.ok);
    // Every kept epoch's state is the model's.
    auto ix = build(*rec);
    StateView v(*ix);
    for (Epoch e : {Epoch{0}, rep->last_good_epoch / 2, rep->last_good_epoch}) {
      REQUIRE(v.seek(e).ok());
      const Snap& want = f.saved.at(e);
      for (uint32_t p = 0; p < want.pages.size(); ++p) {
        INFO("page " << p << " at epoch " << e);
        if (p >= v.page_count()) {
          // Only a page created after the last kept delta (so at that epoch,
          // still all zeros) can be missing: its page table frame came later.
          CHECK(want.pages[p].created_epoch == e);
          CHECK(e == rep->last_good_epoch);
          CHECK(std::all_of(want.pages[p].bytes.begin(), want.pages[p].bytes.end(), [](uint8_t b) { return b == 0; }));
          continue;
        }
        CHECK(model::first_mismatch(v.page(p), want.pages[p].bytes) == -1);
      }
    }
    // Nothing was deleted: the cut bytes were set aside.
    uint64_t aside = 0;
    for (const auto& file : rep->set_aside) aside += fs::file_size(file);
    CHECK(aside == rep->bytes_cut);
    check_recovered_again(work.path);
  }
}

TEST_CASE("recover: an empty file or a directory named like the next segment is set aside and nothing is lost",
          "[replay]") {
  Full f;
  record_full(f, 0x1d0c, 300, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  char next[32];
  std::snprintf(next, sizeof next, "seg-%06zu.tlog", segs.size());  // FORMAT.md's name of the next segment
  for (const bool directory : {false, true}) {
    TempDir work("replay-recover-extra");
    copy_dir(f.dir.path, work.path);
    const fs::path extra = work.path / next;
    if (directory)
      fs::create_directory(extra);
    else
      write_file(extra, {});
    INFO((directory ? "a directory " : "an empty file ") << extra.filename());
    auto rep = mmsb::replay::recover(work.path);
    REQUIRE(rep.ok());
    INFO(rep->summary);
    CHECK(rep->outcome == RecoverReport::Outcome::kIntact);
    CHECK(rep->bytes_cut == 0);
    CHECK(rep->last_good_epoch == f.last);
    REQUIRE(rep->set_aside.size() == 1);
    CHECK(rep->set_aside[0] == fs::path(extra.string() + ".orphan"));
    CHECK(fs::exists(rep->set_aside[0]));
    CHECK_FALSE(fs::exists(extra));
    check_recovered(work.path, f, f.last);
  }
}

namespace {
// Sets a field of the trailer (the last 32 bytes, FORMAT.md) and its checksum.
template <class T>
void set_trailer_field(const fs::path& seg, size_t at, T value) {
  std::vector<uint8_t> b = read_file(seg);
  const size_t t = b.size() - 32;
  std::memcpy(b.data() + t + at, &value, sizeof value);
  const uint32_t sum = static_cast<uint32_t>(XXH3_64bits(b.data() + t, 28));
  std::memcpy(b.data() + t + 28, &sum, 4);
  write_file(seg, b);
}
}  // namespace

TEST_CASE("verify: a trailer that contradicts the frames, or an index frame mid-segment, is a problem recover fixes",
          "[replay]") {
  Full f;
  record_full(f, 0x1d0d, 600, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  REQUIRE(segs.size() >= 3);
  TempDir work("replay-trailer");
  copy_dir(f.dir.path, work.path);
  const fs::path seg = work.path / segs[0].filename();
  const std::vector<uint8_t> orig = read_file(seg);
  const uint64_t trailer_at = orig.size() - 32;
  std::vector<RawFrame> frames = raw_frames(orig);  // the index frame last
  REQUIRE(frames.back().kind == kIndexKind);
  frames.pop_back();
  Epoch seg_last = 0;
  for (const RawFrame& r : frames)
    if (r.kind == kDeltasKind) seg_last = std::max(seg_last, r.last);
  const std::string at = "trailer at offset " + std::to_string(trailer_at);
  Epoch intact = f.last;  // what recover must keep

  SECTION("last delta epoch") {
    set_trailer_field<uint64_t>(seg, 16, 1);
    auto rep = mmsb::replay::verify(work.path);
    INFO(rep.problem);
    CHECK_FALSE(rep.ok);
    CHECK(rep.file == seg.string());
    CHECK(rep.offset == trailer_at);
    CHECK(rep.problem.find(at + " says the last delta epoch is 1, the segment's delta frames end at " +
                           std::to_string(seg_last)) != std::string::npos);
  }
  SECTION("frame count") {
    set_trailer_field<uint32_t>(seg, 24, 1);
    auto rep = mmsb::replay::verify(work.path);
    INFO(rep.problem);
    CHECK_FALSE(rep.ok);
    CHECK(rep.file == seg.string());
    CHECK(rep.offset == trailer_at);
    CHECK(rep.problem.find(at + " says 1 frames precede the index frame, found " + std::to_string(frames.size())) !=
          std::string::npos);
  }
  SECTION("an index frame in the middle") {
    // The second delta frame's kind set to 5 (header checksum fixed): the
    // history ends before it.
    const RawFrame* target = nullptr;
    int seen = 0;
    for (const RawFrame& r : frames)
      if (r.kind == kDeltasKind && ++seen == 2) target = &r;
    REQUIRE(target);
    std::vector<uint8_t> b = orig;
    b[target->offset + 4] = kIndexKind;
    const uint32_t sum = static_cast<uint32_t>(XXH3_64bits(b.data() + target->offset, 36));
    std::memcpy(b.data() + target->offset + 36, &sum, 4);
    write_file(seg, b);
    intact = 0;
    for (const RawFrame& r : frames)
      if (r.kind == kDeltasKind && r.offset < target->offset) intact = std::max(intact, r.last);
    auto rep = mmsb::replay::verify(work.path);
    INFO(rep.problem);
    CHECK_FALSE(rep.ok);
    CHECK(rep.file == seg.string());
    CHECK(rep.offset == target->offset);
    CHECK(rep.problem.find("an index frame in the middle of the segment") != std::string::npos);
  }
  // Damage to what only closes the segment -- its index frame, its trailer,
  // bytes after them -- loses no delta: the readers walk the whole frames,
  // the history goes on into the next segments, and verify and recover see
  // a problem with the index.
  auto index_only = [&](const std::string& what) {
    auto rec = open_rec(work.path);
    INFO(rec->damage().to_string());
    CHECK(rec->damage().ok());
    CHECK(rec->last_epoch() == f.last);
    CHECK(rec->segments().size() == segs.size());
    CHECK(rec->segments()[0].problem.find(what) != std::string::npos);
    auto rep = mmsb::replay::verify(work.path);
    INFO(rep.problem);
    CHECK_FALSE(rep.ok);
    CHECK(rep.recoverable);
    CHECK(rep.file == seg.string());
  };
  SECTION("the index frame's payload") {
    const RawFrame index = raw_frames(orig).back();
    std::vector<uint8_t> b = orig;
    b[index.offset + 40 + index.payload / 2] ^= 0x04;
    write_file(seg, b);
    index_only("this is the segment's index frame");
  }
  SECTION("the trailer's magic") {
    std::vector<uint8_t> b = orig;
    b[trailer_at] ^= 0x01;
    write_file(seg, b);
    index_only("after the index frame");
  }
  SECTION("bytes after the trailer") {
    std::vector<uint8_t> b = orig;
    b.insert(b.end(), 8, 0);
    write_file(seg, b);
    index_only("after the index frame");
  }
  INFO("recover keeps every epoch up to " << intact);
  recover_cut(work.path, f, intact);
}

TEST_CASE("an unreadable snapshot part leaves its snapshot incomplete -- recover drops it, keeping every epoch", "[replay]") {
  Full f;
  record_full(f, 0x1d0e, 900, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  TempDir work("replay-bad-snapshot");
  copy_dir(f.dir.path, work.path);
  constexpr uint8_t kSnapshotKind = 4;
  fs::path seg;
  RawFrame target;
  for (size_t s = 1; s < segs.size() && !target.payload; ++s)
    for (const RawFrame& r : raw_frames(read_file(segs[s])))
      if (r.kind == kSnapshotKind) {
        target = r;
        seg = work.path / segs[s].filename();
        break;
      }
  REQUIRE(target.payload > 0);
  std::vector<uint8_t> b = read_file(seg);
  b[target.offset + 40 + target.payload / 2] ^= 0x10;
  write_file(seg, b);
  INFO(seg.filename() << " offset " << target.offset);
  auto rec = open_rec(work.path);
  CHECK(rec->damage().ok());
  CHECK(rec->last_epoch() == f.last);
  size_t incomplete = 0;
  for (const auto& s : rec->snapshots()) incomplete += !s.complete;
  CHECK(incomplete >= 1);
  // Every epoch still replays to the model's state (seeks use the other snapshots).
  auto ix = build(*rec);
  CHECK(ix->damage().ok());
  StateView v(*ix);
  for (Epoch e : {Epoch{1}, target.first, f.last / 2, f.last}) {
    REQUIRE(v.seek(e).ok());
    const Snap& want = f.saved.at(e);
    for (uint32_t p = 0; p < v.page_count(); ++p) {
      INFO("page " << p << " at epoch " << e);
      CHECK(model::first_mismatch(v.page(p), want.pages[p].bytes) == -1);
    }
  }
  mmsb::replay::State st(*rec);
  REQUIRE(st.seek(f.last).ok());
  // verify still names the bad frame.
  auto rep = mmsb::replay::verify(work.path);
  CHECK_FALSE(rep.ok);
  CHECK(rep.file == seg.string());
  CHECK(rep.offset == target.offset);
  CHECK(rep.recoverable);

  // recover drops that part (its segment rewritten without it) and keeps
  // every epoch; a dry run says so and changes nothing.
  const std::vector<uint8_t> before = read_file(seg);
  auto dry = mmsb::replay::recover(work.path, /*dry_run=*/true);
  REQUIRE(dry.ok());
  CHECK(read_file(seg) == before);
  CHECK(dry->actions.front().find("would drop " + seg.string() + " offset " +
                                  std::to_string(target.offset)) != std::string::npos);
  auto fixed = mmsb::replay::recover(work.path);
  REQUIRE(fixed.ok());
  INFO(fixed->summary);
  CHECK(fixed->outcome == RecoverReport::Outcome::kCut);
  CHECK(fixed->last_good_epoch == f.last);
  CHECK(fixed->lost_last == 0u);
  CHECK(fixed->summary.find("no epoch lost") != std::string::npos);
  uint64_t aside = 0;
  for (const auto& file : fixed->set_aside) aside += fs::file_size(file);
  CHECK(aside == fixed->bytes_cut);
  CHECK(aside >= 40 + target.payload);  // the dropped frame, header and payload
  check_recovered(work.path, f, f.last);
  for (const auto& e : fs::directory_iterator(work.path))  // no rewrite left behind
    CHECK(e.path().filename().string().find(".rewrite") == std::string::npos);
  check_recovered_again(work.path);
}

TEST_CASE("open: a delta frame that claims more epochs than it has bytes ends the history there", "[replay]") {
  Full f;
  record_full(f, 0x1d0f, 300, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  TempDir work("replay-huge-epochs");
  copy_dir(f.dir.path, work.path);
  // The last delta frame (the last segment may hold only snapshot parts).
  fs::path seg;
  std::vector<uint8_t> b;
  RawFrame target;
  for (auto s = segs.rbegin(); s != segs.rend() && target.payload == 0; ++s) {
    seg = work.path / s->filename();
    b = read_file(seg);
    for (const RawFrame& r : raw_frames(b))
      if (r.kind == kDeltasKind) target = r;
  }
  REQUIRE(target.payload > 0);
  const uint64_t huge = target.first + (uint64_t{1} << 40);
  std::memcpy(b.data() + target.offset + 24, &huge, 8);  // last_epoch (FORMAT.md), header checksum fixed
  const uint32_t sum = static_cast<uint32_t>(XXH3_64bits(b.data() + target.offset, 36));
  std::memcpy(b.data() + target.offset + 36, &sum, 4);
  write_file(seg, b);
  auto rec = open_rec(work.path);
  INFO(rec->damage().to_string());
  CHECK_FALSE(rec->damage().ok());
  CHECK(rec->damage().message().find("claims epochs") != std::string::npos);
  CHECK(rec->last_epoch() == target.first - 1);
  auto ix = build(*rec);  // no attempt to reserve for 2^40 deltas
  CHECK(ix->last_epoch() == target.first - 1);
}

TEST_CASE("recover: a middle segment cut exactly at a frame boundary ends the history there", "[replay]") {
  // A cut that lands between two frames leaves a segment that reads cleanly
  // to its end but has no index or trailer; the segments after it cannot
  // join the history (their page tables and epochs follow the lost bytes).
  Full f;
  record_full(f, 0x1d08, 900, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  REQUIRE(segs.size() >= 3);
  const std::vector<RawFrame> frames = raw_frames(read_file(segs[1]));
  // Cut points: before the index frame (only index and trailer lost), and
  // after the first delta frame.
  uint64_t before_index = 0, after_first_delta = 0;
  for (const RawFrame& r : frames) {
    if (r.kind == kIndexKind) before_index = r.offset;
    if (r.kind == kDeltasKind && after_first_delta == 0) after_first_delta = r.end();
  }
  REQUIRE(before_index > 0);
  REQUIRE(after_first_delta > 0);
  for (const uint64_t at : {before_index, after_first_delta}) {
    TempDir work("replay-recover-boundary");
    copy_dir(f.dir.path, work.path);
    const fs::path seg = work.path / segs[1].filename();
    std::vector<uint8_t> bytes = read_file(seg);
    bytes.resize(at);
    write_file(seg, bytes);
    // The model: the last delta epoch in segment 1 up to the cut.
    Epoch intact = 0;
    for (const RawFrame& r : raw_frames(bytes))
      if (r.kind == kDeltasKind) intact = std::max(intact, r.last);
    INFO("cut seg 1 at " << at << ", intact up to epoch " << intact);
    REQUIRE(intact > 0);
    REQUIRE(intact < f.last);

    check_damage(*open_rec(work.path), 1, at, "cut short", intact);
    CHECK_FALSE(mmsb::replay::verify(work.path).ok);

    const RecoverReport rep = recover_cut(work.path, f, intact);
    // Every later segment set aside whole, none deleted.
    CHECK(rep.set_aside.size() == segs.size() - 2);
    uint64_t later = 0;
    for (size_t s = 2; s < segs.size(); ++s) later += fs::file_size(segs[s]);
    CHECK(rep.bytes_cut == later);
  }
}

TEST_CASE("open: lost last segments (deleted, or not copied) are damage -- recover marks the new end, losing nothing more",
          "[replay]") {
  // A 1.1 writer marks the segment it closes last (FORMAT.md, SegmentIndex.
  // last_segment), so a recording whose last segments are gone no longer
  // passes for a finished one.
  Full f;
  record_full(f, 0x1d0b, 900, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  REQUIRE(segs.size() >= 4);
  {
    auto whole = open_rec(f.dir.path);
    CHECK(whole->damage().ok());
    CHECK(whole->last_epoch() == f.last);
    CHECK(mmsb::replay::verify(f.dir.path).ok);
  }
  for (const size_t lost : {size_t{1}, size_t{2}}) {
    TempDir work("replay-lost-end");
    copy_dir(f.dir.path, work.path);
    const size_t kept = segs.size() - lost;
    for (size_t s = kept; s < segs.size(); ++s) fs::remove(work.path / segs[s].filename());
    const Epoch intact = last_delta_in(segs, kept);
    INFO(lost << " last segment(s) removed, intact up to epoch " << intact);
    REQUIRE(intact > 0);
    REQUIRE(intact <= f.last);  // equal when the lost files held only snapshot parts

    const fs::path missing = work.path / segs[kept].filename();
    {
      auto rec = open_rec(work.path);
      check_damage(*rec, static_cast<uint32_t>(kept), 0, "is missing", intact);
      CHECK(rec->damage_at().file == missing);
      CHECK(rec->damage().message().find(segs[kept - 1].filename().string()) != std::string::npos);
    }
    // While a writer holds the lock it may be between the two files: no damage.
    {
      mmsb::format::DirLock lock;
      REQUIRE(lock.acquire(work.path).ok());
      auto rec = open_rec(work.path);
      CHECK(rec->live());
      CHECK(rec->damage().ok());
      CHECK(rec->last_epoch() == intact);
      // verify still fails: the recording is not known to be whole.
      auto lv = mmsb::replay::verify(work.path);
      CHECK_FALSE(lv.ok);
      CHECK(lv.live);
      CHECK(lv.end_missing);
      CHECK(lv.problem.find(missing.filename().string()) != std::string::npos);
    }
    auto v = mmsb::replay::verify(work.path);
    CHECK_FALSE(v.ok);
    CHECK(v.recoverable);
    CHECK(v.problem.find(missing.filename().string()) != std::string::npos);
    CHECK(v.problem.find("recover") != std::string::npos);
    CHECK(v.end_missing);
    CHECK(v.epoch == 0);  // what the missing file held is not known

    // The dry run changes nothing; recover rewrites only the new last
    // segment's index and trailer, and sets nothing aside.
    const std::vector<uint8_t> before = read_file(work.path / segs[kept - 1].filename());
    auto dry = mmsb::replay::recover(work.path, /*dry_run=*/true);
    REQUIRE(dry.ok());
    CHECK(dry->outcome == RecoverReport::Outcome::kCut);
    CHECK(read_file(work.path / segs[kept - 1].filename()) == before);
    const RecoverReport rep = recover_cut(work.path, f, intact);
    INFO(rep.summary);
    CHECK(rep.summary.find("is missing") != std::string::npos);
    CHECK(rep.set_aside.empty());
    CHECK(rep.bytes_cut == 0);
    REQUIRE(rep.actions.size() == 1);
    CHECK(rep.actions[0].find("marked " + segs[kept - 1].filename().string()) != std::string::npos);
    // Every frame of the new last segment is kept, byte for byte, before
    // its new index frame.
    const std::vector<uint8_t> after = read_file(work.path / segs[kept - 1].filename());
    const std::vector<RawFrame> old_frames = raw_frames(before);
    uint64_t index_at = 0;
    for (const RawFrame& r : old_frames)
      if (r.kind == kIndexKind) index_at = r.offset;
    REQUIRE(index_at > 0);
    REQUIRE(after.size() > index_at);
    CHECK(std::equal(before.begin(), before.begin() + static_cast<std::ptrdiff_t>(index_at), after.begin()));
    for (const auto& e : fs::directory_iterator(work.path)) CHECK(e.path().extension() == ".tlog");
    check_recovered_again(work.path);

    // The lost files turn up again: readers go on into them, verify names
    // the mark recover set, and recover clears it, keeping every epoch.
    for (size_t s = kept; s < segs.size(); ++s) fs::copy_file(segs[s], work.path / segs[s].filename());
    CHECK(open_rec(work.path)->last_epoch() == f.last);
    auto marked = mmsb::replay::verify(work.path);
    CHECK_FALSE(marked.ok);
    CHECK(marked.problem.find("marks it as the recording's last segment") != std::string::npos);
    auto clear = mmsb::replay::recover(work.path);
    REQUIRE(clear.ok());
    INFO(clear->summary);
    CHECK(clear->outcome == RecoverReport::Outcome::kIntact);
    CHECK(clear->bytes_cut == 0);
    REQUIRE(clear->actions.size() == 1);
    CHECK(clear->actions[0].find("cleared " + segs[kept - 1].filename().string()) != std::string::npos);
    check_recovered(work.path, f, f.last);
    check_recovered_again(work.path);
  }
}

TEST_CASE("recover: a next segment holding only its file header (its writer died right after creating it)",
          "[replay]") {
  // The writer closes a segment (not marked last), creates the next and
  // writes its 32-byte header: a crash there leaves a frameless file.
  Full f;
  record_full(f, 0x1d0d, 600, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  REQUIRE(segs.size() >= 3);
  TempDir work("replay-stub");
  copy_dir(f.dir.path, work.path);
  const fs::path stub = work.path / segs.back().filename();
  std::vector<uint8_t> header = read_file(stub);
  header.resize(32);
  write_file(stub, header);
  const Epoch intact = last_delta_in(segs, segs.size() - 1);
  {
    auto rec = open_rec(work.path);  // an open last segment with nothing in it: read as a crash's
    CHECK(rec->last_epoch() == intact);
  }
  CHECK_FALSE(mmsb::replay::verify(work.path).ok);
  auto rep = mmsb::replay::recover(work.path);
  REQUIRE(rep.ok());
  INFO(rep->summary);
  CHECK(rep->last_good_epoch == intact);
  CHECK(rep->bytes_cut == 32);
  REQUIRE(rep->set_aside.size() == 1);
  bool said = false;
  for (const std::string& a : rep->actions)
    said |= a.find("set aside " + stub.filename().string()) != std::string::npos &&
            a.find("holds no whole frame") != std::string::npos;
  CHECK(said);
  check_recovered(work.path, f, intact);
  check_recovered_again(work.path);
}

TEST_CASE("open: a format 1.0 recording (no last-segment mark) whose last segment is gone still opens clean",
          "[replay]") {
  // 1.0 writers did not mark the last segment, so readers cannot tell: the
  // files' minor version decides (FORMAT.md, versioning rules).
  Full f;
  record_full(f, 0x1d0c, 600, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  REQUIRE(segs.size() >= 3);
  TempDir work("replay-lost-end-1.0");
  copy_dir(f.dir.path, work.path);
  for (const fs::path& seg : segs) {  // file header: minor version (bytes 10-11) 0, checksum again
    std::vector<uint8_t> b = read_file(work.path / seg.filename());
    REQUIRE(get<uint16_t>(b, 10) == 1);
    b[10] = b[11] = 0;
    const uint32_t sum = static_cast<uint32_t>(XXH3_64bits(b.data(), 28));
    std::memcpy(b.data() + 28, &sum, 4);
    write_file(work.path / seg.filename(), b);
  }
  fs::remove(work.path / segs.back().filename());
  const Epoch intact = last_delta_in(segs, segs.size() - 1);
  auto rec = open_rec(work.path);
  INFO(rec->damage().to_string());
  CHECK(rec->damage().ok());
  CHECK(rec->last_epoch() == intact);
  CHECK(mmsb::replay::verify(work.path).ok);
  check_recovered_again(work.path);  // nothing to do
}

TEST_CASE("recover: a page table that contradicts the ones before it ends the history there", "[replay]") {
  // Its checksums pass (a writer bug, or a file edited by hand), so only
  // what it declares is wrong: the epochs before it must all survive.
  Full f;
  record_full(f, 0x1d09, 900, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  REQUIRE(segs.size() >= 3);
  // The first page table frame after segment 0, and the last delta epoch
  // written before it.
  constexpr uint8_t kPageTableKind = 2;
  size_t si = 0;
  RawFrame target;
  Epoch intact = 0;
  for (size_t s = 1; s < segs.size() && si == 0; ++s)
    for (const RawFrame& r : raw_frames(read_file(segs[s]))) {
      if (r.kind == kPageTableKind) {
        si = s, target = r;
        break;
      }
    }
  REQUIRE(si > 0);
  for (size_t s = 0; s <= si; ++s)
    for (const RawFrame& r : raw_frames(read_file(segs[s])))
      if (r.kind == kDeltasKind && (s < si || r.offset < target.offset)) intact = std::max(intact, r.last);
  TempDir work("replay-recover-table");
  copy_dir(f.dir.path, work.path);
  const fs::path seg = work.path / segs[si].filename();
  std::vector<uint8_t> fbuf = frame_buffer(seg, target);
  const mmsb::fb::PageTable* t = mmsb::fb::GetFrame(fbuf.data())->body_as_PageTable();
  REQUIRE(t);
  REQUIRE(t->ids()->size() > 0);
  const uint32_t first = t->ids()->Get(0);
  const size_t ids_at = static_cast<size_t>(reinterpret_cast<const uint8_t*>(t->ids()->data()) - fbuf.data());
  const uint32_t skipped = first + 1;  // declares one page too far
  std::memcpy(fbuf.data() + ids_at, &skipped, 4);
  rewrite_frame(seg, target, fbuf);
  INFO("page table at " << seg.filename() << " offset " << target.offset << " now starts at page " << skipped
                        << ", intact up to epoch " << intact);

  auto rec = open_rec(work.path);
  check_damage(*rec, static_cast<uint32_t>(si), target.offset,
               "declares page " + std::to_string(skipped) + ", expected " + std::to_string(first), intact);
  CHECK(rec->pages().size() == first);

  recover_cut(work.path, f, intact);
}

TEST_CASE("verify names and recover cuts at a good frame holding a delta invalid for its page", "[replay]") {
  // The second delta of a delta frame in segment 1 is made to name a page
  // that does not exist; checksums pass. verify must name that frame, that
  // delta's epoch and page; recover must cut the whole frame, keeping every
  // epoch before it with the model's state.
  Full f;
  record_full(f, 0x1d0b, 900, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  REQUIRE(segs.size() >= 3);
  TempDir work("replay-bad-delta");
  copy_dir(f.dir.path, work.path);
  const fs::path seg = work.path / segs[1].filename();
  RawFrame target;
  for (const RawFrame& r : raw_frames(read_file(seg)))
    if (r.kind == kDeltasKind && r.last > r.first) {
      target = r;
      break;
    }
  REQUIRE(target.last > target.first);
  std::vector<uint8_t> fbuf = frame_buffer(seg, target);
  const mmsb::fb::DeltaBatch* b = mmsb::fb::GetFrame(fbuf.data())->body_as_DeltaBatch();
  REQUIRE(b);
  // Delta 1's page id, at the column's own width, set to its largest value.
  uint32_t bad_page = 0;
  const uint8_t* at = nullptr;
  size_t width = 0;
  if (b->page8()) at = b->page8()->data() + 1, width = 1, bad_page = 0xff;
  if (b->page16()) at = reinterpret_cast<const uint8_t*>(b->page16()->data() + 1), width = 2, bad_page = 0xffff;
  if (b->page32()) at = reinterpret_cast<const uint8_t*>(b->page32()->data() + 1), width = 4, bad_page = 0xffffffff;
  REQUIRE(at);
  REQUIRE(bad_page >= f.saved.at(f.last).pages.size());
  std::memset(fbuf.data() + (at - fbuf.data()), 0xff, width);
  rewrite_frame(seg, target, fbuf);
  INFO(seg.filename() << " offset " << target.offset << ": delta at epoch " << target.first + 1 << " -> page "
                      << bad_page);

  auto rep = mmsb::replay::verify(work.path);
  INFO(rep.problem);
  CHECK_FALSE(rep.ok);
  CHECK(rep.recoverable);
  CHECK(rep.file == seg.string());
  CHECK(rep.offset == target.offset);
  CHECK(rep.epoch == target.first + 1);
  CHECK(rep.page == bad_page);
  CHECK(rep.problem.find("refers to page " + std::to_string(bad_page)) != std::string::npos);

  // Readers keep every epoch before that frame, with the damage said.
  {
    auto rec = open_rec(work.path);
    auto ix = build(*rec);
    INFO(ix->damage().to_string());
    CHECK_FALSE(ix->damage().ok());
    CHECK(ix->damage().message().find("refers to page " + std::to_string(bad_page)) != std::string::npos);
    CHECK(ix->last_epoch() == target.first - 1);
    StateView v(*ix);
    REQUIRE(v.seek(target.first - 1).ok());
    const Snap& want = f.saved.at(target.first - 1);
    for (uint32_t p = 0; p < v.page_count(); ++p) CHECK(model::first_mismatch(v.page(p), want.pages[p].bytes) == -1);
  }

  const RecoverReport cut = recover_cut(work.path, f, target.first - 1);
  CHECK(cut.bytes_cut > 0);
}

TEST_CASE("verify: a recording that began past epoch 0 -- a bad image in the snapshot it starts from is named",
          "[replay]") {
  // Such a recording's start state is its first complete snapshot. An image
  // whose size disagrees with the page table (checksums pass) is damage in
  // that snapshot part -- file, offset, epoch, page; recover cuts it -- even
  // though no start state can be built from it either.
  TempDir dir("replay-late-verify");
  Bus bus;
  Workload w(bus, 0x1a7f);
  for (uint64_t s : {2, 64, 5000, 300}) w.create(s);
  for (int i = 0; i < 200; ++i) w.step(/*may_create=*/true);
  REQUIRE(w.errors.empty());
  const Epoch e0 = w.m.epoch;
  REQUIRE(e0 > 0);
  auto started = Recorder::start(bus, dir.path, small_options());
  REQUIRE(started.ok());
  for (int i = 0; i < 600; ++i) w.step(/*may_create=*/true);
  REQUIRE(w.errors.empty());
  REQUIRE((*started)->stop().ok());

  const mmsb::replay::VerifyReport ok = mmsb::replay::verify(dir.path);
  INFO(ok.problem);
  REQUIRE(ok.ok);
  CHECK(ok.deltas == w.m.epoch - e0);  // every delta after the recorder attached
  CHECK(ok.snapshots >= 1);

  // Part 0 of the first snapshot in the files (the one taken at attach):
  // its first image's size, one byte too many.
  constexpr uint8_t kSnapshotKind = 4;
  fs::path seg;
  RawFrame target;
  for (const fs::path& p : segment_files(dir.path)) {
    for (const RawFrame& r : raw_frames(read_file(p)))
      if (r.kind == kSnapshotKind) {
        seg = p, target = r;
        break;
      }
    if (!seg.empty()) break;
  }
  REQUIRE(!seg.empty());
  std::vector<uint8_t> fbuf = frame_buffer(seg, target);
  const mmsb::fb::Snapshot* sn = mmsb::fb::GetFrame(fbuf.data())->body_as_Snapshot();
  REQUIRE(sn);
  REQUIRE(sn->part() == 0);
  REQUIRE(sn->ids()->size() > 0);
  const uint32_t page = sn->ids()->Get(0);
  const uint64_t size = sn->sizes()->Get(0) + 1;
  const size_t sizes_at = static_cast<size_t>(reinterpret_cast<const uint8_t*>(sn->sizes()->data()) - fbuf.data());
  std::memcpy(fbuf.data() + sizes_at, &size, sizeof size);
  rewrite_frame(seg, target, fbuf);
  INFO(seg.filename() << " offset " << target.offset << ": snapshot image of page " << page << " now " << size
                      << " bytes");
  auto rec = open_rec(dir.path);
  REQUIRE(rec->damage().ok());  // open reads no snapshot image
  REQUIRE(rec->start_epoch() > 0);

  const mmsb::replay::VerifyReport bad = mmsb::replay::verify(dir.path);
  INFO(bad.problem);
  CHECK_FALSE(bad.ok);
  CHECK(bad.opened);
  CHECK(bad.recoverable);
  CHECK(bad.file == seg.string());
  CHECK(bad.offset == target.offset);
  CHECK(bad.epoch == target.first);
  CHECK(bad.page == page);
  CHECK(bad.problem.find("image of page " + std::to_string(page) + " does not match the page table") !=
        std::string::npos);
}

TEST_CASE("damage: random cuts, flips, overwrites, inserts and lost files never give wrong bytes", "[replay]") {
  // Several kinds of damage at once, anywhere in any file. Whatever opens
  // must show the model's state at every epoch it can seek (or say why it
  // cannot); recover must always succeed, and leave a recording that
  // verifies clean and holds the model's state.
  Full f;
  record_full(f, 0x1d0a, 700, many_segments());
  const std::vector<fs::path> segs = segment_files(f.dir.path);
  REQUIRE(segs.size() >= 3);
  model::Rng rng(0xf022);
  for (int round = 0; round < 40; ++round) {
    TempDir work("replay-fuzz");
    copy_dir(f.dir.path, work.path);
    std::string what;
    for (uint64_t k = 0, n = rng.between(1, 3); k < n; ++k) {
      const fs::path seg = work.path / segs[rng.below(segs.size())].filename();
      if (!fs::exists(seg)) continue;
      std::vector<uint8_t> b = read_file(seg);
      const uint64_t at = rng.below(b.size());
      switch (rng.below(5)) {
        case 0:
          b.resize(at);
          what += " cut " + seg.filename().string() + " at " + std::to_string(at);
          break;
        case 1:
          b[at] ^= static_cast<uint8_t>(1u << rng.below(8));
          what += " flip " + seg.filename().string() + " at " + std::to_string(at);
          break;
        case 2: {
          const uint64_t len = std::min<uint64_t>(b.size() - at, rng.between(1, 64));
          for (uint64_t j = 0; j < len; ++j) b[at + j] = rng.byte();
          what += " overwrite " + seg.filename().string() + " at " + std::to_string(at);
          break;
        }
        case 3: {
          const std::vector<uint8_t> extra = rng.bytes(rng.between(1, 16));
          b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), extra.begin(), extra.end());
          what += " insert into " + seg.filename().string() + " at " + std::to_string(at);
          break;
        }
        default:
          fs::remove(seg);
          what += " remove " + seg.filename().string();
          continue;
      }
      write_file(seg, b);
    }
    INFO("round " << round << ":" << what);

    auto rec = Recording::open(work.path);
    if (rec.ok()) {
      auto ix = Index::build(**rec);
      if (ix.ok()) {
        StateView v(**ix);
        const Epoch lo = (*ix)->start_epoch(), hi = (*ix)->last_epoch();
        CHECK(hi <= f.last);
        for (int k = 0; k < 6; ++k) {
          const Epoch e = lo + rng.below(hi - lo + 1);
          const mmsb::Status st = v.seek(e);
          INFO("seek " << e << ": " << st.to_string());
          if (!st.ok()) {
            CHECK(st.code() == Code::kCorruption);
            continue;
          }
          const Snap& want = f.saved.at(e);
          REQUIRE(v.page_count() <= want.pages.size());
          for (uint32_t p = 0; p < v.page_count(); ++p) {
            INFO("page " << p);
            CHECK(model::first_mismatch(v.page(p), want.pages[p].bytes) == -1);
          }
        }
      }
    }
    (void)mmsb::replay::verify(work.path);
    auto rep = mmsb::replay::recover(work.path);
    REQUIRE(rep.ok());
    INFO(rep->summary);
    if (rep->outcome == RecoverReport::Outcome::kNothing) continue;
    check_recovered(work.path, f, rep->last_good_epoch);
    check_recovered_again(work.path);
  }
}

TEST_CASE("export and restore give the model's state at an epoch", "[replay]") {
  Full f;
  record_full(f, 0x1d06, 400);
  auto rec = open_rec(f.dir.path);
  auto ix = build(*rec);
  const Epoch e = f.last * 2 / 3;
  const Snap& want = f.saved.at(e);

  TempDir out("replay-export");
  fs::remove_all(out.path);
  auto rep = mmsb::replay::export_state(*ix, e, out.path);
  REQUIRE(rep.ok());
  CHECK(rep->pages == want.pages.size());
  for (uint32_t p = 0; p < want.pages.size(); ++p) {
    INFO("page " << p);
    CHECK(read_file(out.path / ("page-" + std::to_string(p) + ".bin")) == want.pages[p].bytes);
  }
  std::ifstream manifest(out.path / "manifest.json");
  std::stringstream text;
  text << manifest.rdbuf();
  CHECK(text.str().find("\"epoch\": " + std::to_string(e)) != std::string::npos);
  CHECK(text.str().find("\"name\": \"hundred\"") != std::string::npos);
  // A second export into the same directory is refused.
  CHECK(mmsb::replay::export_state(*ix, e, out.path).status().code() == Code::kAlreadyExists);

  Bus bus;
  REQUIRE(mmsb::replay::restore(*ix, e, bus).ok());
  REQUIRE(bus.page_count() == want.pages.size());
  for (uint32_t p = 0; p < want.pages.size(); ++p) {
    INFO("page " << p);
    CHECK(model::first_mismatch(bus.page_bytes(p), want.pages[p].bytes) == -1);
    CHECK(bus.info(p)->name == want.pages[p].name);
  }
  CHECK(mmsb::replay::restore(*ix, e, bus).code() == Code::kFailedPrecondition);
}

TEST_CASE("compare: page names in summaries are escaped, so a quote in a name cannot end it", "[replay]") {
  // Two runs that create their second page after one delta, with other
  // sizes and names holding a quote, a backslash and a newline.
  auto run = [](const fs::path& dir, uint64_t size, const std::string& name) {
    Bus bus;
    const mmsb::PageId first = bus.create_page(8).value();
    auto started = Recorder::start(bus, dir, small_options());
    REQUIRE(started.ok());
    const std::byte one[1] = {std::byte{1}}, two[1] = {std::byte{2}};
    REQUIRE(bus.write(first, 0, one).ok());
    REQUIRE(bus.create_page(size, name).ok());
    REQUIRE(bus.write(first, 1, two).ok());
    REQUIRE((*started)->stop().ok());
  };
  TempDir a("replay-names-a"), b("replay-names-b");
  run(a.path, 8, "a'b");
  run(b.path, 16, "c\\d'\n");
  auto ra = open_rec(a.path), rb = open_rec(b.path);
  auto ia = build(*ra), ib = build(*rb);
  auto r = mmsb::replay::compare(*ia, *ib, {});
  REQUIRE(r.ok());
  INFO(r->summary);
  CHECK(r->outcome == CompareReport::Outcome::kDiverged);
  CHECK(r->page == 1);
  CHECK(r->page_name == "a'b");  // the field holds the name as it is
  CHECK(r->summary.find(": page 1 'a\\x27b' is created with size 8 in A and 16 in B (named 'c\\x5cd\\x27\\x0a')") !=
        std::string::npos);
}

TEST_CASE("compare: deltas that differ but leave equal states are not a divergence", "[replay]") {
  // Both runs rewrite bytes of page 3 with the values they hold (so the
  // states stay equal) at steps 100 and 300, but over other ranges: the
  // deltas differ there and nowhere else until step 500, where one byte
  // of page 5 is 0x41 in A and 0x42 in B (if `diverge`).
  auto run = [](Full& f, bool b_side, bool diverge, Epoch* at, Epoch* rewrite) {
    record_full(f, 0x1d08, 700, small_options(), [=](int step, Workload& w) {
      const std::vector<uint8_t> cur = w.m.pages[3].bytes;
      if (step == 100 || step == 300) {
        const uint64_t off = step == 100 ? 10 : 2000;
        if (b_side) w.write(3, off + 1, {cur[off + 1]});
        else w.write(3, off, {cur[off], cur[off + 1], cur[off + 2]});
        if (step == 100) *rewrite = w.m.epoch;
      }
      if (step == 500) {
        w.write(5, 7, {static_cast<uint8_t>(b_side && diverge ? 0x42 : 0x41)});
        *at = w.m.epoch;
      }
    });
  };
  Full a, b, c;
  Epoch at_a = 0, at_b = 0, at_c = 0, rw_a = 0, rw_b = 0, rw_c = 0;
  run(a, false, false, &at_a, &rw_a);
  run(b, true, false, &at_b, &rw_b);
  run(c, true, true, &at_c, &rw_c);
  REQUIRE(at_a == at_b);
  REQUIRE(at_a == at_c);
  REQUIRE(rw_a == rw_b);
  REQUIRE(a.last == b.last);
  // The model: A's and B's states are equal after every epoch.
  for (Epoch e = 0; e <= a.last; ++e) {
    REQUIRE(a.saved.at(e).pages.size() == b.saved.at(e).pages.size());
    for (size_t p = 0; p < a.saved.at(e).pages.size(); ++p)
      REQUIRE(a.saved.at(e).pages[p].bytes == b.saved.at(e).pages[p].bytes);
  }
  auto ra = open_rec(a.dir.path), rb = open_rec(b.dir.path), rc = open_rec(c.dir.path);
  // Without checkpoints too (as mmsb-replay builds them): the views walk
  // forward from the start state over the epochs they skipped.
  for (uint64_t checkpoint_bytes : {uint64_t{0}, uint64_t{512} << 20}) {
    IndexOptions opt;
    opt.checkpoint_bytes = checkpoint_bytes;
    auto ia = build(*ra, opt), ib = build(*rb, opt), ic = build(*rc, opt);
    // The deltas really differ at the rewrite: 3 bytes at 10 in A, 1 at 11 in B.
    REQUIRE(ia->delta(rw_a)->ranges.size() == 1);
    REQUIRE(ib->delta(rw_b)->ranges.size() == 1);
    CHECK(ia->delta(rw_a)->ranges[0].offset == 10);
    CHECK(ib->delta(rw_b)->ranges[0].offset == 11);
    auto same = mmsb::replay::compare(*ia, *ib, {});
    REQUIRE(same.ok());
    INFO(same->summary);
    CHECK(same->outcome == CompareReport::Outcome::kIdentical);
    CHECK(same->epochs_compared == a.last);
    auto div = mmsb::replay::compare(*ia, *ic, {});
    REQUIRE(div.ok());
    INFO(div->summary);
    REQUIRE(div->outcome == CompareReport::Outcome::kDiverged);
    CHECK(div->epoch == at_a);
    CHECK(div->page == 5);
    REQUIRE(div->ranges.size() == 1);
    CHECK(div->ranges[0].offset == 7);
    CHECK(div->ranges[0].length == 1);
    CHECK(static_cast<uint8_t>(div->a_bytes[0]) == 0x41);
    CHECK(static_cast<uint8_t>(div->b_bytes[0]) == 0x42);
  }
}

TEST_CASE("compare: other pages that differ are listed -- ignores naming nothing are errors", "[replay]") {
  // At step 400 run A writes byte 1234 of page 3 and run B byte 7 of page
  // 5: the first divergence may show on both pages at once.
  Epoch at_a = 0, at_b = 0;
  auto tamper = [](bool b_side, Epoch* at) {
    return [b_side, at](int step, Workload& w) {
      if (step != 400) return;
      if (b_side) w.write(5, 7, {0x42});
      else w.write(3, 1234, {0x41});
      *at = w.m.epoch;
    };
  };
  Full a, b;
  record_full(a, 0x1d0e, 700, small_options(), tamper(false, &at_a));
  record_full(b, 0x1d0e, 700, small_options(), tamper(true, &at_b));
  REQUIRE(at_a == at_b);
  // The model's answer: the pages whose bytes differ after an epoch.
  auto differing = [](const Full& x, const Full& y, Epoch ex, Epoch ey) {
    std::vector<mmsb::PageId> out;
    const auto &px = x.saved.at(ex).pages, &py = y.saved.at(ey).pages;
    for (size_t p = 0; p < std::min(px.size(), py.size()); ++p)
      if (px[p].bytes != py[p].bytes) out.push_back(static_cast<mmsb::PageId>(p));
    return out;
  };
  auto ra = open_rec(a.dir.path), rb = open_rec(b.dir.path);
  auto ia = build(*ra), ib = build(*rb);

  const std::vector<mmsb::PageId> want = differing(a, b, at_a, at_b);
  REQUIRE(!want.empty());
  auto div = mmsb::replay::compare(*ia, *ib, {});
  REQUIRE(div.ok());
  INFO(div->summary);
  REQUIRE(div->outcome == CompareReport::Outcome::kDiverged);
  CHECK(div->epoch == at_a);
  CHECK(div->page == want.front());
  CHECK(div->also_differ == std::vector<mmsb::PageId>(want.begin() + 1, want.end()));
  if (want.size() > 1) CHECK(div->summary.find("page 5 differs too") != std::string::npos);

  // Final states: every differing page, the first reported, the rest listed.
  REQUIRE(a.saved.at(a.last).pages.size() == b.saved.at(b.last).pages.size());
  const std::vector<mmsb::PageId> want_final = differing(a, b, a.last, b.last);
  CompareOptions fin;
  fin.final_only = true;
  auto f = mmsb::replay::compare(*ia, *ib, fin);
  REQUIRE(f.ok());
  INFO(f->summary);
  if (want_final.empty()) {
    CHECK(f->outcome == CompareReport::Outcome::kIdentical);
  } else {
    CHECK(f->page == want_final.front());
    CHECK(f->also_differ == std::vector<mmsb::PageId>(want_final.begin() + 1, want_final.end()));
  }

  // Ignores that name nothing: errors naming them, nothing compared.
  auto fails_with = [&](const CompareOptions& o, const std::string& text) {
    auto r = mmsb::replay::compare(*ia, *ib, o);
    REQUIRE_FALSE(r.ok());
    INFO(r.status().to_string());
    CHECK(r.status().code() == mmsb::Code::kInvalidArgument);
    CHECK(r.status().message().find(text) != std::string::npos);
  };
  CompareOptions o1;
  o1.ignore_pages = {"nosuch"};
  fails_with(o1, "'nosuch'");
  CompareOptions o2;
  o2.ignore_pages = {"99999999999999999999999"};  // digits, but no page id
  fails_with(o2, "'99999999999999999999999'");
  CompareOptions o3;
  o3.ignore_ranges = {mmsb::replay::ByteRange{3, 5000, 1}};  // page 3 has 4095 bytes
  fails_with(o3, "offset 5000 is past the end of page 3 (4095 bytes)");
  CompareOptions o4;
  o4.ignore_ranges = {mmsb::replay::ByteRange{1000000, 0, 1}};
  fails_with(o4, "page 1000000");
  // A name and a range that exist are fine.
  CompareOptions ok;
  ok.ignore_pages = {"hundred", "5"};
  ok.ignore_ranges = {mmsb::replay::ByteRange{3, 1234, 1}};
  auto hidden = mmsb::replay::compare(*ia, *ib, ok);
  REQUIRE(hidden.ok());
  CHECK((hidden->outcome != CompareReport::Outcome::kDiverged || hidden->epoch > at_a));
}

TEST_CASE("index: a large page written in a few places reads back right, with and without checkpoints", "[replay]") {
  // 16 MiB page 'big' and a small page; writes far apart in the big page,
  // and overlapping ones at its end. The model is the two pages as plain byte arrays, saved
  // after every epoch.
  TempDir dir("replay-big-page");
  constexpr uint64_t kBig = uint64_t{16} << 20;
  std::vector<std::vector<uint8_t>> big_at{std::vector<uint8_t>(kBig, 0)}, small_at{std::vector<uint8_t>(64, 0)};
  {
    Bus bus;
    const mmsb::PageId big = bus.create_page(kBig, "big").value();
    const mmsb::PageId small = bus.create_page(64, "small").value();
    RecorderOptions opt = small_options();
    opt.snapshot_every_deltas = 0;
    auto started = Recorder::start(bus, dir.path, opt);
    REQUIRE(started.ok());
    model::Rng rng(0xb16);
    for (int i = 0; i < 40; ++i) {
      std::vector<uint8_t> big_now = big_at.back(), small_now = small_at.back();
      const bool to_big = i % 3 != 2;
      const uint64_t size = to_big ? kBig : 64;
      const uint64_t len = rng.between(1, 24);
      // The first and last bytes, then anywhere, or (every other write)
      // within the last 64 bytes, where writes overlap.
      const uint64_t off = i == 0   ? 0
                           : i == 1 ? kBig - len
                           : to_big && i % 2 == 1 ? kBig - 64 + rng.below(64 - len + 1)
                                                  : rng.below(size - len + 1);
      std::vector<uint8_t> v(len);
      for (auto& b : v) b = rng.byte();
      REQUIRE(bus.write(to_big ? big : small, off, model::to_bytes(v)).ok());
      std::copy(v.begin(), v.end(), (to_big ? big_now : small_now).begin() + static_cast<std::ptrdiff_t>(off));
      big_at.push_back(std::move(big_now));
      small_at.push_back(std::move(small_now));
    }
    REQUIRE((*started)->stop().ok());
  }
  auto rec = open_rec(dir.path);
  for (uint64_t checkpoint_bytes : {uint64_t{0}, uint64_t{512} << 20}) {
    IndexOptions opt;
    opt.checkpoint_bytes = checkpoint_bytes;
    opt.min_checkpoint_interval = 8;
    auto ix = build(*rec, opt);
    REQUIRE(ix->last_epoch() == 40);
    INFO("checkpoint_bytes " << checkpoint_bytes << ", checkpoints " << ix->checkpoint_count());
    std::vector<std::byte> got;
    for (Epoch e = 0; e <= 40; e += 5) {
      REQUIRE(ix->page_at(0, e, &got).ok());
      CHECK(got == model::to_bytes(big_at[e]));
    }
    // Diffs both ways round, of neighbours and at random: exactly the
    // model's differing runs.
    model::Rng rng(0xd1ff);
    for (int i = 0; i < 110; ++i) {
      const Epoch a = i < 80 ? static_cast<Epoch>(i / 2) + (i % 2) : rng.below(41);
      const Epoch b = i < 80 ? static_cast<Epoch>(i / 2) + 1 - (i % 2) : rng.below(41);
      auto d = ix->diff_page(0, a, b);
      REQUIRE(d.ok());
      const std::vector<model::Run> want = model::diff_runs(big_at[a], big_at[b]);
      REQUIRE(d->ranges.size() == want.size());
      size_t k = 0;
      for (size_t r = 0; r < want.size(); ++r) {
        CHECK(d->ranges[r].offset == want[r].offset);
        CHECK(d->ranges[r].length == want[r].length);
        for (uint64_t j = 0; j < want[r].length; ++j, ++k) {
          CHECK(static_cast<uint8_t>(d->old_bytes[k]) == big_at[a][want[r].offset + j]);
          CHECK(static_cast<uint8_t>(d->new_bytes[k]) == big_at[b][want[r].offset + j]);
        }
      }
    }
    // Windows of the big page: page_range at an epoch, and page_range_after
    // brought forward from the model's bytes at an earlier epoch (or, asked
    // to go back, read from a checkpoint). Across the end, where writes
    // overlap, and from the start.
    for (int i = 0; i < 200; ++i) {
      const uint64_t len = rng.between(1, 200);
      const uint64_t off = i % 2 ? kBig - len - rng.below(100) : rng.below(kBig - len + 1);
      const Epoch from = rng.below(41), to = i % 5 == 0 ? rng.below(41) : from + rng.below(41 - from);
      auto slice = [&](Epoch e) {
        return model::to_bytes(std::vector<uint8_t>(big_at[e].begin() + static_cast<std::ptrdiff_t>(off),
                                                    big_at[e].begin() + static_cast<std::ptrdiff_t>(off + len)));
      };
      INFO("bytes " << off << "+" << len << ", from " << from << " to " << to);
      REQUIRE(ix->page_range(0, to, off, len, &got).ok());
      CHECK(got == slice(to));
      const std::vector<std::byte> known = slice(from);
      REQUIRE(ix->page_range_after(0, from, known, to, off, &got).ok());
      CHECK(got == slice(to));
    }
    CHECK(ix->page_range(0, 40, kBig - 4, 5, &got).code() == mmsb::Code::kOutOfRange);
    CHECK(ix->page_range_after(0, 3, std::vector<std::byte>(5), 40, kBig - 4, &got).code() == mmsb::Code::kOutOfRange);
    // A StateView walking forward, then back.
    mmsb::replay::StateView view(*ix);
    for (Epoch e : {Epoch{3}, Epoch{17}, Epoch{40}, Epoch{9}, Epoch{0}}) {
      REQUIRE(view.seek(e).ok());
      const auto page = view.page(0);
      CHECK(std::equal(page.begin(), page.end(), model::to_bytes(big_at[e]).begin()));
      const auto sp = view.page(1);
      CHECK(std::equal(sp.begin(), sp.end(), model::to_bytes(small_at[e]).begin()));
    }
  }
}
