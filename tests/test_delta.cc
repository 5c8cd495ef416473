// Deltas: validate(), Delta construction helpers, DeltaBuilder, apply_unchecked.
// Expectations come from the byte-loop model in engine_model.h or are written
// out by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "engine_model.h"
#include "mmsb/delta.h"

using mmsb::Code;
using mmsb::Delta;
using mmsb::DeltaBuilder;
using mmsb::DeltaView;
using mmsb::Range;

namespace {

using model::B;

DeltaView view_of(mmsb::PageId page, const std::vector<Range>& ranges,
                  const std::vector<std::byte>& bytes) {
  DeltaView d;
  d.page = page;
  d.base_version = 0;
  d.ranges = ranges;
  d.bytes = bytes;
  return d;
}

bool mentions(const mmsb::Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("validate accepts well-formed deltas", "[delta]") {
  std::vector<std::byte> five = B({1, 2, 3, 4, 5});
  SECTION("one range in the middle") {
    std::vector<Range> r{{10, 5}};
    CHECK(mmsb::validate(view_of(0, r, five), 100).ok());
  }
  SECTION("adjacent ranges are allowed") {
    std::vector<Range> r{{0, 2}, {2, 3}};
    CHECK(mmsb::validate(view_of(0, r, five), 5).ok());
  }
  SECTION("a range that ends exactly at the page end") {
    std::vector<Range> r{{95, 5}};
    CHECK(mmsb::validate(view_of(0, r, five), 100).ok());
  }
  SECTION("a one-byte page") {
    std::vector<Range> r{{0, 1}};
    std::vector<std::byte> one = B({7});
    CHECK(mmsb::validate(view_of(0, r, one), 1).ok());
  }
}

TEST_CASE("validate rejects malformed deltas and names the page", "[delta]") {
  const mmsb::PageId page = 4242;
  const std::string id = "4242";
  std::vector<std::byte> five = B({1, 2, 3, 4, 5});

  SECTION("empty delta") {
    std::vector<Range> r;
    std::vector<std::byte> none;
    auto s = mmsb::validate(view_of(page, r, none), 100);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(mentions(s, id));
  }
  SECTION("zero-length range") {
    std::vector<Range> r{{0, 2}, {20, 0}, {30, 3}};
    auto s = mmsb::validate(view_of(page, r, five), 100);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(mentions(s, id));
  }
  SECTION("unsorted ranges") {
    std::vector<Range> r{{30, 3}, {0, 2}};
    auto s = mmsb::validate(view_of(page, r, five), 100);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(mentions(s, id));
  }
  SECTION("overlapping ranges") {
    std::vector<Range> r{{0, 3}, {2, 2}};
    auto s = mmsb::validate(view_of(page, r, five), 100);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(mentions(s, id));
  }
  SECTION("a range contained in the previous one") {
    std::vector<Range> r{{0, 4}, {1, 1}};
    auto s = mmsb::validate(view_of(page, r, five), 100);
    CHECK(s.code() == Code::kInvalidArgument);
  }
  SECTION("fewer bytes than the ranges cover") {
    std::vector<Range> r{{0, 6}};
    auto s = mmsb::validate(view_of(page, r, five), 100);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(mentions(s, id));
  }
  SECTION("more bytes than the ranges cover") {
    std::vector<Range> r{{0, 4}};
    auto s = mmsb::validate(view_of(page, r, five), 100);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(mentions(s, id));
  }
  SECTION("range past the page end") {
    std::vector<Range> r{{96, 5}};
    auto s = mmsb::validate(view_of(page, r, five), 100);
    CHECK(s.code() == Code::kOutOfRange);
    CHECK(mentions(s, id));
  }
  SECTION("range starting at the page end") {
    std::vector<Range> r{{100, 5}};
    auto s = mmsb::validate(view_of(page, r, five), 100);
    CHECK(s.code() == Code::kOutOfRange);
  }
  SECTION("range whose end does not fit 32 bits") {
    std::vector<Range> r{{0xFFFFFFFEu, 5}};
    auto s = mmsb::validate(view_of(page, r, five), mmsb::kMaxPageSize);
    CHECK(s.code() == Code::kOutOfRange);
  }
}

TEST_CASE("Delta::from_write is one range with the given bytes", "[delta]") {
  std::vector<std::byte> v = B({9, 8, 7});
  Delta d = Delta::from_write(3, 17, 40, v);
  CHECK(d.page == 3u);
  CHECK(d.base_version == 17u);
  CHECK(d.epoch == 0u);
  CHECK(d.cause == mmsb::kNoCause);
  REQUIRE(d.ranges.size() == 1);
  CHECK(d.ranges[0] == Range{40, 3});
  CHECK(d.bytes == v);
  CHECK(d.changed_bytes() == 3u);
  CHECK_FALSE(d.empty());
  CHECK(d.view().new_version() == 18u);
  CHECK_FALSE(d.view().derived());
}

TEST_CASE("Delta::from_mask takes exactly the masked bytes as maximal runs", "[delta][property]") {
  model::Rng rng(0x5eed0001);
  const size_t sizes[] = {1, 2, 7, 8, 9, 63, 64, 65, 4096, 4097};
  for (size_t size : sizes) {
    for (int iter = 0; iter < 60; ++iter) {
      std::vector<uint8_t> mask(size, 0);
      switch (iter % 5) {
        case 0:  // sparse
          for (auto& m : mask) m = rng.chance(5) ? static_cast<uint8_t>(rng.between(1, 255)) : 0;
          break;
        case 1:  // dense
          for (auto& m : mask) m = rng.chance(80) ? 1 : 0;
          break;
        case 2:  // everything
          for (auto& m : mask) m = 0xFF;
          break;
        case 3:  // first and last byte only
          mask.front() = 1;
          mask.back() = 1;
          break;
        default:  // a few bursts
          for (int k = 0; k < 3; ++k) {
            size_t a = rng.below(size), len = rng.between(1, 20);
            for (size_t i = a; i < size && i < a + len; ++i) mask[i] = 2;
          }
      }
      std::vector<uint8_t> image = rng.bytes(size);
      auto r = Delta::from_mask(11, 5, mask, model::to_bytes(image));
      REQUIRE(r.ok());
      const Delta& d = *r;
      std::vector<model::Run> want = model::mask_runs(mask);
      INFO("size " << size << " iter " << iter);
      CHECK(d.page == 11u);
      CHECK(d.base_version == 5u);
      CHECK(model::to_runs(d.ranges) == want);
      CHECK(model::to_u8(d.bytes) == model::gather(image, want));
    }
  }
}

TEST_CASE("Delta::from_mask edge cases", "[delta]") {
  SECTION("an all-zero mask gives an empty delta") {
    std::vector<uint8_t> mask(100, 0);
    std::vector<std::byte> img(100, std::byte{1});
    auto r = Delta::from_mask(0, 0, mask, img);
    REQUIRE(r.ok());
    CHECK(r->empty());
    CHECK(r->bytes.empty());
  }
  SECTION("mask and page of different sizes") {
    std::vector<uint8_t> mask(100, 1);
    std::vector<std::byte> img(99, std::byte{1});
    auto r = Delta::from_mask(0, 0, mask, img);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("Delta::append_run merges adjacent runs and keeps gaps", "[delta]") {
  Delta d;
  std::vector<std::byte> a = B({1, 2}), b = B({3}), c = B({4, 5, 6});
  d.append_run(10, a);
  d.append_run(12, b);  // adjacent: merged
  d.append_run(20, c);  // gap: new range
  REQUIRE(d.ranges.size() == 2);
  CHECK(d.ranges[0] == Range{10, 3});
  CHECK(d.ranges[1] == Range{20, 3});
  CHECK(d.bytes == B({1, 2, 3, 4, 5, 6}));
  CHECK(d.changed_bytes() == 6u);

  size_t cap = d.ranges.capacity();
  d.clear();
  CHECK(d.empty());
  CHECK(d.bytes.empty());
  CHECK(d.ranges.capacity() == cap);
}

TEST_CASE("Delta copies a view into owned storage", "[delta]") {
  std::vector<Range> r{{1, 2}, {5, 1}};
  std::vector<std::byte> bytes = B({10, 11, 12});
  DeltaView v;
  v.page = 7;
  v.base_version = 3;
  v.epoch = 99;
  v.cause = 42;
  v.ranges = r;
  v.bytes = bytes;
  Delta d(v);
  r[0].offset = 50;  // the copy must not alias the source
  bytes[0] = std::byte{0};
  CHECK(d.page == 7u);
  CHECK(d.base_version == 3u);
  CHECK(d.epoch == 99u);
  CHECK(d.cause == 42u);
  REQUIRE(d.ranges.size() == 2);
  CHECK(d.ranges[0] == Range{1, 2});
  CHECK(d.ranges[1] == Range{5, 1});
  CHECK(d.bytes == B({10, 11, 12}));
  CHECK(d.view().derived());
}

TEST_CASE("apply_unchecked writes exactly the delta's bytes", "[delta][property]") {
  model::Rng rng(0x5eed0002);
  for (size_t size : {size_t{1}, size_t{13}, size_t{4096}, size_t{4097}}) {
    std::vector<uint8_t> page = rng.bytes(size);
    std::vector<std::byte> real = model::to_bytes(page);
    for (int iter = 0; iter < 200; ++iter) {
      std::vector<uint8_t> mask(size);
      for (auto& m : mask) m = rng.chance(10) ? 1 : 0;
      mask[rng.below(size)] = 1;
      std::vector<uint8_t> image = rng.bytes(size);
      auto d = Delta::from_mask(0, 0, mask, model::to_bytes(image));
      REQUIRE(d.ok());
      REQUIRE(mmsb::validate(d->view(), size).ok());
      mmsb::apply_unchecked(real.data(), d->view());
      for (size_t i = 0; i < size; ++i)
        if (mask[i]) page[i] = image[i];
      INFO("size " << size << " iter " << iter << " " << model::describe_mismatch(real, page));
      REQUIRE(model::same(real, page));
    }
  }
}

TEST_CASE("DeltaBuilder: later writes win, ranges are the maximal written runs",
          "[delta][property]") {
  model::Rng rng(0x5eed0003);
  for (size_t size : {size_t{1}, size_t{8}, size_t{100}, size_t{4096}, size_t{4097}}) {
    DeltaBuilder builder(size);
    for (int iter = 0; iter < 150; ++iter) {
      std::vector<uint8_t> written(size, 0), values(size, 0);
      int writes = static_cast<int>(rng.between(1, 12));
      for (int w = 0; w < writes; ++w) {
        size_t off = rng.below(size);
        size_t len = rng.between(1, std::min<size_t>(size - off, rng.chance(20) ? size : 16));
        std::vector<uint8_t> v = rng.bytes(len);
        REQUIRE(builder.write(off, model::to_bytes(v)).ok());
        for (size_t i = 0; i < len; ++i) {
          written[off + i] = 1;
          values[off + i] = v[i];
        }
      }
      CHECK_FALSE(builder.empty());
      Delta d = builder.build(2, 9);
      CHECK(builder.empty());  // reset after build
      std::vector<model::Run> want = model::mask_runs(written);
      INFO("size " << size << " iter " << iter);
      CHECK(d.page == 2u);
      CHECK(d.base_version == 9u);
      CHECK(model::to_runs(d.ranges) == want);
      CHECK(model::to_u8(d.bytes) == model::gather(values, want));
      CHECK(mmsb::validate(d.view(), size).ok());
    }
  }
}

TEST_CASE("DeltaBuilder: a write that does not fit is refused and not recorded", "[delta]") {
  DeltaBuilder b(10);
  CHECK(b.empty());
  std::vector<std::byte> three = B({1, 2, 3});
  CHECK(b.write(8, three).code() == Code::kOutOfRange);
  CHECK(b.write(10, three).code() == Code::kOutOfRange);
  CHECK(b.write(~uint64_t{0} - 1, three).code() == Code::kOutOfRange);  // offset + len wraps
  CHECK(b.empty());
  REQUIRE(b.write(7, three).ok());  // exactly fits
  CHECK(b.write(9, three).code() == Code::kOutOfRange);
  Delta d = b.build(0, 0);
  REQUIRE(d.ranges.size() == 1);
  CHECK(d.ranges[0] == Range{7, 3});
  CHECK(d.bytes == three);
}

TEST_CASE("DeltaBuilder: an overwrite inside an earlier write keeps one range", "[delta]") {
  DeltaBuilder b(32);
  REQUIRE(b.write(4, B({1, 1, 1, 1, 1, 1})).ok());  // [4, 10)
  REQUIRE(b.write(6, B({9, 9})).ok());              // overwrites 6, 7
  REQUIRE(b.write(10, B({5})).ok());                // adjacent: same run
  REQUIRE(b.write(20, B({7})).ok());                // separate run
  Delta d = b.build(1, 0);
  REQUIRE(d.ranges.size() == 2);
  CHECK(d.ranges[0] == Range{4, 7});
  CHECK(d.ranges[1] == Range{20, 1});
  CHECK(d.bytes == B({1, 1, 9, 9, 1, 1, 5, 7}));
}
