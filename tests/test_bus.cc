// The Bus: pages, writes and deltas, validation, hashes -- all checked against
// the plain byte-array model of engine_model.h.
#include <catch2/catch.hpp>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "engine_model.h"
#include "mmsb/arena.h"
#include "mmsb/bus.h"
#include "mmsb/diff.h"
#include "mmsb/hash.h"

using mmsb::Bus;
using mmsb::BusOptions;
using mmsb::Code;
using mmsb::Delta;
using mmsb::DeltaView;
using mmsb::PageId;
using mmsb::Range;

namespace {

using model::B;

// "" when every page of the bus equals the model (bytes, size, version,
// last epoch) and the epochs agree; otherwise what differs first.
std::string compare_all(const Bus& bus, const model::Model& m) {
  if (bus.epoch() != m.epoch)
    return "epoch " + std::to_string(bus.epoch()) + " want " + std::to_string(m.epoch);
  if (bus.page_count() != m.pages.size())
    return "page_count " + std::to_string(bus.page_count()) + " want " + std::to_string(m.pages.size());
  for (PageId id = 0; id < m.pages.size(); ++id) {
    const model::Page& p = m.pages[id];
    std::string d = model::describe_mismatch(bus.page_bytes(id), p.bytes);
    if (!d.empty()) return "page " + std::to_string(id) + ": " + d;
    auto info = bus.info(id);
    if (!info.ok()) return "info(" + std::to_string(id) + ") failed: " + info.status().to_string();
    if (info->version != p.version)
      return "page " + std::to_string(id) + " version " + std::to_string(info->version) + " want " +
             std::to_string(p.version);
    if (info->last_epoch != p.last_epoch)
      return "page " + std::to_string(id) + " last_epoch " + std::to_string(info->last_epoch) +
             " want " + std::to_string(p.last_epoch);
    if (info->size != p.bytes.size()) return "page " + std::to_string(id) + " size";
  }
  return {};
}


bool mentions(const mmsb::Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

}  // namespace

// ---------------------------------------------------------------- pages ----

TEST_CASE("create_page: dense ids, names, info fields, zero-filled", "[bus][pages]") {
  Bus bus;
  auto a = bus.create_page(100, "alpha");
  REQUIRE(a.ok());
  CHECK(*a == 0u);
  auto b = bus.create_page(1);
  REQUIRE(b.ok());
  CHECK(*b == 1u);
  auto c = bus.create_page();  // default size
  REQUIRE(c.ok());
  CHECK(*c == 2u);
  CHECK(bus.page_count() == 3u);
  CHECK(bus.epoch() == 0u);

  CHECK(bus.page_bytes(0).size() == 100u);
  CHECK(bus.page_bytes(1).size() == 1u);
  CHECK(bus.page_bytes(2).size() == mmsb::kDefaultPageSize);
  for (PageId id = 0; id < 3; ++id) {
    bool zero = true;
    for (std::byte x : bus.page_bytes(id)) zero = zero && x == std::byte{0};
    CHECK(zero);
  }

  auto info = bus.info(0);
  REQUIRE(info.ok());
  CHECK(info->id == 0u);
  CHECK(info->size == 100u);
  CHECK(info->name == "alpha");
  CHECK(info->version == 0u);
  CHECK(info->created_epoch == 0u);
  CHECK(info->last_epoch == 0u);
  CHECK(bus.info(1)->name.empty());

  // Write three deltas, then create a page: it records the epoch it was born at.
  mmsb::Epoch e = 0;
  REQUIRE(bus.write(0, 10, B({1, 2}), &e).ok());
  CHECK(e == 1u);
  REQUIRE(bus.write(0, 99, B({3}), &e).ok());
  CHECK(e == 2u);
  REQUIRE(bus.write(1, 0, B({4}), &e).ok());
  CHECK(e == 3u);
  auto d = bus.create_page(4097, "delta");
  REQUIRE(d.ok());
  CHECK(*d == 3u);
  CHECK(bus.epoch() == 3u);  // creating a page is not a delta
  info = bus.info(3);
  REQUIRE(info.ok());
  CHECK(info->created_epoch == 3u);
  CHECK(info->version == 0u);
  CHECK(info->last_epoch == 0u);
  CHECK(info->size == 4097u);

  info = bus.info(0);
  CHECK(info->version == 2u);
  CHECK(info->last_epoch == 2u);
  info = bus.info(1);
  CHECK(info->version == 1u);
  CHECK(info->last_epoch == 3u);
}

TEST_CASE("find by name -- duplicate and unknown names", "[bus][pages]") {
  Bus bus;
  REQUIRE(bus.create_page(10, "a").ok());
  REQUIRE(bus.create_page(10).ok());
  REQUIRE(bus.create_page(10, "b").ok());
  REQUIRE(bus.create_page(10).ok());  // several unnamed pages are fine
  CHECK(bus.page_count() == 4u);

  auto fa = bus.find("a");
  REQUIRE(fa.ok());
  CHECK(*fa == 0u);
  auto fb = bus.find("b");
  REQUIRE(fb.ok());
  CHECK(*fb == 2u);

  auto dup = bus.create_page(20, "b");
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.status().code() == Code::kAlreadyExists);
  CHECK(bus.page_count() == 4u);
  CHECK(*bus.find("b") == 2u);
  CHECK(bus.page_bytes(4).empty());

  auto missing = bus.find("nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK_FALSE(bus.find("").ok());  // "" means unnamed, never a page's name

  auto next = bus.create_page(5, "c");  // ids stay dense after a refusal
  REQUIRE(next.ok());
  CHECK(*next == 4u);
}

TEST_CASE("unknown page ids", "[bus][pages]") {
  Bus bus;
  REQUIRE(bus.create_page(16).ok());
  CHECK(bus.info(1).status().code() == Code::kNotFound);
  CHECK(bus.info(mmsb::kNoPage).status().code() == Code::kNotFound);
  CHECK(bus.page_bytes(1).empty());
  CHECK(bus.page_bytes(mmsb::kNoPage).empty());
  std::vector<std::byte> out(4);
  CHECK(bus.read(7, 0, out).code() == Code::kNotFound);
  std::vector<std::byte> copy;
  CHECK(bus.copy_page(7, &copy).code() == Code::kNotFound);
  CHECK(bus.page_hash(7) == 0u);
  auto s = bus.write(777, 0, B({1}));
  CHECK(s.code() == Code::kNotFound);
  CHECK(mentions(s, "777"));
  CHECK(bus.epoch() == 0u);
}

TEST_CASE("a page larger than any 32-bit offset is refused", "[bus][pages]") {
  Bus bus;
  auto r = bus.create_page(mmsb::kMaxPageSize + 1);
  CHECK_FALSE(r.ok());
  CHECK(bus.page_count() == 0u);
}

TEST_CASE("page memory never moves while many pages are created", "[bus][pages]") {
  Bus bus;
  model::Model m;
  model::Rng rng(0xb05b0001);
  std::vector<const std::byte*> where;
  // Cross several slot chunks (1024 pages each) and arena chunks (64 MiB),
  // with one page bigger than a chunk (it gets a mapping of its own).
  for (int i = 0; i < 2600; ++i) {
    uint64_t size = i == 1500 ? (uint64_t{70} << 20) : rng.between(1, 9000);
    auto id = bus.create_page(size, i % 3 == 0 ? "page" + std::to_string(i) : std::string{});
    REQUIRE(id.ok());
    REQUIRE(*id == m.create(size));
    auto span = bus.page_bytes(*id);
    REQUIRE(span.size() == size);
    where.push_back(span.data());
    // Mark the page so later allocations cannot silently reuse or clobber it.
    std::vector<uint8_t> v = rng.bytes(std::min<uint64_t>(size, 8));
    uint64_t off = size - v.size();
    mmsb::Epoch e = 0;
    REQUIRE(bus.write(*id, off, model::to_bytes(v), &e).ok());
    REQUIRE(e == m.write(*id, off, v));
  }
  // The big page was zero-filled.
  auto big = bus.page_bytes(1500);
  bool zero = true;
  for (size_t i = 0; i + 8 < big.size(); ++i) zero = zero && big[i] == std::byte{0};
  CHECK(zero);

  for (PageId id = 0; id < where.size(); ++id) {
    INFO("page " << id);
    REQUIRE(bus.page_bytes(id).data() == where[id]);
    REQUIRE(model::same(bus.page_bytes(id), m.pages[id].bytes));
  }
  CHECK(*bus.find("page2598") == 2598u);
  CHECK(compare_all(bus, m).empty());
}

TEST_CASE("MmapArena hands out aligned, zero-filled, disjoint blocks", "[bus][arena]") {
  mmsb::MmapArena arena(size_t{1} << 20);
  model::Rng rng(0xa7e40001);
  struct Block {
    std::byte* p;
    size_t n;
  };
  std::vector<Block> blocks;
  for (int i = 0; i < 300; ++i) {
    size_t n = i % 50 == 7 ? (size_t{3} << 20) : rng.between(1, 20000);
    auto r = arena.allocate(n);
    REQUIRE(r.ok());
    std::byte* p = *r;
    REQUIRE(reinterpret_cast<uintptr_t>(p) % mmsb::Arena::kAlignment == 0);
    bool zero = true;
    for (size_t k = 0; k < n; ++k) zero = zero && p[k] == std::byte{0};
    REQUIRE(zero);
    std::memset(p, i & 0xFF, n);  // fill: an overlapping block would clobber it
    blocks.push_back({p, n});
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    bool intact = true;
    for (size_t k = 0; k < blocks[i].n; ++k) intact = intact && blocks[i].p[k] == static_cast<std::byte>(i & 0xFF);
    INFO("block " << i);
    REQUIRE(intact);
  }
  size_t total = 0;
  for (auto& b : blocks) total += b.n;
  CHECK(arena.mapped_bytes() >= total);
}

// --------------------------------------------------------------- writes ----

TEST_CASE("write, read and copy_page agree with the model", "[bus]") {
  Bus bus;
  model::Model m;
  REQUIRE(*bus.create_page(50) == m.create(50));
  mmsb::Epoch e = 0;
  REQUIRE(bus.write(0, 0, B({1, 2, 3}), &e).ok());
  CHECK(e == m.write(0, 0, {1, 2, 3}));
  REQUIRE(bus.write(0, 47, B({7, 8, 9}), &e).ok());  // up to the last byte
  CHECK(e == m.write(0, 47, {7, 8, 9}));
  REQUIRE(bus.write(0, 2, B({5}), &e).ok());
  CHECK(e == m.write(0, 2, {5}));
  CHECK(e == 3u);
  CHECK(compare_all(bus, m).empty());

  std::vector<std::byte> out(4);
  REQUIRE(bus.read(0, 0, out).ok());
  CHECK(out == B({1, 2, 5, 0}));
  std::vector<std::byte> tail(3);
  REQUIRE(bus.read(0, 47, tail).ok());
  CHECK(tail == B({7, 8, 9}));
  std::vector<std::byte> copy;
  REQUIRE(bus.copy_page(0, &copy).ok());
  CHECK(model::same(copy, m.pages[0].bytes));

  std::vector<std::byte> past(4);
  CHECK(bus.read(0, 47, past).code() == Code::kOutOfRange);
  CHECK(bus.read(0, 51, tail).code() == Code::kOutOfRange);
  CHECK(bus.read(0, ~uint64_t{0}, tail).code() == Code::kOutOfRange);
}

TEST_CASE("write past the end is kOutOfRange and changes nothing", "[bus][errors]") {
  Bus bus;
  model::Model m;
  for (int i = 0; i < 6; ++i) REQUIRE(*bus.create_page(32) == m.create(32));
  REQUIRE(bus.write(5, 0, B({1, 1})).ok());
  m.write(5, 0, {1, 1});
  uint64_t head = bus.tlog().head();

  auto s = bus.write(5, 30, B({1, 2, 3}));
  CHECK(s.code() == Code::kOutOfRange);
  CHECK(mentions(s, "5"));
  CHECK(bus.write(5, 32, B({1})).code() == Code::kOutOfRange);
  CHECK(bus.write(5, ~uint64_t{0}, B({1})).code() == Code::kOutOfRange);
  CHECK(bus.write(5, uint64_t{1} << 32, B({1})).code() == Code::kOutOfRange);
  CHECK(bus.write(5, ~uint64_t{0} - 1, B({1, 2, 3})).code() == Code::kOutOfRange);
  CHECK(compare_all(bus, m).empty());
  CHECK(bus.tlog().head() == head);
}

TEST_CASE("an empty write is not a delta", "[bus][errors]") {
  Bus bus;
  REQUIRE(bus.create_page(8).ok());
  std::vector<std::byte> none;
  (void)bus.write(0, 0, none);  // whatever it returns, no delta is applied
  CHECK(bus.epoch() == 0u);
  CHECK(bus.info(0)->version == 0u);
}

TEST_CASE("apply: malformed deltas are refused, state and epoch untouched", "[bus][errors]") {
  Bus bus;
  model::Model m;
  // Page 11 is the target: its id is easy to spot in messages.
  for (int i = 0; i < 12; ++i) REQUIRE(*bus.create_page(i == 11 ? 100 : 8) == m.create(i == 11 ? 100 : 8));
  const PageId P = 11;
  for (int k = 0; k < 3; ++k) {
    REQUIRE(bus.write(P, 20 + k, B({k + 1})).ok());
    m.write(P, 20 + k, {static_cast<uint8_t>(k + 1)});
  }
  int events = 0;
  auto sub = bus.subscribe(mmsb::kAllEvents, [&](const mmsb::Event&) { ++events; });
  REQUIRE(sub.ok());
  const uint64_t head = bus.tlog().head();
  const uint64_t hash = bus.state_hash();

  auto attempt = [&](Delta d, Code want, const std::string& id_text) {
    mmsb::Epoch e = 12345;
    auto s = bus.apply(d.view(), &e);
    CHECK(s.code() == want);
    CHECK(mentions(s, id_text));
    CHECK(compare_all(bus, m).empty());
    CHECK(bus.tlog().head() == head);
    CHECK(bus.state_hash() == hash);
    CHECK(events == 0);
  };
  auto make = [&](std::vector<Range> ranges, std::vector<std::byte> bytes) {
    Delta d;
    d.page = P;
    d.base_version = 3;  // current: only the malformation is wrong
    d.ranges = std::move(ranges);
    d.bytes = std::move(bytes);
    return d;
  };

  SECTION("empty delta") { attempt(make({}, {}), Code::kInvalidArgument, "11"); }
  SECTION("unsorted ranges") {
    attempt(make({{50, 2}, {40, 2}}, B({1, 2, 3, 4})), Code::kInvalidArgument, "11");
  }
  SECTION("overlapping ranges") {
    attempt(make({{40, 3}, {42, 2}}, B({1, 2, 3, 4, 5})), Code::kInvalidArgument, "11");
  }
  SECTION("zero-length range") {
    attempt(make({{40, 2}, {60, 0}}, B({1, 2})), Code::kInvalidArgument, "11");
  }
  SECTION("bytes size mismatch") {
    attempt(make({{40, 2}}, B({1, 2, 3})), Code::kInvalidArgument, "11");
    attempt(make({{40, 4}}, B({1, 2, 3})), Code::kInvalidArgument, "11");
  }
  SECTION("range past the page end") {
    attempt(make({{98, 3}}, B({1, 2, 3})), Code::kOutOfRange, "11");
    attempt(make({{0, 1}, {0xFFFFFFFFu, 2}}, B({1, 2, 3})), Code::kOutOfRange, "11");
  }
  SECTION("a valid first range does not sneak through before a bad second one") {
    attempt(make({{0, 2}, {99, 5}}, B({9, 9, 1, 2, 3, 4, 5})), Code::kOutOfRange, "11");
  }
  SECTION("unknown page") {
    Delta d = make({{0, 1}}, B({1}));
    d.page = 4321;
    attempt(d, Code::kNotFound, "4321");
  }
  SECTION("stale base version is a conflict") {
    Delta d = make({{0, 1}}, B({1}));
    d.base_version = 2;
    attempt(d, Code::kConflict, "11");
    d.base_version = 0;
    attempt(d, Code::kConflict, "11");
  }
  SECTION("a base version from the future is a conflict") {
    Delta d = make({{0, 1}}, B({1}));
    d.base_version = 4;
    attempt(d, Code::kConflict, "11");
  }
  SECTION("after a refusal the right delta still applies at the next epoch") {
    Delta bad = make({{0, 1}}, B({1}));
    bad.base_version = 2;
    attempt(bad, Code::kConflict, "11");
    Delta good = make({{0, 1}, {99, 1}}, B({0xAA, 0xBB}));
    mmsb::Epoch e = 0;
    REQUIRE(bus.apply(good.view(), &e).ok());
    CHECK(e == m.apply(P, {{0, 1}, {99, 1}}, {0xAA, 0xBB}));
    CHECK(e == 4u);
    CHECK(compare_all(bus, m).empty());
    CHECK(events > 0);
  }
}

TEST_CASE("apply ignores the caller's epoch and cause fields", "[bus]") {
  Bus bus;
  model::Model m;
  REQUIRE(*bus.create_page(16) == m.create(16));
  Delta d = Delta::from_write(0, 0, 3, B({1, 2, 3}));
  d.epoch = 77;
  d.cause = 55;
  mmsb::Epoch e = 0;
  REQUIRE(bus.apply(d.view(), &e).ok());
  CHECK(e == m.write(0, 3, {1, 2, 3}));
  CHECK(e == 1u);
  CHECK(bus.info(0)->last_epoch == 1u);
  CHECK(compare_all(bus, m).empty());
}

TEST_CASE("assign writes only the differing bytes, or nothing", "[bus]") {
  Bus bus;
  model::Model m;
  REQUIRE(*bus.create_page(64) == m.create(64));
  std::vector<uint8_t> img(64, 0);
  img[3] = 1;
  img[63] = 2;
  mmsb::Epoch e = 99;
  REQUIRE(bus.assign(0, model::to_bytes(img), &e).ok());
  CHECK(e == m.assign(0, img));
  CHECK(e == 1u);
  e = 99;
  REQUIRE(bus.assign(0, model::to_bytes(img), &e).ok());  // identical: no delta
  CHECK(e == 0u);
  CHECK(m.assign(0, img) == 0u);
  CHECK(compare_all(bus, m).empty());

  std::vector<std::byte> wrong(63);
  CHECK(bus.assign(0, wrong).code() == Code::kInvalidArgument);
  CHECK(bus.assign(9, model::to_bytes(img)).code() == Code::kNotFound);
  CHECK(compare_all(bus, m).empty());
}

// ------------------------------------------------------- property test ----

TEST_CASE("random writes and deltas: bytes, versions and epochs match the model",
          "[bus][property]") {
  Bus bus;
  model::Model m;
  model::Rng rng(0xb05b0002);
  const uint64_t sizes[] = {1, 2, 7, 64, 4096, 4097, 65536, 1000};
  for (size_t i = 0; i < std::size(sizes); ++i) {
    auto id = bus.create_page(sizes[i], "p" + std::to_string(i));
    REQUIRE(id.ok());
    REQUIRE(*id == m.create(sizes[i], "p" + std::to_string(i)));
  }

  int counts[6] = {};
  for (int op = 0; op < 5000; ++op) {
    const PageId id = static_cast<PageId>(rng.below(m.pages.size()));
    const uint64_t n = m.pages[id].bytes.size();
    const uint64_t base = m.pages[id].version;
    const unsigned kind = static_cast<unsigned>(rng.below(6));
    INFO("op " << op << " kind " << kind << " page " << id << " size " << n);
    mmsb::Epoch e = 0;
    uint64_t want = 0;

    // A random write: short, to the edges, or the whole page.
    auto pick_write = [&](uint64_t& off, std::vector<uint8_t>& v) {
      unsigned shape = static_cast<unsigned>(rng.below(10));
      uint64_t len;
      if (shape == 0) {
        off = 0;
        len = n;
      } else if (shape == 1) {
        len = rng.between(1, std::min<uint64_t>(n, 33));
        off = n - len;
      } else {
        off = rng.below(n);
        len = rng.between(1, std::min<uint64_t>(n - off, 100));
      }
      v = rng.bytes(len);
    };

    switch (kind) {
      case 0: {  // Bus::write
        uint64_t off;
        std::vector<uint8_t> v;
        pick_write(off, v);
        REQUIRE(bus.write(id, off, model::to_bytes(v), &e).ok());
        want = m.write(id, off, v);
        break;
      }
      case 1: {  // Delta::from_write + apply
        uint64_t off;
        std::vector<uint8_t> v;
        pick_write(off, v);
        Delta d = Delta::from_write(id, base, static_cast<uint32_t>(off), model::to_bytes(v));
        REQUIRE(bus.apply(d.view(), &e).ok());
        want = m.write(id, off, v);
        break;
      }
      case 2: {  // Delta::from_mask + apply
        std::vector<uint8_t> mask(n, 0);
        unsigned pct = static_cast<unsigned>(rng.between(0, 30));
        for (auto& x : mask) x = rng.chance(pct) ? 1 : 0;
        mask[rng.below(n)] = 1;
        std::vector<uint8_t> image = rng.bytes(n);
        auto d = Delta::from_mask(id, base, mask, model::to_bytes(image));
        REQUIRE(d.ok());
        REQUIRE(bus.apply(d->view(), &e).ok());
        want = m.apply_mask(id, mask, image);
        break;
      }
      case 3: {  // DeltaBuilder + apply
        mmsb::DeltaBuilder b(n);
        std::vector<uint8_t> after = m.pages[id].bytes;
        int writes = static_cast<int>(rng.between(1, 6));
        for (int w = 0; w < writes; ++w) {
          uint64_t off;
          std::vector<uint8_t> v;
          pick_write(off, v);
          REQUIRE(b.write(off, model::to_bytes(v)).ok());
          for (size_t k = 0; k < v.size(); ++k) after[off + k] = v[k];
        }
        Delta d = b.build(id, base);
        REQUIRE(bus.apply(d.view(), &e).ok());
        // One delta; the bytes the builder covered take the last value.
        m.pages[id].bytes = after;
        ++m.pages[id].version;
        m.pages[id].last_epoch = ++m.epoch;
        want = m.epoch;
        break;
      }
      case 4: {  // diff of the model's old bytes vs a mutated copy, then apply
        std::vector<uint8_t> after = m.pages[id].bytes;
        int flips = static_cast<int>(rng.between(1, 20));
        for (int f = 0; f < flips; ++f) after[rng.below(n)] ^= static_cast<uint8_t>(rng.between(1, 255));
        auto d = mmsb::diff(id, base, model::to_bytes(m.pages[id].bytes), model::to_bytes(after));
        REQUIRE(d.ok());
        REQUIRE_FALSE(d->empty());
        REQUIRE(bus.apply(d->view(), &e).ok());
        want = m.assign(id, after);
        break;
      }
      default: {  // Bus::assign, sometimes with an identical image
        std::vector<uint8_t> after = m.pages[id].bytes;
        if (!rng.chance(10)) {
          int flips = static_cast<int>(rng.between(1, 20));
          for (int f = 0; f < flips; ++f) after[rng.below(n)] = rng.byte();
        }
        e = 12345;
        REQUIRE(bus.assign(id, model::to_bytes(after), &e).ok());
        want = m.assign(id, after);
        break;
      }
    }
    ++counts[kind];
    REQUIRE(e == want);
    REQUIRE(bus.epoch() == m.epoch);
    auto info = bus.info(id);
    REQUIRE(info.ok());
    REQUIRE(info->version == m.pages[id].version);
    REQUIRE(info->last_epoch == m.pages[id].last_epoch);
    INFO(model::describe_mismatch(bus.page_bytes(id), m.pages[id].bytes));
    REQUIRE(model::same(bus.page_bytes(id), m.pages[id].bytes));

    if (op % 250 == 0) {
      INFO(compare_all(bus, m));
      REQUIRE(compare_all(bus, m).empty());
      REQUIRE(bus.state_hash() == model::state_hash(m));
      for (PageId p = 0; p < m.pages.size(); ++p) {
        std::vector<std::byte> copy;
        REQUIRE(bus.copy_page(p, &copy).ok());
        REQUIRE(model::same(copy, m.pages[p].bytes));
        uint64_t off = rng.below(m.pages[p].bytes.size());
        uint64_t len = rng.between(1, m.pages[p].bytes.size() - off);
        std::vector<std::byte> slice(len);
        REQUIRE(bus.read(p, off, slice).ok());
        std::vector<uint8_t> want_slice(m.pages[p].bytes.begin() + off, m.pages[p].bytes.begin() + off + len);
        REQUIRE(model::same(slice, want_slice));
      }
    }
  }
  for (int c : counts) CHECK(c > 0);
  CHECK(compare_all(bus, m).empty());
  CHECK(bus.state_hash() == model::state_hash(m));
  CHECK(m.epoch > 4000u);  // sanity of the workload itself
}

// --------------------------------------------------------------- hashes ----

TEST_CASE("hash_bytes is XXH3-64 of the bytes", "[hash]") {
  model::Rng rng(0x4a5b0001);
  for (size_t n : {size_t{0}, size_t{1}, size_t{3}, size_t{16}, size_t{17}, size_t{128}, size_t{129},
                   size_t{240}, size_t{241}, size_t{4096}, size_t{100000}}) {
    std::vector<uint8_t> v = rng.bytes(n);
    INFO("n " << n);
    CHECK(mmsb::hash_bytes(model::to_bytes(v)) == XXH3_64bits(v.data(), v.size()));
  }
}

TEST_CASE("page_hash is the hash of the page's bytes", "[hash][bus]") {
  Bus bus;
  model::Model m;
  model::Rng rng(0x4a5b0002);
  for (uint64_t n : {uint64_t{1}, uint64_t{4096}, uint64_t{4097}, uint64_t{65536}})
    REQUIRE(*bus.create_page(n) == m.create(n));
  for (int i = 0; i < 400; ++i) {
    PageId id = static_cast<PageId>(rng.below(m.pages.size()));
    uint64_t n = m.pages[id].bytes.size();
    uint64_t off = rng.below(n);
    std::vector<uint8_t> v = rng.bytes(rng.between(1, std::min<uint64_t>(n - off, 50)));
    REQUIRE(bus.write(id, off, model::to_bytes(v)).ok());
    m.write(id, off, v);
    const std::vector<uint8_t>& bytes = m.pages[id].bytes;
    REQUIRE(bus.page_hash(id) == XXH3_64bits(bytes.data(), bytes.size()));
    REQUIRE(bus.page_hash(id) == mmsb::hash_bytes(model::to_bytes(bytes)));
  }
  CHECK(bus.state_hash() == model::state_hash(m));
}

TEST_CASE("state_hash: equal states hash equal whatever their history", "[hash][bus]") {
  Bus a, b;
  for (Bus* bus : {&a, &b}) {
    REQUIRE(bus->create_page(100).ok());
    REQUIRE(bus->create_page(5000).ok());
  }
  CHECK(a.state_hash() == b.state_hash());

  // a reaches the state in many deltas (some undone), b in one.
  REQUIRE(a.write(0, 10, B({9, 9, 9})).ok());
  REQUIRE(a.write(0, 10, B({0, 0, 0})).ok());
  REQUIRE(a.write(1, 4999, B({1})).ok());
  REQUIRE(a.write(0, 0, B({5})).ok());
  REQUIRE(b.write(0, 0, B({5})).ok());
  CHECK(a.state_hash() != b.state_hash());
  REQUIRE(b.write(1, 4999, B({1})).ok());
  CHECK(a.state_hash() == b.state_hash());
  CHECK(a.info(0)->version != b.info(0)->version);

  SECTION("one byte differs") {
    REQUIRE(b.write(1, 2500, B({0x80})).ok());
    CHECK(a.state_hash() != b.state_hash());
    CHECK(a.page_hash(1) != b.page_hash(1));
    CHECK(a.page_hash(0) == b.page_hash(0));
  }
  SECTION("one more page") {
    REQUIRE(b.create_page(1).ok());
    CHECK(a.state_hash() != b.state_hash());
  }
}

TEST_CASE("state_hash covers page sizes, not just the concatenated bytes", "[hash][bus]") {
  Bus a, b;
  REQUIRE(a.create_page(2).ok());
  REQUIRE(a.create_page(2).ok());
  REQUIRE(b.create_page(1).ok());
  REQUIRE(b.create_page(3).ok());
  CHECK(a.state_hash() != b.state_hash());
}

// --------------------------------------------------------------- status ----

TEST_CASE("Status and Result basics", "[status]") {
  mmsb::Status ok;
  CHECK(ok.ok());
  CHECK(ok.code() == Code::kOk);
  CHECK(ok.message().empty());
  CHECK(mmsb::Status::OK().ok());
  mmsb::Status bad(Code::kConflict, "page 3 moved on");
  CHECK_FALSE(bad.ok());
  CHECK(bad.code() == Code::kConflict);
  CHECK(bad.message() == "page 3 moved on");
  CHECK(bad.to_string().find("page 3 moved on") != std::string::npos);
  CHECK(bad.to_string().find(mmsb::code_name(Code::kConflict)) != std::string::npos);
  mmsb::Status copy = bad;
  CHECK(copy.code() == Code::kConflict);
  CHECK(copy.message() == bad.message());
  CHECK(mmsb::Status(Code::kOk, "ignored").ok());

  mmsb::Result<int> r(5);
  CHECK(r.ok());
  CHECK(*r == 5);
  mmsb::Result<int> e(mmsb::Status(Code::kNotFound, "x"));
  CHECK_FALSE(e.ok());
  CHECK(e.status().code() == Code::kNotFound);
  mmsb::Result<int> from_ok{mmsb::Status::OK()};  // a Result with neither value nor error
  CHECK_FALSE(from_ok.ok());
  CHECK(from_ok.status().code() == Code::kInvalidArgument);
}

TEST_CASE("a delta too big for the in-memory TLog is refused and changes nothing", "[bus][errors]") {
  BusOptions o;
  o.tlog_capacity = 64 << 10;  // records up to 32 KiB
  Bus bus(std::move(o));
  model::Model m;
  REQUIRE(*bus.create_page(65536) == m.create(65536));
  std::vector<std::byte> big(40000, std::byte{1});
  auto s = bus.write(0, 0, big);
  CHECK(s.code() == Code::kResourceExhausted);
  std::vector<std::byte> img(65536, std::byte{2});
  CHECK(bus.assign(0, img).code() == Code::kResourceExhausted);
  CHECK(compare_all(bus, m).empty());
  // A write that fits still works.
  std::vector<std::byte> fits(1000, std::byte{3});
  mmsb::Epoch e = 0;
  REQUIRE(bus.write(0, 100, fits, &e).ok());
  CHECK(e == m.write(0, 100, std::vector<uint8_t>(1000, 3)));
  CHECK(compare_all(bus, m).empty());
}
