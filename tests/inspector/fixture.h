// The inspector tests' recording: a few hand-made writes whose epochs, bytes
// and causes are known by construction (and checked against the bus's own
// epoch while recording), so the tests compare the inspector with this table,
// not with mmsb::replay's answers.
//
//   pages: 0 alpha (64 B), 1 beta (32 B), 2 gamma (8 B) = u64 sum of alpha's
//          bytes, 3 omega (4 B): omega[0] = ~gamma[0]; 4 late (16 B), created
//          at epoch 14
//   edges: alpha -> gamma -> omega
//
//   epoch  page   what                                   cause
//    1     alpha  [0,4) = "ABCD"                          -
//    2     gamma  sum 266                                 1
//    3     omega  [0,1) = ~0x0a                           2
//    4     beta   [10,12) = ee ee                         -
//    5     alpha  [16,20) = "WXYZ", [40,42) = 01 02       -
//    6     gamma  sum 623                                 5
//    7     omega  [0,1) = ~0x6f                           6
//    8     beta   [0,1) = 07, [10,12) = ee ee (unchanged)  -
//    9     alpha  [2,3) = "c"                             -
//   10     gamma  sum 655                                 9
//   11     omega  [0,1) = ~0x8f                           10
//   12     alpha  [60,64) = 09 09 09 09                   -
//   13     gamma  sum 691                                 12
//   14     omega  [0,1) = ~0xb3                           13
//   15     late   [0,2) = ab cd                           -
//
// Epoch 8 rewrites beta's bytes 10 and 11 with the values epoch 4 gave them:
// written, but not changed.
//
// Every step is flushed into its own frame, so truncating the segment
// leaves a readable prefix.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mmsb/bus.h"
#include "mmsb/capture/recorder.h"
#include "mmsb/delta.h"

namespace fixture {

inline constexpr mmsb::PageId kAlpha = 0, kBeta = 1, kGamma = 2, kOmega = 3, kLate = 4;
inline constexpr mmsb::Epoch kLast = 15;
inline constexpr mmsb::Epoch kLateCreated = 14;

// Alpha's bytes after each of its deltas (the reference for page contents).
inline std::vector<uint8_t> alpha_at(mmsb::Epoch e) {
  std::vector<uint8_t> a(64, 0);
  if (e >= 1) std::memcpy(a.data(), "ABCD", 4);
  if (e >= 5) {
    std::memcpy(a.data() + 16, "WXYZ", 4);
    a[40] = 1;
    a[41] = 2;
  }
  if (e >= 9) a[2] = 'c';
  if (e >= 12) std::memset(a.data() + 60, 9, 4);
  return a;
}

inline std::string make_recording(const std::filesystem::path& dir) {
  using namespace mmsb;
  auto fail = [](const std::string& what, const Status& s) { return what + ": " + s.to_string(); };
  Bus bus;
  auto a = bus.create_page(64, "alpha");
  auto b = bus.create_page(32, "beta");
  auto g = bus.create_page(8, "gamma");
  auto o = bus.create_page(4, "omega");
  if (!a.ok() || !b.ok() || !g.ok() || !o.ok()) return "create_page failed";
  capture::RecorderOptions opt;
  opt.labels = {{"fixture", "inspector"}};
  opt.snapshot_every_deltas = 6;
  auto rec = capture::Recorder::start(bus, dir, opt);
  if (!rec.ok()) return fail("Recorder::start", rec.status());
  auto recorder = std::move(rec).value();
  Status s = bus.add_dependency(*a, *g, [](UpdateContext& ctx) {
    uint64_t sum = 0;
    for (std::byte x : ctx.source_bytes()) sum += std::to_integer<uint8_t>(x);
    return ctx.assign(std::as_bytes(std::span(&sum, 1)));
  });
  if (!s.ok()) return fail("add_dependency", s);
  s = bus.add_dependency(*g, *o, [](UpdateContext& ctx) {
    const std::byte v = ~ctx.source_bytes()[0];
    return ctx.write(0, std::span(&v, 1));
  });
  if (!s.ok()) return fail("add_dependency", s);

  auto bytes = [](std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int x : v) out.push_back(static_cast<std::byte>(x));
    return out;
  };
  auto step = [&](const Status& st, Epoch expect) -> std::string {
    if (!st.ok()) return fail("write", st);
    if (bus.epoch() != expect)
      return "the bus is at epoch " + std::to_string(bus.epoch()) + ", the fixture expects " + std::to_string(expect);
    const Status f = recorder->flush();
    return f.ok() ? std::string() : fail("flush", f);
  };
  std::string err;
  if (!(err = step(bus.write(*a, 0, bytes({'A', 'B', 'C', 'D'})), 3)).empty()) return err;
  if (!(err = step(bus.write(*b, 10, bytes({0xee, 0xee})), 4)).empty()) return err;
  {
    DeltaBuilder db(64);
    const auto w = bytes({'W', 'X', 'Y', 'Z'}), v = bytes({1, 2});
    if (!db.write(16, w).ok() || !db.write(40, v).ok()) return "DeltaBuilder failed";
    auto info = bus.info(*a);
    if (!info.ok()) return fail("info", info.status());
    const Delta d = db.build(*a, info->version);
    if (!(err = step(bus.apply(d.view()), 7)).empty()) return err;
  }
  {
    DeltaBuilder db(32);
    const auto seven = bytes({7}), same = bytes({0xee, 0xee});
    if (!db.write(0, seven).ok() || !db.write(10, same).ok()) return "DeltaBuilder failed";
    auto info = bus.info(*b);
    if (!info.ok()) return fail("info", info.status());
    const Delta d = db.build(*b, info->version);
    if (!(err = step(bus.apply(d.view()), 8)).empty()) return err;
  }
  if (!(err = step(bus.write(*a, 2, bytes({'c'})), 11)).empty()) return err;
  if (!(err = step(bus.write(*a, 60, bytes({9, 9, 9, 9})), 14)).empty()) return err;
  auto late = bus.create_page(16, "late");
  if (!late.ok()) return fail("create_page", late.status());
  if (!(err = step(bus.write(*late, 0, bytes({0xab, 0xcd})), 15)).empty()) return err;
  const Status st = recorder->stop();
  return st.ok() ? std::string() : fail("Recorder::stop", st);
}

}  // namespace fixture
