// Events: masks, fields, unsubscribe, epoch order, and the rule that a
// callback may not mutate the bus (kFailedPrecondition, no deadlock).
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "engine_model.h"
#include "mmsb/bus.h"
#include "mmsb/hash.h"

using mmsb::Bus;
using mmsb::BusOptions;
using mmsb::Code;
using mmsb::Epoch;
using mmsb::Event;
using mmsb::EventKind;
using mmsb::PageId;

namespace {

using model::B;

// An event copied out of the callback (the delta pointer is only valid inside).
struct Seen {
  EventKind kind = EventKind::kPageCreated;
  Epoch epoch = 0;
  PageId page = mmsb::kNoPage;
  mmsb::Version version = 0;
  PageId source = mmsb::kNoPage;
  Epoch cause = 0;
  bool has_delta = false;
  Epoch delta_epoch = 0;
  Epoch delta_cause = 0;
  mmsb::Version delta_base = 0;
  PageId delta_page = mmsb::kNoPage;
  std::vector<model::Run> runs;
  std::vector<uint8_t> bytes;
};

Seen copy_event(const Event& e) {
  Seen s;
  s.kind = e.kind;
  s.epoch = e.epoch;
  s.page = e.page;
  s.version = e.version;
  s.source = e.source;
  s.cause = e.cause;
  s.has_delta = e.delta != nullptr;
  if (e.delta) {
    s.delta_epoch = e.delta->epoch;
    s.delta_cause = e.delta->cause;
    s.delta_base = e.delta->base_version;
    s.delta_page = e.delta->page;
    s.runs = model::to_runs(e.delta->ranges);
    s.bytes = model::to_u8(e.delta->bytes);
  }
  return s;
}

size_t count(const std::vector<Seen>& v, EventKind k) {
  size_t n = 0;
  for (const auto& s : v) n += s.kind == k;
  return n;
}

}  // namespace

TEST_CASE("events carry the documented fields", "[events]") {
  Bus bus;
  std::vector<Seen> seen;
  auto sub = bus.subscribe(mmsb::kAllEvents, [&](const Event& e) { seen.push_back(copy_event(e)); });
  REQUIRE(sub.ok());

  REQUIRE(*bus.create_page(32, "src") == 0u);
  REQUIRE(*bus.create_page(32, "dst") == 1u);
  REQUIRE(bus.write(0, 4, B({1, 2, 3})).ok());  // epoch 1
  REQUIRE(seen.size() == 4);

  CHECK(seen[0].kind == EventKind::kPageCreated);
  CHECK(seen[0].page == 0u);
  CHECK(seen[0].epoch == 0u);
  CHECK(seen[0].version == 0u);
  CHECK(seen[1].kind == EventKind::kPageCreated);
  CHECK(seen[1].page == 1u);

  // The delta events of epoch 1, in whichever order the bus sends them.
  for (size_t i = 2; i < 4; ++i) {
    const Seen& s = seen[i];
    CHECK(s.epoch == 1u);
    CHECK(s.page == 0u);
    CHECK(s.version == 1u);
    if (s.kind == EventKind::kDeltaApplied) {
      REQUIRE(s.has_delta);
      CHECK(s.delta_epoch == 1u);
      CHECK(s.delta_page == 0u);
      CHECK(s.delta_base == 0u);
      CHECK(s.delta_cause == mmsb::kNoCause);
      CHECK(s.runs == std::vector<model::Run>{{4, 3}});
      CHECK(s.bytes == std::vector<uint8_t>{1, 2, 3});
    } else {
      CHECK(s.kind == EventKind::kPageChanged);
    }
  }
  CHECK(count(seen, EventKind::kDeltaApplied) == 1);
  CHECK(count(seen, EventKind::kPageChanged) == 1);

  // A dependency: 0 -> 1.
  REQUIRE(bus.add_dependency(0, 1, [](mmsb::UpdateContext& ctx) {
    std::byte v{9};
    return ctx.write(31, std::span<const std::byte>(&v, 1));
  }).ok());
  seen.clear();
  REQUIRE(bus.write(0, 0, B({7})).ok());  // epoch 2, derived epoch 3
  std::vector<Seen> triggered;
  for (auto& s : seen)
    if (s.kind == EventKind::kDependencyTriggered) triggered.push_back(s);
  REQUIRE(triggered.size() == 1);
  CHECK(triggered[0].page == 1u);
  CHECK(triggered[0].source == 0u);
  CHECK(triggered[0].cause == 2u);
  CHECK(count(seen, EventKind::kDeltaApplied) == 2);
  CHECK(count(seen, EventKind::kPageChanged) == 2);
  bool derived_seen = false;
  for (auto& s : seen)
    if (s.kind == EventKind::kDeltaApplied && s.page == 1u) {
      derived_seen = true;
      CHECK(s.epoch == 3u);
      CHECK(s.delta_epoch == 3u);
      CHECK(s.delta_cause == 2u);
      CHECK(s.version == 1u);
      CHECK(s.runs == std::vector<model::Run>{{31, 1}});
      CHECK(s.bytes == std::vector<uint8_t>{9});
    }
  CHECK(derived_seen);
}

TEST_CASE("subscription masks select event kinds", "[events]") {
  Bus bus;
  const EventKind kinds[] = {EventKind::kPageCreated, EventKind::kDeltaApplied, EventKind::kPageChanged,
                             EventKind::kDependencyTriggered};
  std::vector<std::vector<EventKind>> got(5);
  for (int i = 0; i < 4; ++i)
    REQUIRE(bus.subscribe(mmsb::mask_of(kinds[i]), [&got, i](const Event& e) { got[i].push_back(e.kind); }).ok());
  REQUIRE(bus.subscribe(mmsb::mask_of(EventKind::kPageCreated) | mmsb::mask_of(EventKind::kDependencyTriggered),
                        [&got](const Event& e) { got[4].push_back(e.kind); })
              .ok());

  REQUIRE(bus.create_page(8).ok());
  REQUIRE(bus.create_page(8).ok());
  REQUIRE(bus.add_dependency(0, 1, [](mmsb::UpdateContext& ctx) {
    std::byte v{1};
    return ctx.write(0, std::span<const std::byte>(&v, 1));
  }).ok());
  REQUIRE(bus.write(0, 0, B({1})).ok());
  REQUIRE(bus.write(1, 1, B({1})).ok());

  for (int i = 0; i < 4; ++i)
    for (EventKind k : got[i]) CHECK(k == kinds[i]);
  CHECK(got[0].size() == 2);  // two pages
  CHECK(got[1].size() == 3);  // two writes + one derived delta
  CHECK(got[2].size() == 3);
  CHECK(got[3].size() == 1);
  CHECK(got[4] == (std::vector<EventKind>{EventKind::kPageCreated, EventKind::kPageCreated,
                                          EventKind::kDependencyTriggered}));
}

TEST_CASE("unsubscribe stops delivery to that subscriber only", "[events]") {
  Bus bus;
  REQUIRE(bus.create_page(8).ok());
  int a = 0, b = 0;
  auto sa = bus.subscribe(mmsb::kAllEvents, [&](const Event&) { ++a; });
  auto sb = bus.subscribe(mmsb::mask_of(EventKind::kDeltaApplied), [&](const Event&) { ++b; });
  REQUIRE(sa.ok());
  REQUIRE(sb.ok());
  CHECK(*sa != *sb);
  REQUIRE(bus.write(0, 0, B({1})).ok());
  CHECK(a == 2);  // applied + changed
  CHECK(b == 1);
  REQUIRE(bus.unsubscribe(*sa).ok());
  REQUIRE(bus.write(0, 0, B({2})).ok());
  REQUIRE(bus.create_page(8).ok());
  CHECK(a == 2);
  CHECK(b == 2);
  CHECK_FALSE(bus.unsubscribe(*sa).ok());  // already gone
  CHECK_FALSE(bus.unsubscribe(*sb + 1000).ok());
  REQUIRE(bus.unsubscribe(*sb).ok());
  REQUIRE(bus.write(0, 0, B({3})).ok());
  CHECK(b == 2);
}

TEST_CASE("events arrive in epoch order -- kDeltaApplied epochs are contiguous", "[events][property]") {
  Bus bus;
  model::Model m;
  model::Rng rng(0xe7e70001);
  std::vector<Seen> seen;
  REQUIRE(bus.subscribe(mmsb::kAllEvents, [&](const Event& e) { seen.push_back(copy_event(e)); }).ok());

  for (int i = 0; i < 6; ++i) REQUIRE(*bus.create_page(64) == m.create(64));
  // 0 -> 2, 1 -> 2, 2 -> 3, 4 -> 5: derived deltas interleave with application ones.
  auto copy_fn = [](mmsb::UpdateContext& ctx) {
    std::vector<std::byte> img(ctx.bytes().begin(), ctx.bytes().end());
    for (size_t i = 0; i < img.size(); ++i) img[i] ^= ctx.source_bytes()[i];
    return ctx.assign(img);
  };
  REQUIRE(bus.add_dependency(0, 2, copy_fn).ok());
  REQUIRE(bus.add_dependency(1, 2, copy_fn).ok());
  REQUIRE(bus.add_dependency(2, 3, copy_fn).ok());
  REQUIRE(bus.add_dependency(4, 5, copy_fn).ok());

  for (int i = 0; i < 500; ++i) {
    PageId id = static_cast<PageId>(rng.below(6));
    uint64_t off = rng.below(64);
    std::vector<uint8_t> v = rng.bytes(rng.between(1, 64 - off));
    REQUIRE(bus.write(id, off, model::to_bytes(v)).ok());
    if (rng.chance(3)) REQUIRE(bus.create_page(rng.between(1, 100)).ok());
  }

  Epoch last = 0, next_applied = 1;
  size_t changed = 0;
  bool ordered = true, contiguous = true, consistent = true;
  for (const Seen& s : seen) {
    if (s.epoch < last) ordered = false;
    last = s.epoch;
    if (s.kind == EventKind::kDeltaApplied) {
      if (s.epoch != next_applied++) contiguous = false;
      if (!s.has_delta || s.delta_epoch != s.epoch || s.version != s.delta_base + 1) consistent = false;
    }
    if (s.kind == EventKind::kPageChanged) ++changed;
  }
  CHECK(ordered);
  CHECK(contiguous);
  CHECK(consistent);
  CHECK(next_applied - 1 == bus.epoch());
  CHECK(changed == bus.epoch());
  CHECK(bus.epoch() > 500u);  // derived deltas happened
}

TEST_CASE("a callback that mutates the bus gets kFailedPrecondition, no deadlock", "[events]") {
  Bus bus;
  REQUIRE(bus.create_page(8).ok());
  REQUIRE(bus.create_page(8, "other").ok());
  std::vector<mmsb::Status> inner;
  bool once = false;
  auto sub = bus.subscribe(mmsb::mask_of(EventKind::kDeltaApplied), [&](const Event&) {
    if (once) return;
    once = true;
    Epoch e = 0;
    inner.push_back(bus.write(1, 0, B({5}), &e));
    mmsb::Delta d = mmsb::Delta::from_write(1, 0, 0, B({6}));
    inner.push_back(bus.apply(d.view()));
    std::vector<std::byte> img(8, std::byte{1});
    inner.push_back(bus.assign(1, img));
    inner.push_back(bus.create_page(8).status());
    inner.push_back(bus.add_dependency(0, 1, [](mmsb::UpdateContext&) { return mmsb::Status::OK(); }));
    inner.push_back(bus.propagate());
    inner.push_back(bus.subscribe(mmsb::kAllEvents, [](const Event&) {}).status());
  });
  REQUIRE(sub.ok());

  Epoch e = 0;
  REQUIRE(bus.write(0, 0, B({1}), &e).ok());
  CHECK(e == 1u);
  REQUIRE(inner.size() == 7);
  for (size_t i = 0; i < inner.size(); ++i) {
    INFO("inner call " << i << ": " << inner[i].to_string());
    CHECK(inner[i].code() == Code::kFailedPrecondition);
  }
  // Nothing the callback tried happened.
  CHECK(bus.epoch() == 1u);
  CHECK(bus.page_count() == 2u);
  CHECK(bus.info(1)->version == 0u);
  for (std::byte x : bus.page_bytes(1)) CHECK(x == std::byte{0});
  // Outside a callback the same calls work again.
  REQUIRE(bus.write(1, 0, B({5})).ok());
  CHECK(bus.epoch() == 2u);
}

TEST_CASE("a callback may not unsubscribe itself from inside", "[events]") {
  Bus bus;
  REQUIRE(bus.create_page(8).ok());
  mmsb::SubscriptionId self = 0;
  mmsb::Status inner;
  int calls = 0;
  auto sub = bus.subscribe(mmsb::mask_of(EventKind::kDeltaApplied), [&](const Event&) {
    ++calls;
    inner = bus.unsubscribe(self);
  });
  REQUIRE(sub.ok());
  self = *sub;
  REQUIRE(bus.write(0, 0, B({1})).ok());
  CHECK(inner.code() == Code::kFailedPrecondition);
  REQUIRE(bus.write(0, 0, B({2})).ok());
  CHECK(calls == 2);  // still subscribed
  REQUIRE(bus.unsubscribe(self).ok());
}

TEST_CASE("a callback may read the bus: it sees the state right after the event", "[events]") {
  Bus bus;
  model::Model m;
  model::Rng rng(0xe7e70002);
  REQUIRE(*bus.create_page(100, "a") == m.create(100, "a"));
  REQUIRE(*bus.create_page(7, "b") == m.create(7, "b"));

  std::vector<std::string> problems;
  int calls = 0;
  auto sub = bus.subscribe(mmsb::mask_of(EventKind::kDeltaApplied), [&](const Event& e) {
    ++calls;
    // The model was updated before the write: it holds the state after this delta.
    const model::Page& want = m.pages.at(e.page);
    auto info = bus.info(e.page);
    if (!info.ok() || info->version != want.version || info->last_epoch != e.epoch)
      problems.push_back("info");
    std::vector<std::byte> buf(want.bytes.size());
    if (!bus.read(e.page, 0, buf).ok() || !model::same(buf, want.bytes)) problems.push_back("read");
    std::vector<std::byte> copy;
    if (!bus.copy_page(e.page, &copy).ok() || !model::same(copy, want.bytes)) problems.push_back("copy_page");
    if (!model::same(bus.page_bytes(e.page), want.bytes)) problems.push_back("page_bytes");
    auto found = bus.find(want.name);
    if (!found.ok() || *found != e.page) problems.push_back("find");
    if (bus.page_hash(e.page) != mmsb::hash_bytes(model::to_bytes(want.bytes))) problems.push_back("page_hash");
    mmsb::StateHasher h;
    for (PageId id = 0; id < m.pages.size(); ++id) {
      std::vector<std::byte> b = model::to_bytes(m.pages[id].bytes);
      h.add_page(id, b);
    }
    if (bus.state_hash() != h.digest()) problems.push_back("state_hash");
  });
  REQUIRE(sub.ok());

  for (int i = 0; i < 100; ++i) {
    PageId id = static_cast<PageId>(rng.below(2));
    uint64_t n = m.pages[id].bytes.size();
    uint64_t off = rng.below(n);
    std::vector<uint8_t> v = rng.bytes(rng.between(1, n - off));
    uint64_t want_epoch = m.write(id, off, v);
    mmsb::Epoch e = 0;
    REQUIRE(bus.write(id, off, model::to_bytes(v), &e).ok());
    REQUIRE(e == want_epoch);
  }
  CHECK(calls == 100);
  INFO((problems.empty() ? std::string() : problems.front()));
  CHECK(problems.empty());
}

TEST_CASE("callbacks across two buses: B's callback reads A and may not write it, no deadlock", "[events]") {
  Bus a, b;
  REQUIRE(a.create_page(4, "pa").ok());
  REQUIRE(b.create_page(4, "pb").ok());
  std::vector<std::byte> seen;
  mmsb::Status b_writes_a, b_reads_a, a_writes_b;
  // A's callback writes B (another bus: allowed); B's callback, nested in it
  // on this thread, reads A (its write lock is held by this thread) and
  // tries to write A.
  REQUIRE(a.subscribe(mmsb::mask_of(EventKind::kDeltaApplied), [&](const Event& e) {
             a_writes_b = b.write(0, 0, e.delta->bytes.first(1));
           }).ok());
  REQUIRE(b.subscribe(mmsb::mask_of(EventKind::kDeltaApplied), [&](const Event&) {
             b_reads_a = a.copy_page(0, &seen);
             b_writes_a = a.write(0, 1, B({9}));
           }).ok());
  REQUIRE(a.write(0, 0, B({7, 8})).ok());
  CHECK(a_writes_b.ok());
  CHECK(b_reads_a.ok());
  CHECK(model::same(seen, {7, 8, 0, 0}));
  CHECK(b_writes_a.code() == Code::kFailedPrecondition);
  CHECK(a.epoch() == 1u);  // B's write to A did not happen
  CHECK(model::same(b.page_bytes(0), {7, 0, 0, 0}));
}

TEST_CASE("a callback that throws leaves the bus usable on its thread and others", "[events]") {
  Bus bus;
  REQUIRE(bus.create_page(4, "src").ok());
  REQUIRE(bus.create_page(4, "dst").ok());
  REQUIRE(bus.add_dependency(0, 1, [](mmsb::UpdateContext& ctx) { return ctx.assign(ctx.source_bytes()); }).ok());
  bool throwing = true;
  REQUIRE(bus.subscribe(mmsb::mask_of(EventKind::kDeltaApplied), [&](const Event&) {
             if (throwing) throw std::runtime_error("boom");
           }).ok());
  CHECK_THROWS_WITH(bus.write(0, 0, B({1})), "boom");
  throwing = false;
  // The thread is not left "inside a callback": writes work, reads lock.
  REQUIRE(bus.write(0, 1, B({2})).ok());
  CHECK(model::same(bus.page_bytes(0), {1, 2, 0, 0}));
  // The dependent caught up: the change whose event threw was not lost.
  CHECK(model::same(bus.page_bytes(1), {1, 2, 0, 0}));
  std::vector<std::byte> out;
  REQUIRE(bus.copy_page(1, &out).ok());
  CHECK(model::same(out, {1, 2, 0, 0}));
}

TEST_CASE("an update function that throws fails its update, not the pass", "[events][deps]") {
  BusOptions o;
  o.propagation = mmsb::Propagation::kDeferred;
  Bus bus(std::move(o));
  REQUIRE(bus.create_page(4, "src").ok());
  REQUIRE(bus.create_page(4, "bad").ok());
  REQUIRE(bus.create_page(4, "good").ok());
  REQUIRE(bus.add_dependency(0, 1, [](mmsb::UpdateContext&) -> mmsb::Status { throw std::runtime_error("no"); }).ok());
  REQUIRE(bus.add_dependency(0, 2, [](mmsb::UpdateContext& ctx) { return ctx.assign(ctx.source_bytes()); }).ok());
  REQUIRE(bus.write(0, 0, B({3, 4})).ok());
  const mmsb::Status s = bus.propagate();
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("update of page 1 from page 0") != std::string::npos);
  CHECK(s.message().find("threw: no") != std::string::npos);
  CHECK(model::same(bus.page_bytes(2), {3, 4, 0, 0}));  // the other dependent updated
  // Not left "inside an update function": the bus takes writes.
  REQUIRE(bus.write(2, 0, B({1})).ok());
}

TEST_CASE("UpdateContext from a callback its own write fired: refused, no deadlock -- not copyable", "[events][deps]") {
  static_assert(!std::is_copy_constructible_v<mmsb::UpdateContext>);
  Bus bus;
  REQUIRE(bus.create_page(4, "src").ok());
  REQUIRE(bus.create_page(4, "dst").ok());
  mmsb::UpdateContext* current = nullptr;
  mmsb::Status nested_write, nested_assign;
  REQUIRE(bus.subscribe(mmsb::mask_of(EventKind::kDeltaApplied), [&](const Event& e) {
             if (!current || e.page != 1) return;
             nested_write = current->write(1, B({5}));
             std::vector<std::byte> img(4, std::byte{6});
             nested_assign = current->assign(img);
           }).ok());
  REQUIRE(bus.add_dependency(0, 1, [&](mmsb::UpdateContext& ctx) {
             current = &ctx;
             mmsb::Status s = ctx.write(0, B({1}));
             current = nullptr;
             return s;
           }).ok());
  REQUIRE(bus.write(0, 0, B({9})).ok());
  CHECK(nested_write.code() == Code::kFailedPrecondition);
  CHECK(nested_assign.code() == Code::kFailedPrecondition);
  CHECK(model::same(bus.page_bytes(1), {1, 0, 0, 0}));
}

TEST_CASE("read() of nothing is fine, also with a null span", "[events]") {
  Bus bus;
  REQUIRE(bus.create_page(4).ok());
  CHECK(bus.read(0, 0, {}).ok());
  CHECK(bus.read(0, 4, {}).ok());
  CHECK(bus.read(0, 5, {}).code() == Code::kOutOfRange);
}
