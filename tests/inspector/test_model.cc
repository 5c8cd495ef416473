// The inspector's view-model (inspector/model.h) against the hand-made
// fixture of fixture.h: cursor moves, next/previous change, the highlight,
// byte history, diff, propagation, the density strip and the timeline's
// zoom arithmetic. No display needed.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "../engine_model.h"
#include "fixture.h"
#include "model.h"

namespace fs = std::filesystem;
using mmsb::Epoch;
using mmsb::kNoPage;
using mmsb::inspector::Density;
using mmsb::inspector::kAgeCurrent;
using mmsb::inspector::kAgeNone;
using mmsb::inspector::kAgeUnchanged;
using mmsb::inspector::load_recording;
using mmsb::inspector::Model;
using mmsb::inspector::TimelineView;
using model::TempDir;

namespace {

// The fixture, recorded once per test case, opened into a Model.
struct Opened {
  TempDir dir{"inspector-model"};
  Model m;
  Opened() {
    const std::string err = fixture::make_recording(dir.path);
    REQUIRE(err.empty());
    auto l = load_recording(dir.path);
    INFO(l.error.to_string());
    REQUIRE(l.error.ok());
    REQUIRE(l.index);
    m.adopt(std::move(l));
    REQUIRE(m.loaded());
  }
};

std::vector<uint8_t> u8(std::span<const std::byte> b) {
  std::vector<uint8_t> v(b.size());
  std::memcpy(v.data(), b.data(), b.size());
  return v;
}

// The ages of `page` at `epoch` as the model computes them.
std::vector<int16_t> ages(Model& m, mmsb::PageId page, Epoch epoch) {
  m.select_page(page);
  m.seek(epoch);
  const auto h = m.highlight();
  return {h.begin(), h.end()};
}

}  // namespace

TEST_CASE("inspector model: opening puts the cursor on the last epoch", "[inspector]") {
  Opened o;
  Model& m = o.m;
  CHECK(m.first_epoch() == 0);
  CHECK(m.last_epoch() == fixture::kLast);
  CHECK(m.cursor() == fixture::kLast);
  CHECK(m.page_count() == 5);
  CHECK(m.selected_page() == fixture::kLate);  // the page of the delta at the cursor
  CHECK(m.damage().ok());
  CHECK(m.find_page("alpha") == std::optional<mmsb::PageId>(fixture::kAlpha));
  CHECK(m.find_page("#2") == std::optional<mmsb::PageId>(fixture::kGamma));
  CHECK(m.find_page("3") == std::optional<mmsb::PageId>(fixture::kOmega));
  CHECK_FALSE(m.find_page("9"));
  CHECK_FALSE(m.find_page("zeta"));
  CHECK(m.page_label(fixture::kBeta) == "'beta'");
}

TEST_CASE("inspector model: the cursor is clamped and steps saturate", "[inspector]") {
  Opened o;
  Model& m = o.m;
  m.seek(1000);
  CHECK(m.cursor() == fixture::kLast);
  m.step(-3);
  CHECK(m.cursor() == 12);
  m.step(-100);
  CHECK(m.cursor() == 0);
  CHECK_FALSE(m.cursor_delta());  // epoch 0 is the start state
  m.step(5);
  CHECK(m.cursor() == 5);
  REQUIRE(m.cursor_delta());
  CHECK(m.cursor_delta()->page == fixture::kAlpha);
  const uint64_t g = m.cursor_generation();
  m.seek(5);
  CHECK(m.cursor_generation() == g);  // no move, no invalidation
  m.step(INT64_MAX);
  CHECK(m.cursor() == fixture::kLast);
  m.step(INT64_MIN);
  CHECK(m.cursor() == 0);
}

// Bytes [b, e) of a vector.
template <class T>
std::vector<T> slice(const std::vector<T>& v, size_t b, size_t e) {
  return {v.begin() + static_cast<ptrdiff_t>(b), v.begin() + static_cast<ptrdiff_t>(e)};
}

TEST_CASE("inspector model: a page larger than the window is shown a window at a time", "[inspector]") {
  Opened o;
  Model& m = o.m;
  CHECK(m.window_bytes() == Model::kWindowBytes);
  m.set_window_bytes(32);
  m.select_page(fixture::kAlpha);  // 64 bytes
  m.seek(5);
  // At first the page's start. Epoch 5 wrote [16,20) and [40,42); epoch 1 [0,4).
  CHECK(m.window_offset() == 0);
  CHECK(u8(m.page_bytes()) == slice(fixture::alpha_at(5), 0, 32));
  auto h = std::vector<int16_t>(m.highlight().begin(), m.highlight().end());
  REQUIRE(h.size() == 32);
  for (int i = 0; i < 32; ++i) {
    INFO("byte " << i);
    CHECK(h[i] == (i >= 16 && i < 20 ? kAgeCurrent : i < 4 ? 1 : kAgeNone));
  }
  // Bytes past the window: it moves a quarter before them, kept inside the
  // page (so [32, 64) here), and bytes and ages follow.
  m.show_bytes(40, 42);
  CHECK(m.window_offset() == 32);
  CHECK(u8(m.page_bytes()) == slice(fixture::alpha_at(5), 32, 64));
  h.assign(m.highlight().begin(), m.highlight().end());
  REQUIRE(h.size() == 32);
  for (int i = 0; i < 32; ++i) {
    INFO("byte " << 32 + i);
    CHECK(h[i] == (i == 8 || i == 9 ? kAgeCurrent : kAgeNone));
  }
  // Bytes in the window: it stays.
  m.show_bytes(50, 60);
  CHECK(m.window_offset() == 32);
  // The cursor moves; the window stays where it is. Epoch 12 wrote [60,64):
  // the bytes before it are epoch 11's, in the same window.
  m.seek(12);
  CHECK(m.window_offset() == 32);
  CHECK(u8(m.page_bytes()) == slice(fixture::alpha_at(12), 32, 64));
  CHECK(u8(m.page_bytes_before()) == slice(fixture::alpha_at(11), 32, 64));
  CHECK(m.highlight()[28] == kAgeCurrent);
  CHECK(m.highlight()[8] == 2);  // epoch 5's write, two of alpha's writes back
  // One step on (gamma's delta): alpha's window is read again, right.
  m.step(1);
  CHECK(u8(m.page_bytes()) == slice(fixture::alpha_at(13), 32, 64));
  CHECK(m.page_bytes_before().empty());
  m.show_bytes(0, 1);
  CHECK(m.window_offset() == 0);
  CHECK(u8(m.page_bytes()) == slice(fixture::alpha_at(13), 0, 32));
  // Scrubbing (each window is read, or brought forward from the last one):
  // every epoch forward, back, and in jumps, in both halves.
  for (uint64_t at : {uint64_t{0}, uint64_t{40}}) {
    m.show_bytes(at, at + 1);
    const uint64_t base = m.window_offset();
    std::vector<Epoch> path;
    for (Epoch e = 0; e <= fixture::kLast; ++e) path.push_back(e);
    for (Epoch e = fixture::kLast + 1; e-- > 0;) path.push_back(e);
    for (Epoch e : {Epoch{2}, Epoch{9}, Epoch{4}, Epoch{15}, Epoch{5}, Epoch{12}}) path.push_back(e);
    for (Epoch e : path) {
      m.seek(e);
      INFO("window at " << base << ", epoch " << e);
      REQUIRE(m.window_offset() == base);
      CHECK(u8(m.page_bytes()) == slice(fixture::alpha_at(e), base, base + 32));
    }
  }
  // A window that ends the page takes its last bytes (16-aligned start):
  // 40 bytes from byte 50 would start at 48 and pass the end; it starts at
  // 16 and holds the 48 bytes to the end.
  m.set_window_bytes(40);
  m.show_bytes(60, 61);
  CHECK(m.window_offset() == 16);
  CHECK(u8(m.page_bytes()) == slice(fixture::alpha_at(13), 16, 64));
  CHECK(m.highlight().size() == 48);
  m.show_bytes(1000, 2000);  // past the end: clamped, no crash
  CHECK(u8(m.page_bytes()) == slice(fixture::alpha_at(13), 16, 64));
  // A new page opens at its start; a page that fits the window is whole.
  m.select_page(fixture::kBeta);
  CHECK(m.window_offset() == 0);
  CHECK(m.page_bytes().size() == 32);
  m.select_page(fixture::kAlpha);
  CHECK(m.window_offset() == 0);
  m.set_window_bytes(64);
  m.show_bytes(60, 61);
  CHECK(m.window_offset() == 0);
  CHECK(u8(m.page_bytes()) == fixture::alpha_at(13));
}

TEST_CASE("inspector model: page bytes and versions at the cursor", "[inspector]") {
  Opened o;
  Model& m = o.m;
  m.select_page(fixture::kAlpha);
  for (Epoch e = 0; e <= fixture::kLast; ++e) {
    m.seek(e);
    INFO("epoch " << e);
    CHECK(u8(m.page_bytes()) == fixture::alpha_at(e));
    CHECK(m.page_error().empty());
  }
  CHECK(m.version_at(fixture::kAlpha, 4) == 1);
  CHECK(m.version_at(fixture::kAlpha, 5) == 2);
  CHECK(m.version_at(fixture::kAlpha, fixture::kLast) == 4);
  CHECK(m.page_changes(fixture::kAlpha) == 4);
  CHECK(m.page_changes(fixture::kOmega) == 4);

  // 'late' exists from epoch 14 on.
  m.select_page(fixture::kLate);
  m.seek(13);
  CHECK(m.page_bytes().empty());
  CHECK(m.page_error().find("does not exist at epoch 13") != std::string::npos);
  CHECK_FALSE(m.page_exists_at(fixture::kLate, 13));
  CHECK(m.page_exists_at(fixture::kLate, fixture::kLateCreated));
  m.seek(fixture::kLast);
  CHECK(u8(m.page_bytes()) == std::vector<uint8_t>{0xab, 0xcd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  m.select_page(kNoPage);
  CHECK(m.page_bytes().empty());
  CHECK(m.page_error() == "no page selected");
}

TEST_CASE("inspector model: next and previous change of a page and a byte", "[inspector]") {
  Opened o;
  Model& m = o.m;
  m.select_page(fixture::kAlpha);
  m.seek(5);
  CHECK(m.next_page_change() == std::optional<Epoch>(9));
  CHECK(m.prev_page_change() == std::optional<Epoch>(1));
  m.seek(12);
  CHECK_FALSE(m.next_page_change());
  m.seek(0);
  CHECK_FALSE(m.prev_page_change());
  CHECK(m.next_page_change() == std::optional<Epoch>(1));

  // Byte 2 was written at epochs 1 ('C') and 9 ('c'); byte 17 only at 5.
  CHECK(m.next_byte_write(fixture::kAlpha, 2, 1).epoch == std::optional<Epoch>(9));
  CHECK(m.next_byte_write(fixture::kAlpha, 2, 0).epoch == std::optional<Epoch>(1));
  CHECK_FALSE(m.next_byte_write(fixture::kAlpha, 2, 9).epoch);
  CHECK_FALSE(m.next_byte_write(fixture::kAlpha, 2, 9).stopped);
  CHECK(m.prev_byte_write(fixture::kAlpha, 2, 9).epoch == std::optional<Epoch>(1));
  CHECK_FALSE(m.prev_byte_write(fixture::kAlpha, 2, 1).epoch);
  CHECK_FALSE(m.prev_byte_write(fixture::kAlpha, 2, 1).stopped);
  CHECK_FALSE(m.next_byte_write(fixture::kAlpha, 17, 5).epoch);
  CHECK_FALSE(m.next_byte_write(fixture::kAlpha, 30, 0).epoch);  // never written

  const auto h = m.byte_history(fixture::kAlpha, 2, fixture::kLast, 10).writes;
  REQUIRE(h.size() == 2);
  CHECK(h[0].epoch == 9);
  CHECK(h[0].version == 3);
  CHECK(h[0].value == std::byte{'c'});
  CHECK(h[1].epoch == 1);
  CHECK(h[1].version == 1);
  CHECK(h[1].value == std::byte{'C'});
  CHECK(m.byte_history(fixture::kAlpha, 2, 8, 10).writes.size() == 1);
  CHECK(m.byte_history(fixture::kAlpha, 30, fixture::kLast, 10).writes.empty());
  CHECK_FALSE(m.byte_history(fixture::kAlpha, 30, fixture::kLast, 10).stopped);
  CHECK(m.byte_history(fixture::kAlpha, 2, fixture::kLast, 1).writes.size() == 1);
  CHECK(m.byte_history(fixture::kAlpha, 2, 1, 10).next.epoch == std::optional<Epoch>(9));
}

// Alpha's deltas are at epochs 1, 5, 9 and 12; byte 0 was written only at 1,
// byte 60 only at 12.
TEST_CASE("inspector model: byte searches look at a bounded number of the page's deltas", "[inspector]") {
  Opened o;
  Model& m = o.m;
  // Backwards from 15 over 2 deltas: 12 and 9; byte 0's write at 1 is out of reach.
  const auto& h2 = m.byte_history(fixture::kAlpha, 0, fixture::kLast, 10, 2);
  CHECK(h2.writes.empty());
  CHECK(h2.stopped);
  CHECK(h2.looked == 2);
  CHECK(h2.looked_back_to == 9);
  // Over 4 deltas it is found, and the walk ends at the start of the history.
  const auto& h4 = m.byte_history(fixture::kAlpha, 0, fixture::kLast, 10, 4);
  REQUIRE(h4.writes.size() == 1);
  CHECK(h4.writes[0].epoch == 1);
  CHECK(h4.writes[0].value == std::byte{'A'});
  CHECK_FALSE(h4.stopped);
  // Forwards from 0 over 3 deltas (1, 5, 9): byte 60's write at 12 is out of reach.
  CHECK_FALSE(m.next_byte_write(fixture::kAlpha, 60, 0, 3).epoch);
  CHECK(m.next_byte_write(fixture::kAlpha, 60, 0, 3).stopped);
  CHECK(m.next_byte_write(fixture::kAlpha, 60, 0, 4).epoch == std::optional<Epoch>(12));
  CHECK(m.byte_history(fixture::kAlpha, 60, 0, 10, 3).next.stopped);
  // The "< byte write" search: the same bound, and it says when it stopped.
  CHECK_FALSE(m.prev_byte_write(fixture::kAlpha, 0, fixture::kLast, 2).epoch);
  CHECK(m.prev_byte_write(fixture::kAlpha, 0, fixture::kLast, 2).stopped);
  CHECK(m.prev_byte_write(fixture::kAlpha, 0, fixture::kLast, 4).epoch == std::optional<Epoch>(1));
  CHECK_FALSE(m.prev_byte_write(fixture::kAlpha, 0, fixture::kLast, 4).stopped);
  CHECK_FALSE(m.prev_byte_write(fixture::kAlpha, 0, 1, 2).stopped);  // nothing before epoch 1 at all
}

TEST_CASE("inspector model: a byte's history is computed once per byte and cursor", "[inspector]") {
  Opened o;
  Model& m = o.m;
  // From 15 backwards, byte 0 of alpha: all 4 of alpha's deltas are examined.
  (void)m.byte_history(fixture::kAlpha, 0, fixture::kLast, 10);
  const uint64_t once = m.history_deltas_examined();
  CHECK(once == 4);
  for (int frame = 0; frame < 100; ++frame) (void)m.byte_history(fixture::kAlpha, 0, fixture::kLast, 10);
  CHECK(m.history_deltas_examined() == once);
  // Another cursor (13: 12, 9, 5, 1) or another byte asks again.
  (void)m.byte_history(fixture::kAlpha, 0, 13, 10);
  CHECK(m.history_deltas_examined() == 2 * once);
  CHECK(m.byte_history(fixture::kAlpha, 2, 13, 10).writes.size() == 2);
}

TEST_CASE("inspector model: the highlight marks the cursor's delta and fades earlier writes", "[inspector]") {
  Opened o;
  Model& m = o.m;
  // Epoch 5 wrote alpha [16,20) and [40,42); epoch 1 wrote [0,4) before it.
  auto a = ages(m, fixture::kAlpha, 5);
  REQUIRE(a.size() == 64);
  for (int i = 0; i < 64; ++i) {
    INFO("byte " << i);
    if ((i >= 16 && i < 20) || i == 40 || i == 41) CHECK(a[i] == kAgeCurrent);
    else if (i < 4) CHECK(a[i] == 1);
    else CHECK(a[i] == kAgeNone);
  }
  // Epoch 6 is gamma's: alpha's newest write (5) is age 1, epoch 1's age 2.
  a = ages(m, fixture::kAlpha, 6);
  CHECK(a[16] == 1);
  CHECK(a[0] == 2);
  CHECK(a[30] == kAgeNone);
  // Epoch 9 rewrote byte 2: current; bytes 0, 1, 3 keep epoch 1's age (2).
  a = ages(m, fixture::kAlpha, 9);
  CHECK(a[2] == kAgeCurrent);
  CHECK(a[0] == 2);
  CHECK(a[3] == 2);
  CHECK(a[17] == 1);
  // Fading over one write: only the newest earlier write keeps a colour.
  m.set_fade(1);
  a = ages(m, fixture::kAlpha, 9);
  CHECK(a[2] == kAgeCurrent);
  CHECK(a[17] == 1);
  CHECK(a[0] == kAgeNone);
  m.set_fade(8);
  // Before any write: nothing.
  a = ages(m, fixture::kAlpha, 0);
  for (int16_t x : a) CHECK(x == kAgeNone);
  // A derived page: omega at 7 is current at byte 0 only.
  a = ages(m, fixture::kOmega, 7);
  REQUIRE(a.size() == 4);
  CHECK(a[0] == kAgeCurrent);
  CHECK(a[1] == kAgeNone);
}

TEST_CASE("inspector model: diff of two epochs", "[inspector]") {
  Opened o;
  Model& m = o.m;
  m.set_diff(1, 9);
  const auto& d = m.diff();
  CHECK(m.diff_error().empty());
  REQUIRE(d.size() == 4);  // alpha, beta, gamma, omega
  CHECK(d[0].page == fixture::kAlpha);
  CHECK(d[0].ranges == std::vector<mmsb::Range>{{2, 1}, {16, 4}, {40, 2}});
  CHECK(d[1].page == fixture::kBeta);
  CHECK(d[1].ranges == std::vector<mmsb::Range>{{0, 1}, {10, 2}});
  CHECK(d[2].page == fixture::kGamma);
  CHECK(d[3].page == fixture::kOmega);
  m.select_page(fixture::kBeta);
  REQUIRE(m.selected_diff());
  CHECK(m.selected_diff()->page == fixture::kBeta);
  m.select_page(fixture::kLate);
  CHECK_FALSE(m.selected_diff());
  // A page created between A and B.
  m.set_diff(12, fixture::kLast);
  bool late = false;
  for (const auto& p : m.diff())
    if (p.page == fixture::kLate) late = p.created;
  CHECK(late);
  // Clamped, and the same both ways round.
  m.set_diff(1000, 0);
  CHECK(m.diff_a() == fixture::kLast);
  CHECK(m.diff_b() == 0);
  CHECK(m.diff().size() == 5);
}

// The ranges where two byte vectors differ (the test's own, not replay's).
std::vector<mmsb::Range> differing(const std::vector<uint8_t>& x, const std::vector<uint8_t>& y) {
  std::vector<mmsb::Range> out;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == y[i]) continue;
    if (!out.empty() && out.back().end() == i) ++out.back().length;
    else out.push_back(mmsb::Range{static_cast<uint32_t>(i), 1});
  }
  return out;
}

TEST_CASE("inspector model: a diff over many bytes is computed in the background", "[inspector]") {
  Opened o;
  Model& m = o.m;
  m.set_diff_sync_limit(0);  // every diff in the background, as for a 64 MiB state
  m.set_diff(4, 12);
  CHECK(m.diff().empty());  // handed to the worker, not answered yet
  CHECK(m.diff_pending());
  CHECK_FALSE(m.selected_diff());
  m.wait_diff();
  CHECK_FALSE(m.diff_pending());
  const auto& d = m.diff();
  CHECK(m.diff_error().empty());
  // Between epochs 4 and 12 (fixture.h): alpha at 5, 9, 12; beta's byte 0 at
  // 8 (bytes 10 and 11 rewritten with their values); gamma's sum 266 -> 691
  // (0x10a -> 0x2b3: bytes 0 and 1); omega's byte 0. 'late' comes at 14.
  REQUIRE(d.size() == 4);
  const auto a4 = fixture::alpha_at(4), a12 = fixture::alpha_at(12);
  CHECK(d[0].page == fixture::kAlpha);
  CHECK(d[0].ranges == differing(a4, a12));
  CHECK(d[0].ranges == std::vector<mmsb::Range>{{2, 1}, {16, 4}, {40, 2}, {60, 4}});
  CHECK(u8(d[0].old_bytes) == std::vector<uint8_t>{'C', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  CHECK(u8(d[0].new_bytes) == std::vector<uint8_t>{'c', 'W', 'X', 'Y', 'Z', 1, 2, 9, 9, 9, 9});
  CHECK(d[1].page == fixture::kBeta);
  CHECK(d[1].ranges == std::vector<mmsb::Range>{{0, 1}});
  CHECK(d[2].page == fixture::kGamma);
  CHECK(d[2].ranges == std::vector<mmsb::Range>{{0, 2}});
  CHECK(d[3].page == fixture::kOmega);
  CHECK(d[3].ranges == std::vector<mmsb::Range>{{0, 1}});
  CHECK(m.diff_bytes() == 11 + 1 + 2 + 1);
  m.select_page(fixture::kBeta);
  REQUIRE(m.selected_diff());
  CHECK(m.selected_diff()->page == fixture::kBeta);
  // The same pair again is not recomputed.
  m.set_diff(4, 12);
  CHECK_FALSE(m.diff_pending());
  CHECK(m.diff().size() == 4);
}

TEST_CASE("inspector model: a diff superseded by a newer pair is never shown", "[inspector]") {
  Opened o;
  Model& m = o.m;
  m.set_diff_sync_limit(0);
  m.set_diff(1, 4);  // alpha, beta, gamma, omega differ
  (void)m.diff();
  REQUIRE(m.diff_pending());
  // Let the older answer arrive first, then ask for another pair.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  m.set_diff(12, fixture::kLast);  // gamma (655 -> 691: byte 0), omega, and 'late' created at 14
  auto pages = [&] {
    std::vector<mmsb::PageId> v;
    for (const auto& p : m.diff()) v.push_back(p.page);
    return v;
  };
  const std::vector<mmsb::PageId> newer{fixture::kGamma, fixture::kOmega, fixture::kLate};
  CHECK(m.diff().empty());  // requested just now: pending for at least this call
  CHECK(m.diff_pending());
  // The older answer is here, and dropped: diff() shows nothing yet, or
  // (a fast worker) already the newer pair's answer -- never alpha, beta.
  const std::vector<mmsb::PageId> seen = pages();
  CHECK((seen.empty() || seen == newer));
  m.wait_diff();
  CHECK(pages() == newer);
  CHECK(m.diff()[0].ranges == std::vector<mmsb::Range>{{0, 1}});
  CHECK(m.diff()[2].created);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(pages() == newer);

  // Many pairs in a row (A/B typed digit by digit): only the last one counts.
  for (Epoch k = 0; k < 40; ++k) {
    m.set_diff(k % 13, fixture::kLast - k % 5);
    (void)m.diff();
  }
  m.set_diff(4, 12);
  m.wait_diff();
  CHECK(m.diff().size() == 4);
  CHECK(m.diff()[0].ranges == differing(fixture::alpha_at(4), fixture::alpha_at(12)));
}

TEST_CASE("inspector model: closing or destroying the model while a diff runs", "[inspector]") {
  {
    Opened o;
    o.m.set_diff_sync_limit(0);
    o.m.set_diff(0, fixture::kLast);
    (void)o.m.diff();
    CHECK(o.m.diff_pending());
  }  // destroyed with the job queued or running: it is joined, the Index outlives it
  Opened o;
  Model& m = o.m;
  m.set_diff_sync_limit(0);
  m.set_diff(0, fixture::kLast);
  (void)m.diff();
  m.close();
  CHECK_FALSE(m.diff_pending());
  CHECK(m.diff().empty());
  // Reopened: the new recording's diff, computed afresh.
  auto l = load_recording(o.dir.path);
  REQUIRE(l.error.ok());
  m.adopt(std::move(l));
  m.set_diff(1, 9);
  (void)m.diff();
  m.wait_diff();
  CHECK(m.diff().size() == 4);
}

TEST_CASE("inspector model: propagation tree and cause chain", "[inspector]") {
  Opened o;
  Model& m = o.m;
  CHECK(m.deps_from_root());  // the default: the whole propagation
  m.set_deps_from_root(false);
  m.seek(5);
  auto p = m.propagation();
  CHECK(p.epoch == 5);
  CHECK(p.chain == std::vector<Epoch>{5});
  CHECK(p.tree.epoch == 5);
  REQUIRE(p.tree.children.size() == 1);
  CHECK(p.tree.children[0].epoch == 6);
  REQUIRE(p.tree.children[0].children.size() == 1);
  CHECK(p.tree.children[0].children[0].epoch == 7);
  CHECK(p.tree_nodes == 3);

  m.seek(7);
  p = m.propagation();
  CHECK(p.chain == std::vector<Epoch>{5, 6, 7});
  CHECK(p.tree.epoch == 7);
  CHECK(p.tree.children.empty());
  m.set_deps_from_root(true);
  p = m.propagation();
  CHECK(p.tree.epoch == 5);
  CHECK(p.tree_nodes == 3);

  m.seek(0);
  CHECK(m.propagation().epoch == 0);
}

TEST_CASE("inspector model: playback advances at the chosen rate and stops at the end", "[inspector]") {
  Opened o;
  Model& m = o.m;
  m.seek(0);
  m.set_rate(10);
  m.set_playing(true);
  m.advance(0.25);  // 2.5 epochs: 2, half carried
  CHECK(m.cursor() == 2);
  m.advance(0.05);  // 0.5 + 0.5
  CHECK(m.cursor() == 3);
  for (int i = 0; i < 100 && m.playing(); ++i) m.advance(0.1);
  CHECK(m.cursor() == fixture::kLast);
  CHECK_FALSE(m.playing());
  m.set_playing(true);  // at the end: plays again from the start
  CHECK(m.cursor() == 0);
}

TEST_CASE("inspector model: density columns", "[inspector]") {
  Opened o;
  Model& m = o.m;
  // One column per epoch of the fixture: the bytes of each delta.
  std::vector<Density::Column> cols;
  m.density().query(*m.index(), 0.5, 15.5, 15, &cols);
  REQUIRE(cols.size() == 15);
  CHECK(cols[0].bytes_per_epoch == 4);   // epoch 1
  CHECK(cols[3].bytes_per_epoch == 2);   // epoch 4
  CHECK(cols[4].bytes_per_epoch == 6);   // epoch 5
  CHECK(cols[7].bytes_per_epoch == 3);   // epoch 8
  CHECK(cols[14].bytes_per_epoch == 2);  // epoch 15
  CHECK(cols[0].derived_fraction == 0);
  CHECK(cols[1].derived_fraction == 1);  // epoch 2, gamma
  CHECK(cols[2].derived_fraction == 1);  // epoch 3, omega

  // A longer recording through the pyramid: delta i writes (i % 7) + 1 bytes.
  TempDir dir("inspector-density");
  {
    mmsb::Bus bus;
    auto p = bus.create_page(256, "p");
    REQUIRE(p.ok());
    auto rec = mmsb::capture::Recorder::start(bus, dir.path);
    REQUIRE(rec.ok());
    std::vector<std::byte> buf(8);
    for (int i = 1; i <= 1000; ++i) {
      for (auto& b : buf) b = static_cast<std::byte>(i);
      REQUIRE(bus.write(*p, static_cast<uint64_t>(i % 200), std::span(buf.data(), static_cast<size_t>(i % 7) + 1)).ok());
    }
    REQUIRE((*rec)->stop().ok());
  }
  auto l = load_recording(dir.path);
  REQUIRE(l.error.ok());
  Model big;
  big.adopt(std::move(l));
  REQUIRE(big.last_epoch() == 1000);
  CHECK(big.density().bins() > 0);
  // 10 columns of 100 epochs: every delta counted once, the mean close to 4.
  big.density().query(*big.index(), 0.5, 1000.5, 10, &cols);
  uint64_t total = 0;
  for (const auto& c : cols) {
    total += c.epochs;
    CHECK(c.epochs > 0);
    CHECK(c.bytes_per_epoch > 3.5);
    CHECK(c.bytes_per_epoch < 4.5);
  }
  CHECK(total == 1000);
  // Between 1 and 16 epochs per column: read from the deltas themselves.
  big.density().query(*big.index(), 0.5, 80.5, 10, &cols);
  double sum = 0;
  for (int e = 1; e <= 8; ++e) sum += (e % 7) + 1;
  CHECK(cols[0].epochs == 8);
  CHECK(cols[0].bytes_per_epoch == Approx(sum / 8));
  // Zoomed in: two columns per epoch.
  big.density().query(*big.index(), 0.5, 10.5, 20, &cols);
  CHECK(cols[0].bytes_per_epoch == 2);  // epoch 1
  CHECK(cols[1].bytes_per_epoch == 2);
  CHECK(cols[2].bytes_per_epoch == 3);  // epoch 2
  // Outside the history: empty columns.
  big.density().query(*big.index(), 2000, 3000, 4, &cols);
  for (const auto& c : cols) CHECK(c.epochs == 0);
}

TEST_CASE("inspector model: timeline zoom, pan and the pixel mapping", "[inspector]") {
  TimelineView v;
  v.fit(0, 99);
  CHECK(v.lo == -0.5);
  CHECK(v.hi == 99.5);
  // Zooming keeps the anchor where it is on screen.
  const double x_before = v.x_of(30, 0, 1000);
  v.zoom(30, 0.5, 0, 99);
  CHECK(v.span() == Approx(50));
  CHECK(v.x_of(30, 0, 1000) == Approx(x_before));
  // Never narrower than kMinSpan, never wider than the history.
  for (int i = 0; i < 50; ++i) v.zoom(30, 0.5, 0, 99);
  CHECK(v.span() == Approx(TimelineView::kMinSpan));
  for (int i = 0; i < 50; ++i) v.zoom(30, 2, 0, 99);
  CHECK(v.span() == Approx(100));
  CHECK(v.lo == -0.5);
  // Panning stops at the ends.
  v.zoom(50, 0.1, 0, 99);
  v.pan(1000, 0, 99);
  CHECK(v.hi == 99.5);
  v.pan(-1000, 0, 99);
  CHECK(v.lo == -0.5);
  // Pixels to epochs: each epoch owns a slot; the ends are clamped.
  v.fit(0, 99);
  CHECK(v.epoch_at(0, 0, 1000, 0, 99) == 0);
  CHECK(v.epoch_at(999, 0, 1000, 0, 99) == 99);
  CHECK(v.epoch_at(-50, 0, 1000, 0, 99) == 0);
  CHECK(v.epoch_at(5000, 0, 1000, 0, 99) == 99);
  for (Epoch e : {Epoch{0}, Epoch{1}, Epoch{42}, Epoch{99}})
    CHECK(v.epoch_at(v.x_of(static_cast<double>(e), 0, 1000), 0, 1000, 0, 99) == e);
  // follow() moves the view just enough.
  v.zoom(10, 0.1, 0, 99);
  v.follow(80, 0, 99);
  CHECK(v.hi == Approx(80.5));
  CHECK(v.span() == Approx(10));
  // A history shorter than kMinSpan.
  v.fit(3, 4);
  CHECK(v.span() == Approx(2));
  v.zoom(3, 0.1, 3, 4);
  CHECK(v.span() == Approx(2));
}

TEST_CASE("inspector model: damaged and foreign recordings give messages, never crashes", "[inspector]") {
  // Missing directory, and one that holds no recording.
  auto l = load_recording("/nonexistent/mmsb-inspector-test");
  CHECK_FALSE(l.error.ok());
  CHECK(l.stage == "open");
  CHECK(l.error.message().find("nonexistent") != std::string::npos);
  TempDir junk("inspector-junk", /*create=*/true);
  {
    std::ofstream f(junk.path / "seg-000000.tlog", std::ios::binary);
    f << std::string(1000, 'x');
  }
  l = load_recording(junk.path);
  CHECK_FALSE(l.error.ok());
  Model m;
  m.adopt(std::move(l));  // refused: nothing loaded
  CHECK_FALSE(m.loaded());
  CHECK(m.page_bytes().empty());
  CHECK(m.diff().empty());
  CHECK(m.propagation().epoch == 0);

  // Truncations and bit flips of the fixture's segment: whatever opens must
  // answer every query at every epoch.
  TempDir good("inspector-good");
  REQUIRE(fixture::make_recording(good.path).empty());
  const fs::path seg = good.path / "seg-000000.tlog";
  REQUIRE(fs::exists(seg));
  std::vector<char> bytes(fs::file_size(seg));
  {
    std::ifstream f(seg, std::ios::binary);
    f.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  int opened = 0, damaged = 0;
  for (int k = 1; k <= 12; ++k) {
    for (int flip = 0; flip < 2; ++flip) {
      TempDir bad("inspector-bad", /*create=*/true);
      std::vector<char> b = bytes;
      const size_t at = b.size() * k / 13;
      if (flip) b[at] = static_cast<char>(b[at] ^ 0x5a);
      else b.resize(at);
      {
        std::ofstream f(bad.path / "seg-000000.tlog", std::ios::binary);
        f.write(b.data(), static_cast<std::streamsize>(b.size()));
      }
      INFO((flip ? "flipped byte " : "truncated at ") << at << " of " << bytes.size());
      auto lb = load_recording(bad.path);
      if (!lb.error.ok()) {
        CHECK_FALSE(lb.error.message().empty());
        continue;
      }
      ++opened;
      if (!lb.damage().ok()) ++damaged;
      Model mm;
      mm.adopt(std::move(lb));
      REQUIRE(mm.loaded());
      for (Epoch e = mm.first_epoch(); e <= mm.last_epoch(); ++e) {
        mm.seek(e);
        for (mmsb::PageId p = 0; p < mm.page_count(); ++p) {
          mm.select_page(p);
          const auto bytes_now = mm.page_bytes();
          CHECK(mm.highlight().size() == bytes_now.size());
          if (!bytes_now.empty()) (void)mm.byte_history(p, 0, e, 4);  // may be empty
        }
        (void)mm.propagation();
      }
      mm.set_diff(mm.first_epoch(), mm.last_epoch());
      (void)mm.diff();
      std::vector<Density::Column> cols;
      mm.density().query(*mm.index(), mm.timeline().lo, mm.timeline().hi, 100, &cols);
    }
  }
  CHECK(opened > 0);   // truncations keep a readable prefix
  CHECK(damaged > 0);  // ... and say so
}

TEST_CASE("inspector model: a delta's ranges are summarized count first", "[inspector]") {
  using mmsb::Range;
  using mmsb::inspector::summarize_ranges;
  const std::vector<Range> one{{0, 24}};
  CHECK(summarize_ranges(one, 24) == "[0,24)");
  // Epoch 5 of the fixture: alpha [16,20) and [40,42), 6 bytes.
  const std::vector<Range> two{{16, 4}, {40, 2}};
  CHECK(summarize_ranges(two, 6) == "2 ranges, 6 B: [16,20) [40,42)");
  // The review's row: 190 ranges; the counts come before any range.
  std::vector<Range> many;
  for (uint32_t i = 0; i < 190; ++i) many.push_back({i * 7, 5});
  CHECK(summarize_ranges(many, 950) == "190 ranges, 950 B: [0,5) [7,12) ...");
  CHECK(summarize_ranges(many, 950, 0) == "190 ranges, 950 B");
  CHECK(summarize_ranges({}, 0) == "nothing");
}

TEST_CASE("inspector model: a name too long for its room keeps its end", "[inspector]") {
  using mmsb::inspector::keep_end;
  CHECK(keep_end("'heat/band-006'", 15) == "'heat/band-006'");
  CHECK(keep_end("'heat/band-006'", 10) == "~band-006'");
  CHECK(keep_end("'world'", 1) == "~");
  CHECK(keep_end("'world'", 0).empty());
}

// Epoch 8 wrote beta [0,1) = 07 (was 00) and [10,12) = ee ee, which epoch 4
// had already written there: written, but only byte 0 changed.
TEST_CASE("inspector model: the highlight tells changed bytes from rewritten ones", "[inspector]") {
  Opened o;
  Model& m = o.m;
  for (const Epoch from : {Epoch{7}, Epoch{15}}) {  // one step forward (the kept page), and a jump back
    m.select_page(fixture::kBeta);
    m.seek(from);
    (void)m.highlight();
    m.seek(8);
    const auto h = m.highlight();
    REQUIRE(h.size() == 32);
    CHECK(h[0] == kAgeCurrent);
    CHECK(h[10] == kAgeUnchanged);
    CHECK(h[11] == kAgeUnchanged);
    CHECK(h[1] == kAgeNone);
    CHECK(h[9] == kAgeNone);
    const auto before = u8(m.page_bytes_before());
    REQUIRE(before.size() == 32);
    CHECK(before[0] == 0);
    CHECK(before[10] == 0xee);
    CHECK(u8(m.page_bytes())[0] == 7);
  }
  // At epoch 9 (alpha's delta) beta's bytes are earlier writes: 8's are newest.
  auto b9 = ages(m, fixture::kBeta, 9);
  CHECK(b9[0] == 1);
  CHECK(b9[10] == 1);
  CHECK(m.page_bytes_before().empty());  // the cursor's delta is not beta's
  // Epoch 5 changed all six bytes it wrote.
  auto a5 = ages(m, fixture::kAlpha, 5);
  for (int i : {16, 17, 18, 19, 40, 41}) CHECK(a5[i] == kAgeCurrent);
  // Epoch 9 rewrote alpha[2] 'C' -> 'c': changed.
  CHECK(ages(m, fixture::kAlpha, 9)[2] == kAgeCurrent);
}

TEST_CASE("inspector model: a load can be cancelled", "[inspector]") {
  TempDir dir("inspector-cancel");
  REQUIRE(fixture::make_recording(dir.path).empty());
  // Cancelled before it starts: nothing is read.
  std::atomic<bool> cancel{true};
  auto l = load_recording(dir.path, {}, &cancel);
  CHECK(l.stage == "cancelled");
  CHECK_FALSE(l.error.ok());
  CHECK_FALSE(l.index);
  CHECK_FALSE(l.rec);
  // Cancelled while the index is built: it stops at the next progress report.
  cancel = false;
  int reports = 0;
  auto m = load_recording(
      dir.path,
      [&](uint64_t, uint64_t) {
        ++reports;
        cancel = true;
      },
      &cancel);
  CHECK(m.stage == "cancelled");
  CHECK_FALSE(m.index);
  CHECK(reports == 1);
  // Not cancelled: the whole fixture.
  cancel = false;
  auto n = load_recording(dir.path, {}, &cancel);
  CHECK(n.error.ok());
  REQUIRE(n.index);
  CHECK(n.index->last_epoch() == fixture::kLast);
}
