// The dependency graph: update order (topological, ties by page id), cycle
// refusal, derived deltas and their causes, immediate vs deferred propagation.
// Every expected order below is written out by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "engine_model.h"
#include "mmsb/bus.h"

using mmsb::Bus;
using mmsb::BusOptions;
using mmsb::Code;
using mmsb::Epoch;
using mmsb::PageId;
using mmsb::Propagation;
using mmsb::UpdateContext;

namespace {

using model::B;

struct Call {
  PageId page;
  PageId source;
  Epoch cause;
  friend bool operator==(const Call&, const Call&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Call& c) {
    return os << "{page " << c.page << " <- " << c.source << " cause " << c.cause << "}";
  }
};

// A delta as seen by a kDeltaApplied subscriber.
struct Applied {
  Epoch epoch;
  PageId page;
  Epoch cause;
  friend bool operator==(const Applied&, const Applied&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Applied& a) {
    return os << "{epoch " << a.epoch << " page " << a.page << " cause " << a.cause << "}";
  }
};

// Records every update call; each call writes one byte to its dependent page,
// so every call produces exactly one derived delta.
struct Harness {
  Bus bus;
  std::vector<Call> calls;
  std::vector<Applied> applied;

  explicit Harness(int pages, Propagation mode = Propagation::kImmediate)
      : bus(options(mode)) {
    for (int i = 0; i < pages; ++i) {
      auto id = bus.create_page(16, "p" + std::to_string(i));
      REQUIRE(id.ok());
      REQUIRE(*id == static_cast<PageId>(i));
    }
    auto sub = bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied), [this](const mmsb::Event& e) {
      applied.push_back({e.epoch, e.page, e.delta ? e.delta->cause : ~Epoch{0}});
    });
    REQUIRE(sub.ok());
  }
  static BusOptions options(Propagation mode) {
    BusOptions o;
    o.propagation = mode;
    return o;
  }
  mmsb::UpdateFn recorder() {
    return [this](UpdateContext& ctx) {
      calls.push_back({ctx.page(), ctx.source(), ctx.cause()});
      std::byte v = static_cast<std::byte>(calls.size());
      return ctx.write(0, std::span<const std::byte>(&v, 1));
    };
  }
  void edge(PageId from, PageId to) { REQUIRE(bus.add_dependency(from, to, recorder()).ok()); }
  Epoch touch(PageId id) {
    Epoch e = 0;
    REQUIRE(bus.write(id, 8, B({0x11}), &e).ok());
    return e;
  }
};

}  // namespace

TEST_CASE("diamond: A->B, A->C, B->D, C->D", "[deps]") {
  Harness h(4);  // A=0 B=1 C=2 D=3
  // Edges added in a scrambled order: the order of calls must not depend on it.
  h.edge(2, 3);
  h.edge(0, 2);
  h.edge(1, 3);
  h.edge(0, 1);

  Epoch e = h.touch(0);
  CHECK(e == 1u);  // the application's own delta comes first
  std::vector<Call> want_calls{{1, 0, 1}, {2, 0, 1}, {3, 1, 2}, {3, 2, 3}};
  CHECK(h.calls == want_calls);
  std::vector<Applied> want_applied{{1, 0, 0}, {2, 1, 1}, {3, 2, 1}, {4, 3, 2}, {5, 3, 3}};
  CHECK(h.applied == want_applied);
  CHECK(h.bus.epoch() == 5u);
  CHECK(h.bus.info(3)->version == 2u);
  CHECK(h.bus.pending() == 0u);

  SECTION("a change in the middle only updates what lies below it") {
    h.calls.clear();
    h.applied.clear();
    Epoch e2 = h.touch(2);
    CHECK(e2 == 6u);
    CHECK(h.calls == std::vector<Call>{{3, 2, 6}});
    CHECK(h.applied == (std::vector<Applied>{{6, 2, 0}, {7, 3, 6}}));
  }
  SECTION("a change at the bottom updates nothing") {
    h.calls.clear();
    h.touch(3);
    CHECK(h.calls.empty());
    CHECK(h.bus.epoch() == 6u);
  }
}

TEST_CASE("chain against id order: 4->3->2->1->0", "[deps]") {
  Harness h(5);
  h.edge(1, 0);
  h.edge(3, 2);
  h.edge(4, 3);
  h.edge(2, 1);
  h.touch(4);
  CHECK(h.calls == (std::vector<Call>{{3, 4, 1}, {2, 3, 2}, {1, 2, 3}, {0, 1, 4}}));
  CHECK(h.bus.epoch() == 5u);
}

TEST_CASE("ties between ready pages go to the lower page id", "[deps]") {
  Harness h(6);
  h.edge(0, 5);
  h.edge(0, 3);
  h.edge(0, 1);
  h.edge(0, 4);
  h.edge(2, 4);  // an edge from an unchanged page does not fire
  h.touch(0);
  CHECK(h.calls == (std::vector<Call>{{1, 0, 1}, {3, 0, 1}, {4, 0, 1}, {5, 0, 1}}));
}

TEST_CASE("topological order with ties by id: a ready lower id runs before a higher one", "[deps]") {
  // 0->3, 0->1, 1->2. After 1 runs, both 2 and 3 are ready: 2 has the lower id.
  Harness h(4);
  h.edge(0, 3);
  h.edge(0, 1);
  h.edge(1, 2);
  h.touch(0);
  CHECK(h.calls == (std::vector<Call>{{1, 0, 1}, {2, 1, 2}, {3, 0, 1}}));
}

TEST_CASE("a page waits for all its changed sources: long and short paths", "[deps]") {
  // 0->1->2->3 and 0->3: 3 runs after 2, once per changed source edge.
  Harness h(4);
  h.edge(0, 3);
  h.edge(2, 3);
  h.edge(1, 2);
  h.edge(0, 1);
  h.touch(0);
  CHECK(h.calls == (std::vector<Call>{{1, 0, 1}, {2, 1, 2}, {3, 0, 1}, {3, 2, 3}}));
  CHECK(h.bus.epoch() == 5u);
}

TEST_CASE("unrelated parts of the graph do not run", "[deps]") {
  Harness h(6);
  h.edge(0, 1);
  h.edge(4, 5);
  h.edge(2, 3);
  h.touch(2);
  CHECK(h.calls == std::vector<Call>{{3, 2, 1}});
  h.calls.clear();
  h.touch(1);  // 1 has no dependents
  CHECK(h.calls.empty());
}

TEST_CASE("cycles are refused and leave the graph unchanged", "[deps]") {
  Harness h(5);
  h.edge(0, 1);
  h.edge(1, 2);
  h.edge(2, 3);
  int refused_calls = 0;
  auto refused = [&](UpdateContext&) {
    ++refused_calls;
    return mmsb::Status::OK();
  };

  SECTION("self edge") { CHECK(h.bus.add_dependency(4, 4, refused).code() == Code::kCycle); }
  SECTION("self edge on a page in the graph") {
    CHECK(h.bus.add_dependency(2, 2, refused).code() == Code::kCycle);
  }
  SECTION("two-cycle") { CHECK(h.bus.add_dependency(1, 0, refused).code() == Code::kCycle); }
  SECTION("longer cycle") { CHECK(h.bus.add_dependency(3, 0, refused).code() == Code::kCycle); }
  SECTION("cycle through the middle") { CHECK(h.bus.add_dependency(3, 1, refused).code() == Code::kCycle); }

  // Unchanged: the same calls as without the refused edge, never the refused fn.
  h.touch(0);
  CHECK(h.calls == (std::vector<Call>{{1, 0, 1}, {2, 1, 2}, {3, 2, 3}}));
  CHECK(refused_calls == 0);
  h.calls.clear();
  h.touch(3);
  h.touch(4);
  CHECK(h.calls.empty());
  CHECK(refused_calls == 0);
}

TEST_CASE("edges that close no cycle are accepted (shortcut and converging edges)", "[deps]") {
  Harness h(4);
  h.edge(0, 1);
  h.edge(1, 2);
  CHECK(h.bus.add_dependency(0, 2, h.recorder()).ok());  // shortcut, not a cycle
  CHECK(h.bus.add_dependency(3, 2, h.recorder()).ok());  // converging
  CHECK(h.bus.add_dependency(3, 0, h.recorder()).ok());  // new root
}

TEST_CASE("duplicate edges and unknown pages", "[deps]") {
  Harness h(3);
  h.edge(0, 1);
  int second_calls = 0;
  auto second = [&](UpdateContext&) {
    ++second_calls;
    return mmsb::Status::OK();
  };
  CHECK(h.bus.add_dependency(0, 1, second).code() == Code::kAlreadyExists);
  CHECK(h.bus.add_dependency(0, 7, second).code() == Code::kNotFound);
  CHECK(h.bus.add_dependency(9, 1, second).code() == Code::kNotFound);
  CHECK_FALSE(h.bus.remove_dependency(1, 2).ok());  // no such edge
  CHECK_FALSE(h.bus.remove_dependency(0, 9).ok());
  h.touch(0);
  CHECK(h.calls == std::vector<Call>{{1, 0, 1}});  // the original fn, once
  CHECK(second_calls == 0);
}

TEST_CASE("remove_dependency stops updates and allows the reverse edge", "[deps]") {
  Harness h(3);
  h.edge(0, 1);
  h.edge(0, 2);
  REQUIRE(h.bus.remove_dependency(0, 1).ok());
  h.touch(0);
  CHECK(h.calls == std::vector<Call>{{2, 0, 1}});
  CHECK(h.bus.remove_dependency(0, 1).code() == Code::kNotFound);

  // 1->0 would have closed a cycle before; now it is fine.
  h.edge(1, 0);
  h.calls.clear();
  h.touch(1);  // epoch 3; 0 updates at 4; then 0->2 fires with cause 4
  CHECK(h.calls == (std::vector<Call>{{0, 1, 3}, {2, 0, 4}}));
}

TEST_CASE("derived deltas carry the epoch of the source delta as cause", "[deps]") {
  Harness h(3);
  h.edge(0, 1);
  h.edge(1, 2);
  for (int round = 0; round < 5; ++round) {
    h.applied.clear();
    Epoch e = h.touch(0);
    REQUIRE(h.applied.size() == 3);
    CHECK(h.applied[0] == Applied{e, 0, 0});
    CHECK(h.applied[1] == Applied{e + 1, 1, e});
    CHECK(h.applied[2] == Applied{e + 2, 2, e + 1});
  }
  CHECK(h.bus.epoch() == 15u);
  CHECK(h.bus.info(2)->version == 5u);
  CHECK(h.bus.info(2)->last_epoch == 15u);
}

TEST_CASE("update functions see the source and dependent bytes -- assign writes only differences",
          "[deps]") {
  Bus bus;
  model::Model m;
  model::Rng rng(0xde90001);
  const uint64_t n = 300;
  REQUIRE(*bus.create_page(n, "src") == m.create(n));
  REQUIRE(*bus.create_page(n, "inv") == m.create(n));  // inv = bitwise NOT of src
  // Page 1 starts as zeros, i.e. not yet ~src.

  std::vector<std::string> problems;
  std::vector<uint8_t> src_after;  // what page 0 holds when the fn runs
  REQUIRE(bus.add_dependency(0, 1, [&](UpdateContext& ctx) {
    if (!model::same(ctx.source_bytes(), src_after)) problems.push_back("source_bytes");
    if (!model::same(ctx.bytes(), m.pages[1].bytes)) problems.push_back("bytes");
    if (ctx.page() != 1u || ctx.source() != 0u) problems.push_back("ids");
    std::vector<std::byte> image(ctx.source_bytes().size());
    for (size_t i = 0; i < image.size(); ++i) image[i] = ~ctx.source_bytes()[i];
    return ctx.assign(image);
  }).ok());

  std::vector<std::pair<Epoch, size_t>> derived;  // (cause, changed bytes)
  REQUIRE(bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied), [&](const mmsb::Event& e) {
    if (e.page == 1) derived.push_back({e.delta->cause, e.delta->bytes.size()});
  }).ok());

  for (int i = 0; i < 200; ++i) {
    uint64_t off = rng.below(n);
    std::vector<uint8_t> v = rng.bytes(rng.between(1, std::min<uint64_t>(n - off, 40)));
    // What ~src will be, and how many bytes of page 1 must change.
    src_after = m.pages[0].bytes;
    for (size_t k = 0; k < v.size(); ++k) src_after[off + k] = v[k];
    std::vector<uint8_t> inv_after(n);
    for (size_t k = 0; k < n; ++k) inv_after[k] = static_cast<uint8_t>(~src_after[k]);
    size_t differing = 0;
    for (size_t k = 0; k < n; ++k) differing += inv_after[k] != m.pages[1].bytes[k];

    derived.clear();
    Epoch e = 0;
    REQUIRE(bus.write(0, off, model::to_bytes(v), &e).ok());
    REQUIRE(e == m.write(0, off, v));
    // The fn saw the state before page 1 changed; the model follows now.
    if (differing == 0) {
      CHECK(derived.empty());
    } else {
      REQUIRE(derived.size() == 1);
      CHECK(derived[0].first == e);
      CHECK(derived[0].second == differing);
      m.assign(1, inv_after);
    }
    REQUIRE(bus.epoch() == m.epoch);
    REQUIRE(model::same(bus.page_bytes(1), m.pages[1].bytes));
  }
  INFO((problems.empty() ? std::string() : problems.front()));
  CHECK(problems.empty());
}

TEST_CASE("deferred: several writes, one propagate, one call per changed source edge",
          "[deps][deferred]") {
  Harness h(4, Propagation::kDeferred);
  h.edge(0, 2);
  h.edge(1, 2);
  h.edge(2, 3);

  h.touch(0);  // 1
  h.touch(0);  // 2
  h.touch(0);  // 3
  CHECK(h.calls.empty());
  CHECK(h.bus.epoch() == 3u);
  CHECK(h.bus.pending() == 1u);

  REQUIRE(h.bus.propagate().ok());
  CHECK(h.calls == (std::vector<Call>{{2, 0, 3}, {3, 2, 4}}));
  CHECK(h.bus.epoch() == 5u);
  CHECK(h.bus.pending() == 0u);

  SECTION("nothing pending: propagate does nothing") {
    h.calls.clear();
    REQUIRE(h.bus.propagate().ok());
    CHECK(h.calls.empty());
    CHECK(h.bus.epoch() == 5u);
  }
  SECTION("two sources of one page changed in one pass") {
    h.calls.clear();
    h.touch(1);  // 6
    h.touch(0);  // 7
    h.touch(1);  // 8
    CHECK(h.bus.pending() == 2u);
    REQUIRE(h.bus.propagate().ok());
    // Page 2 once per changed source edge, by source id; then 3 once (from 2).
    CHECK(h.calls == (std::vector<Call>{{2, 0, 7}, {2, 1, 8}, {3, 2, 10}}));
    CHECK(h.bus.epoch() == 11u);
    CHECK(h.bus.pending() == 0u);
  }
  SECTION("a changed page that is also a dependent") {
    h.calls.clear();
    h.touch(2);  // 6
    h.touch(0);  // 7
    REQUIRE(h.bus.propagate().ok());
    // 2 is updated from 0 (epoch 8); 3 then fires once, with 2's last delta as cause.
    CHECK(h.calls == (std::vector<Call>{{2, 0, 7}, {3, 2, 8}}));
    CHECK(h.bus.epoch() == 9u);
  }
}

TEST_CASE("immediate mode: dependents are up to date when write returns", "[deps]") {
  Harness h(2);
  h.edge(0, 1);
  for (int i = 1; i <= 4; ++i) {
    Epoch e = h.touch(0);
    CHECK(e == static_cast<Epoch>(2 * i - 1));
    CHECK(h.calls.size() == static_cast<size_t>(i));
    CHECK(h.bus.info(1)->version == static_cast<mmsb::Version>(i));
    CHECK(h.bus.pending() == 0u);
  }
  CHECK(h.bus.epoch() == 8u);
}

TEST_CASE("propagate returns the first update error and still runs the others", "[deps][deferred]") {
  Harness h(4, Propagation::kDeferred);
  int c_calls = 0, d_calls = 0;
  REQUIRE(h.bus.add_dependency(0, 1, [](UpdateContext&) {
    return mmsb::Status(Code::kInvalidArgument, "update of page 1 failed on purpose");
  }).ok());
  REQUIRE(h.bus.add_dependency(0, 2, [&](UpdateContext& ctx) {
    ++c_calls;
    std::byte v{1};
    return ctx.write(0, std::span<const std::byte>(&v, 1));
  }).ok());
  REQUIRE(h.bus.add_dependency(0, 3, [&](UpdateContext&) {
    ++d_calls;
    return mmsb::Status(Code::kOutOfRange, "second failure");
  }).ok());
  h.touch(0);
  auto s = h.bus.propagate();
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(c_calls == 1);
  CHECK(d_calls == 1);
  CHECK(h.bus.epoch() == 2u);  // the source delta and page 2's derived delta
  CHECK(h.bus.info(1)->version == 0u);
}

TEST_CASE("UpdateContext::write outside the dependent page is refused", "[deps][deferred]") {
  Harness h(2, Propagation::kDeferred);
  mmsb::Status inner;
  uint32_t writes_after = 99;
  REQUIRE(h.bus.add_dependency(0, 1, [&](UpdateContext& ctx) {
    std::vector<std::byte> v(4);
    inner = ctx.write(14, v);  // page is 16 bytes
    writes_after = ctx.writes();
    return inner;
  }).ok());
  h.touch(0);
  CHECK(h.bus.propagate().code() == Code::kOutOfRange);
  CHECK(inner.code() == Code::kOutOfRange);
  CHECK(writes_after == 0u);
  CHECK(h.bus.epoch() == 1u);
}

TEST_CASE("immediate mode: an update error is returned by the write, which stays applied", "[deps]") {
  Harness h(3);
  REQUIRE(h.bus.add_dependency(0, 1, [](UpdateContext&) {
    return mmsb::Status(Code::kOutOfRange, "update of page 1 failed on purpose");
  }).ok());
  h.edge(0, 2);
  Epoch e = 0;
  auto s = h.bus.write(0, 3, B({7}), &e);
  CHECK(s.code() == Code::kOutOfRange);
  CHECK(e == 1u);
  CHECK(h.bus.page_bytes(0)[3] == std::byte{7});
  CHECK(h.bus.info(0)->version == 1u);
  CHECK(h.calls == std::vector<Call>{{2, 0, 1}});  // the rest of the pass ran
  CHECK(h.bus.epoch() == 2u);
}

TEST_CASE("an update function may not write the bus directly", "[deps]") {
  Harness h(3);
  std::vector<mmsb::Status> inner;
  REQUIRE(h.bus.add_dependency(0, 1, [&](UpdateContext& ctx) {
    inner.push_back(ctx.bus().write(2, 0, B({1})));
    inner.push_back(ctx.bus().write(1, 0, B({1})));
    inner.push_back(ctx.bus().propagate());
    inner.push_back(ctx.bus().add_dependency(1, 2, [](UpdateContext&) { return mmsb::Status::OK(); }));
    inner.push_back(ctx.bus().create_page(8).status());
    mmsb::Delta d = mmsb::Delta::from_write(2, 0, 0, B({1}));
    inner.push_back(ctx.bus().apply(d.view()));
    std::vector<std::byte> img(16, std::byte{1});
    inner.push_back(ctx.bus().assign(2, img));
    inner.push_back(ctx.bus().remove_dependency(0, 1));
    return mmsb::Status::OK();
  }).ok());
  h.touch(0);
  REQUIRE(inner.size() == 8);
  for (size_t i = 0; i < inner.size(); ++i) {
    INFO("inner call " << i << ": " << inner[i].to_string());
    CHECK(inner[i].code() == Code::kFailedPrecondition);
  }
  CHECK(h.bus.epoch() == 1u);
  CHECK(h.bus.page_count() == 3u);
  CHECK(h.bus.info(1)->version == 0u);
  CHECK(h.bus.info(2)->version == 0u);
  // The refused edge was not added: 1 -> 2 can be added now; 0 -> 1 is still there.
  CHECK(h.bus.add_dependency(1, 2, h.recorder()).ok());
  CHECK(h.bus.add_dependency(0, 1, h.recorder()).code() == Code::kAlreadyExists);
}

TEST_CASE("deferred: an edge added after the change but before propagate() still fires",
          "[deps][deferred]") {
  // propagate() runs "every page that depends (transitively) on a page changed
  // since the last propagation": page 0 changed before it had any dependent.
  Harness h(2, Propagation::kDeferred);
  Epoch e = h.touch(0);
  h.edge(0, 1);
  REQUIRE(h.bus.propagate().ok());
  CHECK(h.calls == std::vector<Call>{{1, 0, e}});
}
