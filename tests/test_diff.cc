// The diff engine, checked against runs of differing bytes found with a plain
// byte loop (model::diff_runs).
#include <catch2/catch.hpp>

#include <vector>

#include "engine_model.h"
#include "mmsb/diff.h"

using mmsb::Code;
using mmsb::Delta;

namespace {

// Checks diff(old, new) against the byte-loop expectation (REQUIREs, so a big
// loop stops at the first wrong case).
void check_diff(const std::vector<uint8_t>& oldv, const std::vector<uint8_t>& newv,
                const char* what) {
  std::vector<std::byte> ob = model::to_bytes(oldv), nb = model::to_bytes(newv);
  std::vector<model::Run> want = model::diff_runs(oldv, newv);
  INFO(what << ": size " << oldv.size());

  auto r = mmsb::diff(6, 41, ob, nb);
  REQUIRE(r.ok());
  const Delta& d = *r;
  CHECK(d.page == 6u);
  CHECK(d.base_version == 41u);
  REQUIRE(model::to_runs(d.ranges) == want);
  REQUIRE(model::to_u8(d.bytes) == model::gather(newv, want));
  CHECK(d.empty() == want.empty());

  // Applying the diff onto a copy of old gives new.
  if (!d.empty()) {
    REQUIRE(mmsb::validate(d.view(), oldv.size()).ok());
    std::vector<std::byte> page = ob;
    mmsb::apply_unchecked(page.data(), d.view());
    REQUIRE(model::same(page, newv));
  }
}

}  // namespace

TEST_CASE("diff: every difference pattern of small pages", "[diff][property]") {
  // All 2^n subsets of differing positions for n <= 12: covers a whole 8-byte
  // word plus a tail, runs touching both edges, every gap length.
  model::Rng rng(0xd1ff0001);
  for (size_t n = 1; n <= 12; ++n) {
    std::vector<uint8_t> oldv = rng.bytes(n);
    for (uint32_t pattern = 0; pattern < (1u << n); ++pattern) {
      std::vector<uint8_t> newv = oldv;
      for (size_t i = 0; i < n; ++i)
        if (pattern & (1u << i)) newv[i] = static_cast<uint8_t>(oldv[i] ^ rng.between(1, 255));
      check_diff(oldv, newv, "exhaustive");
    }
  }
}

TEST_CASE("diff: one run at every start and end across word and block boundaries",
          "[diff][property]") {
  model::Rng rng(0xd1ff0002);
  const size_t n = 70;  // two 32-byte blocks and a 6-byte tail
  std::vector<uint8_t> oldv = rng.bytes(n);
  for (size_t a = 0; a < n; ++a) {
    for (size_t b = a + 1; b <= n; ++b) {
      std::vector<uint8_t> newv = oldv;
      for (size_t i = a; i < b; ++i) newv[i] = static_cast<uint8_t>(~oldv[i]);
      check_diff(oldv, newv, "one run");
    }
  }
}

TEST_CASE("diff: two runs separated by a gap of every length", "[diff][property]") {
  model::Rng rng(0xd1ff0003);
  const size_t n = 100;
  std::vector<uint8_t> oldv = rng.bytes(n);
  for (size_t a = 0; a < 40; ++a) {
    for (size_t gap = 1; gap < 40; ++gap) {
      std::vector<uint8_t> newv = oldv;
      newv[a] ^= 0x01;
      newv[a + 1] ^= 0x80;
      newv[a + 1 + gap + 1] ^= 0x10;  // gap bytes at a+2 .. a+1+gap stay equal
      check_diff(oldv, newv, "two runs");
    }
  }
}

TEST_CASE("diff: special shapes on many sizes", "[diff][property]") {
  model::Rng rng(0xd1ff0004);
  std::vector<size_t> sizes;
  for (size_t n = 1; n <= 80; ++n) sizes.push_back(n);
  for (size_t n : {127, 128, 129, 255, 256, 257, 1000, 4095, 4096, 4097, 65535, 65536}) sizes.push_back(n);

  for (size_t n : sizes) {
    std::vector<uint8_t> oldv = rng.bytes(n);

    check_diff(oldv, oldv, "all equal");

    std::vector<uint8_t> all = oldv;
    for (auto& b : all) b = static_cast<uint8_t>(b ^ 0x5A);
    check_diff(oldv, all, "all different");

    for (size_t pos : {size_t{0}, n - 1, n / 2, std::min(n - 1, size_t{7}), std::min(n - 1, size_t{8}),
                       std::min(n - 1, size_t{31}), std::min(n - 1, size_t{32})}) {
      std::vector<uint8_t> one = oldv;
      one[pos] ^= 0x40;
      check_diff(oldv, one, "single byte");
    }

    std::vector<uint8_t> edges = oldv;
    edges.front() ^= 1;
    edges.back() ^= 1;
    check_diff(oldv, edges, "both edges");

    // Every other byte differs: the worst case for run boundaries.
    std::vector<uint8_t> alt = oldv;
    for (size_t i = 0; i < n; i += 2) alt[i] ^= 0xFF;
    check_diff(oldv, alt, "alternating");

    // A single bit in the high and low byte of each 8-byte word.
    std::vector<uint8_t> words = oldv;
    for (size_t i = 0; i < n; i += 8) {
      words[i] ^= 0x01;
      if (i + 7 < n) words[i + 7] ^= 0x80;
    }
    check_diff(oldv, words, "word edges");
  }
}

TEST_CASE("diff: random sparse and bursty changes", "[diff][property]") {
  model::Rng rng(0xd1ff0005);
  for (int iter = 0; iter < 1500; ++iter) {
    size_t n = iter % 3 == 0 ? rng.between(1, 64) : rng.between(1, 5000);
    std::vector<uint8_t> oldv = rng.bytes(n);
    std::vector<uint8_t> newv = oldv;
    unsigned style = static_cast<unsigned>(rng.below(3));
    if (style == 0) {
      for (auto& b : newv)
        if (rng.chance(3)) b = rng.byte();  // may equal the old value: still no diff then
    } else if (style == 1) {
      int bursts = static_cast<int>(rng.between(1, 6));
      for (int k = 0; k < bursts; ++k) {
        size_t a = rng.below(n), len = rng.between(1, 40);
        for (size_t i = a; i < n && i < a + len; ++i) newv[i] = rng.byte();
      }
    } else {
      for (auto& b : newv)
        if (rng.chance(60)) b = static_cast<uint8_t>(b + 1);
    }
    check_diff(oldv, newv, "random");
  }
}

TEST_CASE("diff_into clears what the delta held before", "[diff]") {
  model::Rng rng(0xd1ff0006);
  Delta out;
  for (int iter = 0; iter < 200; ++iter) {
    size_t n = rng.between(1, 300);
    std::vector<uint8_t> oldv = rng.bytes(n), newv = oldv;
    for (auto& b : newv)
      if (rng.chance(iter % 2 ? 30 : 1)) b ^= 0x33;
    std::vector<model::Run> want = model::diff_runs(oldv, newv);
    REQUIRE(mmsb::diff_into(model::to_bytes(oldv), model::to_bytes(newv), out).ok());
    INFO("iter " << iter);
    REQUIRE(model::to_runs(out.ranges) == want);
    REQUIRE(model::to_u8(out.bytes) == model::gather(newv, want));
  }
}

TEST_CASE("diff refuses spans of different sizes", "[diff]") {
  std::vector<std::byte> a(100), b(101);
  auto r = mmsb::diff(0, 0, a, b);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);

  Delta out;
  CHECK(mmsb::diff_into(a, b, out).code() == Code::kInvalidArgument);
  CHECK(mmsb::diff_into(b, a, out).code() == Code::kInvalidArgument);
  std::vector<std::byte> empty;
  CHECK(mmsb::diff_into(empty, a, out).code() == Code::kInvalidArgument);
}

TEST_CASE("diff of two empty spans is an empty delta", "[diff]") {
  std::vector<std::byte> a, b;
  auto r = mmsb::diff(0, 0, a, b);
  REQUIRE(r.ok());
  CHECK(r->empty());
  CHECK(r->bytes.empty());
}
