// CpuMirror: after every sync() the mirror equals the model (bytes, versions,
// page count), its epoch equals the bus's, and lagging behind a small ring
// ends in a full resync that is still exact.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine_model.h"
#include "mmsb/bus.h"
#include "mmsb/hash.h"
#include "mmsb/mirror.h"

using mmsb::Bus;
using mmsb::BusOptions;
using mmsb::CpuMirror;
using mmsb::PageId;

namespace {

BusOptions with_tlog(size_t capacity) {
  BusOptions o;
  o.tlog_capacity = capacity;
  return o;
}

// "" when the mirror equals the model, else what differs first.
std::string compare_mirror(const CpuMirror& mir, const model::Model& m) {
  if (mir.page_count() != m.pages.size())
    return "page_count " + std::to_string(mir.page_count()) + " want " + std::to_string(m.pages.size());
  if (mir.synced_epoch() != m.epoch)
    return "synced_epoch " + std::to_string(mir.synced_epoch()) + " want " + std::to_string(m.epoch);
  for (PageId id = 0; id < m.pages.size(); ++id) {
    std::string d = model::describe_mismatch(mir.page_bytes(id), m.pages[id].bytes);
    if (!d.empty()) return "page " + std::to_string(id) + ": " + d;
    if (mir.page_version(id) != m.pages[id].version)
      return "page " + std::to_string(id) + " version " + std::to_string(mir.page_version(id)) + " want " +
             std::to_string(m.pages[id].version);
  }
  return {};
}


// One random write to a random page of both the bus and the model.
void random_write(Bus& bus, model::Model& m, model::Rng& rng, uint64_t max_len) {
  PageId id = static_cast<PageId>(rng.below(m.pages.size()));
  uint64_t n = m.pages[id].bytes.size();
  uint64_t off = rng.below(n);
  std::vector<uint8_t> v = rng.bytes(rng.between(1, std::min<uint64_t>(n - off, max_len)));
  mmsb::Epoch e = 0;
  REQUIRE(bus.write(id, off, model::to_bytes(v), &e).ok());
  REQUIRE(e == m.write(id, off, v));
}

}  // namespace

TEST_CASE("a new mirror copies the bus's current state", "[mirror]") {
  Bus bus;
  model::Model m;
  model::Rng rng(0x3177001);
  for (uint64_t n : {uint64_t{1}, uint64_t{4096}, uint64_t{4097}, uint64_t{65536}})
    REQUIRE(*bus.create_page(n) == m.create(n));
  for (int i = 0; i < 100; ++i) random_write(bus, m, rng, 500);

  CpuMirror mir(bus);
  CHECK(mir.synced_epoch() == 100u);
  CHECK(mir.resyncs() == 0u);
  INFO(compare_mirror(mir, m));
  CHECK(compare_mirror(mir, m).empty());
  CHECK(mir.state_hash() == bus.state_hash());
  CHECK(mir.state_hash() == model::state_hash(m));
  CHECK(mir.page_bytes(4).empty());

  auto r = mir.sync();  // nothing new
  REQUIRE(r.ok());
  CHECK(*r == 0u);
  CHECK(mir.synced_epoch() == 100u);
}

TEST_CASE("mirror on an empty bus follows creations and writes", "[mirror]") {
  Bus bus;
  model::Model m;
  CpuMirror mir(bus);
  CHECK(mir.page_count() == 0u);
  CHECK(mir.synced_epoch() == 0u);
  REQUIRE(*bus.create_page(10, "x") == m.create(10));
  auto r = mir.sync();
  REQUIRE(r.ok());
  CHECK(*r == 0u);
  CHECK(mir.page_count() == 1u);
  CHECK(compare_mirror(mir, m).empty());
  std::vector<std::byte> v{std::byte{1}, std::byte{2}};
  REQUIRE(bus.write(0, 8, v).ok());
  m.write(0, 8, {1, 2});
  r = mir.sync();
  REQUIRE(r.ok());
  CHECK(*r == 1u);
  CHECK(compare_mirror(mir, m).empty());
}

TEST_CASE("mirror: random interleavings of writes, creations and syncs", "[mirror][property]") {
  Bus bus;
  model::Model m;
  model::Rng rng(0x3177002);
  REQUIRE(*bus.create_page(4096) == m.create(4096));
  CpuMirror mir(bus);
  uint64_t last_synced = 0;
  int syncs = 0;
  for (int op = 0; op < 3000; ++op) {
    unsigned what = static_cast<unsigned>(rng.below(100));
    if (what < 2) {
      uint64_t size = rng.chance(30) ? rng.between(1, 16) : (rng.chance(10) ? 65536 : rng.between(1, 9000));
      REQUIRE(*bus.create_page(size) == m.create(size));
    } else if (what < 90) {
      random_write(bus, m, rng, rng.chance(10) ? 5000 : 64);
    } else {
      auto r = mir.sync();
      REQUIRE(r.ok());
      ++syncs;
      INFO("op " << op);
      CHECK(*r == m.epoch - last_synced);  // every delta since the last sync
      last_synced = m.epoch;
      CHECK(mir.synced_epoch() == bus.epoch());
      INFO(compare_mirror(mir, m));
      REQUIRE(compare_mirror(mir, m).empty());
      REQUIRE(mir.state_hash() == bus.state_hash());
    }
  }
  REQUIRE(mir.sync().ok());
  CHECK(compare_mirror(mir, m).empty());
  CHECK(mir.state_hash() == model::state_hash(m));
  CHECK(mir.resyncs() == 0u);  // the 16 MiB ring never ran over
  CHECK(syncs > 100);
}

TEST_CASE("mirror: lagging behind a tiny ring resyncs and stays exact", "[mirror][property]") {
  Bus bus(with_tlog(64 << 10));
  REQUIRE(bus.tlog().capacity() == 65536u);
  model::Model m;
  model::Rng rng(0x3177003);
  for (uint64_t n : {uint64_t{1}, uint64_t{4096}, uint64_t{4097}, uint64_t{9000}})
    REQUIRE(*bus.create_page(n) == m.create(n));
  CpuMirror mir(bus);

  for (int round = 0; round < 40; ++round) {
    INFO("round " << round);
    // Odd rounds write far more than the ring holds, even rounds a little.
    bool flood = round % 2 == 1;
    int writes = flood ? 300 : static_cast<int>(rng.between(0, 20));
    for (int i = 0; i < writes; ++i) random_write(bus, m, rng, flood ? 1000 : 100);
    if (rng.chance(20)) {
      uint64_t size = rng.between(1, 5000);
      REQUIRE(*bus.create_page(size) == m.create(size));
    }
    uint64_t before = mir.resyncs();
    auto r = mir.sync();
    REQUIRE(r.ok());
    CHECK(mir.synced_epoch() == bus.epoch());
    INFO(compare_mirror(mir, m));
    REQUIRE(compare_mirror(mir, m).empty());
    REQUIRE(mir.state_hash() == bus.state_hash());
    REQUIRE(mir.state_hash() == model::state_hash(m));
    if (flood) CHECK(mir.resyncs() == before + 1);  // ~300 KB of records: the ring ran over
    if (!flood && writes > 0 && mir.resyncs() == before) CHECK(*r == static_cast<uint64_t>(writes));
    if (!flood) CHECK(mir.resyncs() == before);  // a few small writes fit the ring
  }
  CHECK(mir.resyncs() == 20u);
}

TEST_CASE("mirror follows derived deltas of the dependency graph", "[mirror]") {
  Bus bus;
  model::Model m;
  model::Rng rng(0x3177004);
  REQUIRE(*bus.create_page(128) == m.create(128));
  REQUIRE(*bus.create_page(128) == m.create(128));
  // Page 1 = page 0 reversed.
  REQUIRE(bus.add_dependency(0, 1, [](mmsb::UpdateContext& ctx) {
    auto src = ctx.source_bytes();
    std::vector<std::byte> img(src.rbegin(), src.rend());
    return ctx.assign(img);
  }).ok());
  CpuMirror mir(bus);
  for (int i = 0; i < 200; ++i) {
    uint64_t off = rng.below(128);
    std::vector<uint8_t> v = rng.bytes(rng.between(1, 128 - off));
    REQUIRE(bus.write(0, off, model::to_bytes(v)).ok());
    m.write(0, off, v);
    std::vector<uint8_t> rev(m.pages[0].bytes.rbegin(), m.pages[0].bytes.rend());
    m.assign(1, rev);
    if (i % 7 == 0) {
      REQUIRE(mir.sync().ok());
      INFO(compare_mirror(mir, m));
      REQUIRE(compare_mirror(mir, m).empty());
    }
  }
  REQUIRE(mir.sync().ok());
  CHECK(compare_mirror(mir, m).empty());
  CHECK(mir.synced_epoch() == bus.epoch());
}

TEST_CASE("mirror: sync() from an event callback is refused, not a deadlock", "[mirror]") {
  Bus bus;
  model::Model m;
  REQUIRE(*bus.create_page(16) == m.create(16));
  CpuMirror mir(bus);
  mmsb::Status in_callback;
  REQUIRE(bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied), [&](const mmsb::Event&) {
               in_callback = mir.sync().status();
             }).ok());
  REQUIRE(bus.write(0, 3, model::to_bytes({7})).ok());
  m.write(0, 3, {7});
  CHECK(in_callback.code() == mmsb::Code::kFailedPrecondition);
  CHECK(in_callback.message().find("CpuMirror::sync called from an event callback") != std::string::npos);
  // Outside the callback it catches up as usual.
  auto r = mir.sync();
  REQUIRE(r.ok());
  CHECK(*r == 1u);
  CHECK(compare_mirror(mir, m).empty());
}

TEST_CASE("mirror: made in an event callback, it copies the state after that delta", "[mirror]") {
  Bus bus;
  model::Model m;
  REQUIRE(*bus.create_page(16) == m.create(16));
  std::unique_ptr<CpuMirror> mir;
  REQUIRE(bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied), [&](const mmsb::Event&) {
               if (!mir) mir = std::make_unique<CpuMirror>(bus);  // no deadlock on the held lock
             }).ok());
  REQUIRE(bus.write(0, 3, model::to_bytes({7})).ok());
  m.write(0, 3, {7});
  REQUIRE(mir);
  CHECK(mir->synced_epoch() == 1u);
  CHECK(compare_mirror(*mir, m).empty());
  REQUIRE(bus.write(0, 4, model::to_bytes({8})).ok());
  m.write(0, 4, {8});
  auto r = mir->sync();
  REQUIRE(r.ok());
  CHECK(*r == 1u);
  CHECK(compare_mirror(*mir, m).empty());
}

TEST_CASE("a mirror whose bus is destroyed says so, and its copy stays readable", "[mirror]") {
  auto bus = std::make_unique<Bus>();
  model::Model m;
  model::Rng rng(0x60e);
  for (int p = 0; p < 3; ++p) REQUIRE(*bus->create_page(100 + p) == m.create(100 + p));
  for (int i = 0; i < 40; ++i) random_write(*bus, m, rng, 50);
  CpuMirror mir(*bus);
  bus.reset();  // e.g. a member declared after the mirror
  const auto r = mir.sync();
  REQUIRE(r.status().code() == mmsb::Code::kFailedPrecondition);
  CHECK(r.status().message().find("CpuMirror::sync: its bus was destroyed") != std::string::npos);
  INFO(compare_mirror(mir, m));
  CHECK(compare_mirror(mir, m).empty());
  CHECK(mir.state_hash() == model::state_hash(m));
}

TEST_CASE("attachments hear of their bus's end newest first -- detached ones do not", "[mirror]") {
  struct Probe final : mmsb::Bus::Attachment {
    std::vector<int>* order;
    int id;
    Bus* bus;
    uint64_t epoch_seen = ~uint64_t{0};
    Probe(std::vector<int>* o, int i, Bus* b) : order(o), id(i), bus(b) {}
    void bus_closing() noexcept override {
      order->push_back(id);
      epoch_seen = bus->epoch();  // the bus is still whole here
    }
  };
  std::vector<int> order;
  auto bus = std::make_unique<Bus>();
  REQUIRE(bus->create_page(8).ok());
  REQUIRE(bus->write(0, 0, std::vector<std::byte>(3, std::byte{1})).ok());
  Probe a(&order, 1, bus.get()), b(&order, 2, bus.get()), c(&order, 3, bus.get());
  bus->attach(&a);
  bus->attach(&b);
  bus->attach(&c);
  bus->detach(&b);
  {
    mmsb::BusLink gone_first(*bus);  // attaches and detaches itself
  }
  bus.reset();
  CHECK(order == std::vector<int>{3, 1});
  CHECK(a.epoch_seen == 1);
  CHECK(b.epoch_seen == ~uint64_t{0});
}
