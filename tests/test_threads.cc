// Concurrency: several writer threads, readers, a pinned TLog consumer and a
// mirror on other threads. Catch2 assertions are not thread-safe, so worker
// threads only record what they saw; the main thread asserts after join().
// Everything is tagged [threads] so the TSan build can run just these.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine_model.h"
#include "mmsb/bus.h"
#include "mmsb/mirror.h"

using mmsb::Bus;
using mmsb::BusOptions;
using mmsb::Code;
using mmsb::Epoch;
using mmsb::PageId;

namespace {

constexpr size_t kSlot = 64;  // one delta = one 8-byte value repeated 8 times
// Under TSan the race detector sees a torn read by itself: keep that run
// short. Elsewhere, big deltas and many of them make a torn read (a reader
// not excluded by the write lock) very likely to be observed.
#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif
#else
constexpr bool kTsan = false;
#endif
constexpr size_t kBig = kTsan ? 4096 : 16384;  // the common region: one value repeated

std::vector<uint8_t> pattern(uint64_t v, size_t len = kSlot) {
  std::vector<uint8_t> out(len);
  for (size_t k = 0; k < len; ++k) out[k] = static_cast<uint8_t>(v >> (8 * (k % 8)));
  return out;
}

// The value of a slot if its copies agree; sets *torn otherwise.
uint64_t slot_value(const std::byte* p, bool* torn, size_t len = kSlot) {
  uint64_t first;
  std::memcpy(&first, p, 8);
  for (size_t k = 8; k < len; k += 8) {
    uint64_t x;
    std::memcpy(&x, p + k, 8);
    if (x != first) *torn = true;
  }
  return first;
}

uint64_t le64(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v = 0;
  for (size_t k = 0; k < 8; ++k) v |= uint64_t{b[at + k]} << (8 * k);
  return v;
}

}  // namespace

TEST_CASE("threads: writers on own and shared pages, a reader never sees a torn delta",
          "[threads]") {
  const int kThreads = 4;
  const int kWrites = kTsan ? 500 : 1500;
  const size_t kOwnSize = 16 * kSlot;
  Bus bus;
  // Per-thread 64-byte slots, then a big common region every thread writes.
  const size_t kSharedSize = kThreads * kSlot + kBig;
  const PageId shared = *bus.create_page(kSharedSize, "shared");
  std::vector<PageId> own;
  for (int t = 0; t < kThreads; ++t) own.push_back(*bus.create_page(kOwnSize, "own" + std::to_string(t)));

  std::vector<Epoch> applied;  // filled by the callback, which runs under the bus lock
  REQUIRE(bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied),
                        [&](const mmsb::Event& e) { applied.push_back(e.epoch); })
              .ok());

  struct Result {
    std::vector<Epoch> epochs;
    std::vector<uint8_t> own_model = std::vector<uint8_t>(16 * kSlot, 0);
    uint64_t last_shared = 0;
    std::vector<std::pair<Epoch, uint64_t>> common;  // (epoch, value) of each common write
    int own_writes = 0, shared_writes = 0;
    Epoch max_shared_epoch = 0;
    std::string error;
  };
  std::vector<Result> results(kThreads);
  std::atomic<bool> done{false};
  std::atomic<int> started{0};  // start gate: all threads begin together
  auto gate = [&] {
    started.fetch_add(1);
    while (started.load() < kThreads + 1) std::this_thread::yield();
  };

  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      Result& r = results[t];
      model::Rng rng(0x7777000 + t);
      gate();
      for (int i = 1; i <= kWrites; ++i) {
        const uint64_t v = (uint64_t(t + 1) << 32) | uint64_t(i);
        std::vector<uint8_t> p = pattern(v);
        PageId page;
        uint64_t off;
        switch (i % 3) {
          case 0:
            page = own[t];
            off = rng.below(16) * kSlot;
            break;
          case 1:
            page = shared;
            off = t * kSlot;
            break;
          default:
            page = shared;
            off = kThreads * kSlot;
            p = pattern(v, kBig);
        }
        Epoch e = 0;
        auto s = bus.write(page, off, model::to_bytes(p), &e);
        if (!s.ok()) {
          r.error = s.to_string();
          return;
        }
        r.epochs.push_back(e);
        if (page == own[t]) {
          for (size_t k = 0; k < kSlot; ++k) r.own_model[off + k] = p[k];
          ++r.own_writes;
        } else {
          ++r.shared_writes;
          r.max_shared_epoch = std::max(r.max_shared_epoch, e);
          if (off == t * kSlot)
            r.last_shared = v;
          else
            r.common.push_back({e, v});
        }
      }
    });
  }

  std::string reader_error;
  long reads = 0;
  std::thread reader([&] {
    std::vector<uint64_t> last(kThreads, 0);
    std::vector<std::byte> buf(kSharedSize), ownbuf(kOwnSize);
    bool finished = false;
    gate();
    while (!finished && reader_error.empty()) {
      finished = done.load();
      auto s = bus.read(shared, 0, buf);
      if (!s.ok()) {
        reader_error = "read: " + s.to_string();
        break;
      }
      ++reads;
      for (int slot = 0; slot <= kThreads; ++slot) {
        bool torn = false;
        uint64_t v = slot_value(buf.data() + slot * kSlot, &torn, slot < kThreads ? kSlot : kBig);
        if (torn) reader_error = "torn shared slot " + std::to_string(slot);
        if (slot < kThreads && v != 0) {
          if ((v >> 32) != uint64_t(slot + 1)) reader_error = "foreign value in slot " + std::to_string(slot);
          if ((v & 0xFFFFFFFF) < last[slot]) reader_error = "slot went back in time";
          last[slot] = v & 0xFFFFFFFF;
        }
      }
      if (reads % 4 != 0) continue;
      int t = static_cast<int>((reads / 4) % kThreads);
      if (!bus.read(own[t], 0, ownbuf).ok()) reader_error = "read own";
      for (size_t off = 0; off < kOwnSize; off += kSlot) {
        bool torn = false;
        uint64_t v = slot_value(ownbuf.data() + off, &torn);
        if (torn) reader_error = "torn own slot";
        if (v != 0 && (v >> 32) != uint64_t(t + 1)) reader_error = "foreign value in own page";
      }
    }
  });

  for (auto& w : writers) w.join();
  done = true;
  reader.join();

  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t << ": " << results[t].error);
    REQUIRE(results[t].error.empty());
  }
  INFO(reader_error);
  CHECK(reader_error.empty());
  CHECK(reads > 0);

  const uint64_t total = uint64_t(kThreads) * kWrites;
  CHECK(bus.epoch() == total);
  // Every epoch 1..N handed out exactly once, and events saw them in order.
  std::vector<Epoch> all;
  for (auto& r : results) all.insert(all.end(), r.epochs.begin(), r.epochs.end());
  std::sort(all.begin(), all.end());
  std::vector<Epoch> want(total);
  for (uint64_t i = 0; i < total; ++i) want[i] = i + 1;
  CHECK(all == want);
  CHECK(applied == want);
  // Each thread's epochs increase (its writes are ordered).
  for (auto& r : results) CHECK(std::is_sorted(r.epochs.begin(), r.epochs.end()));

  // Final bytes: own pages, each thread's shared slot, and the common slot
  // holding the value of the common write with the highest epoch.
  std::pair<Epoch, uint64_t> last_common{0, 0};
  int shared_writes = 0;
  Epoch shared_last_epoch = 0;
  std::vector<uint8_t> shared_want(kSharedSize, 0);
  for (int t = 0; t < kThreads; ++t) {
    const Result& r = results[t];
    INFO("thread " << t);
    CHECK(model::same(bus.page_bytes(own[t]), r.own_model));
    CHECK(bus.info(own[t])->version == static_cast<mmsb::Version>(r.own_writes));
    std::vector<uint8_t> p = pattern(r.last_shared);
    std::copy(p.begin(), p.end(), shared_want.begin() + t * kSlot);
    for (auto& c : r.common) last_common = std::max(last_common, c);
    shared_writes += r.shared_writes;
    shared_last_epoch = std::max(shared_last_epoch, r.max_shared_epoch);
  }
  std::vector<uint8_t> p = pattern(last_common.second, kBig);
  std::copy(p.begin(), p.end(), shared_want.begin() + kThreads * kSlot);
  CHECK(model::same(bus.page_bytes(shared), shared_want));
  CHECK(bus.info(shared)->version == static_cast<mmsb::Version>(shared_writes));
  CHECK(bus.info(shared)->last_epoch == shared_last_epoch);
}

TEST_CASE("threads: optimistic increments with apply + kConflict retry lose nothing", "[threads]") {
  const int kThreads = 4;
  const int kIncrements = 400;
  Bus bus;
  const PageId counter = *bus.create_page(8, "counter");
  std::vector<std::string> errors(kThreads);
  std::vector<int> conflicts(kThreads, 0);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIncrements; ++i) {
        for (;;) {
          auto info = bus.info(counter);
          if (!info.ok()) {
            errors[t] = info.status().to_string();
            return;
          }
          std::vector<std::byte> now(8);
          if (!bus.read(counter, 0, now).ok()) {
            errors[t] = "read";
            return;
          }
          uint64_t c = le64(model::to_u8(now), 0);
          std::vector<uint8_t> next(8);
          for (size_t k = 0; k < 8; ++k) next[k] = static_cast<uint8_t>((c + 1) >> (8 * k));
          mmsb::Delta d = mmsb::Delta::from_write(counter, info->version, 0, model::to_bytes(next));
          auto s = bus.apply(d.view());
          if (s.ok()) break;
          if (s.code() != Code::kConflict) {
            errors[t] = s.to_string();
            return;
          }
          ++conflicts[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& e : errors) CHECK(e.empty());

  const uint64_t total = uint64_t(kThreads) * kIncrements;
  std::vector<std::byte> now(8);
  REQUIRE(bus.read(counter, 0, now).ok());
  CHECK(le64(model::to_u8(now), 0) == total);
  CHECK(bus.info(counter)->version == total);
  CHECK(bus.epoch() == total);  // conflicts applied nothing
}

TEST_CASE("threads: concurrent page creation gives dense unique ids", "[threads]") {
  const int kThreads = 4;
  const int kPages = 300;  // 1200 pages: crosses a 1024-slot chunk
  Bus bus;
  std::vector<std::vector<std::pair<PageId, uint64_t>>> made(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPages; ++i) {
        uint64_t size = 1 + (uint64_t(i) * 7 + t) % 300;
        auto id = bus.create_page(size, "t" + std::to_string(t) + "-" + std::to_string(i));
        if (!id.ok()) {
          errors[t] = id.status().to_string();
          return;
        }
        std::byte tag = static_cast<std::byte>(t + 1);
        auto s = bus.write(*id, size - 1, std::span<const std::byte>(&tag, 1));
        if (!s.ok()) {
          errors[t] = s.to_string();
          return;
        }
        made[t].push_back({*id, size});
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& e : errors) CHECK(e.empty());

  std::vector<PageId> ids;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < static_cast<int>(made[t].size()); ++i) {
      auto [id, size] = made[t][i];
      ids.push_back(id);
      auto found = bus.find("t" + std::to_string(t) + "-" + std::to_string(i));
      REQUIRE(found.ok());
      CHECK(*found == id);
      auto span = bus.page_bytes(id);
      REQUIRE(span.size() == size);
      std::vector<uint8_t> want(size, 0);
      want[size - 1] = static_cast<uint8_t>(t + 1);
      CHECK(model::same(span, want));
    }
  }
  std::sort(ids.begin(), ids.end());
  std::vector<PageId> dense(kThreads * kPages);
  for (size_t i = 0; i < dense.size(); ++i) dense[i] = static_cast<PageId>(i);
  CHECK(ids == dense);
  CHECK(bus.page_count() == dense.size());
  CHECK(bus.epoch() == dense.size());
}

TEST_CASE("threads: a pinned TLog consumer and a mirror follow concurrent writers exactly",
          "[threads][mirror][tlog]") {
  const int kThreads = 3;
  const int kWrites = 300;
  BusOptions opts;
  opts.tlog_capacity = 64 << 10;  // small: back-pressure and mirror lag both happen
  Bus bus(std::move(opts));
  auto pinned = bus.tlog().open(true);
  REQUIRE(pinned.ok());
  mmsb::TLog::Cursor cursor = *pinned;

  model::Model created;  // page layout, created here before the threads start
  for (int t = 0; t < kThreads; ++t) {
    uint64_t size = t == 0 ? 1 : 4096 + t;
    REQUIRE(*bus.create_page(size) == created.create(size));
  }
  mmsb::CpuMirror mirror(bus);

  std::vector<std::vector<uint8_t>> own(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    own[t] = created.pages[t].bytes;
    writers.emplace_back([&, t] {
      model::Rng rng(0x7777100 + t);
      const uint64_t n = own[t].size();
      for (int i = 0; i < kWrites; ++i) {
        uint64_t off = rng.below(n);
        std::vector<uint8_t> v = rng.bytes(rng.between(1, std::min<uint64_t>(n - off, 900)));
        auto s = bus.write(static_cast<PageId>(t), off, model::to_bytes(v));
        if (!s.ok()) {
          errors[t] = s.to_string();
          return;
        }
        for (size_t k = 0; k < v.size(); ++k) own[t][off + k] = v[k];
      }
    });
  }

  const uint64_t total = uint64_t(kThreads) * kWrites;
  std::string consumer_error;
  model::Model replayed;
  std::thread consumer([&] {
    uint64_t next = 1;
    auto last_progress = std::chrono::steady_clock::now();
    while (next <= total) {
      mmsb::TLogRecord rec;
      bool got = false;
      auto s = bus.tlog().read(cursor, &rec, &got);
      if (!s.ok()) {
        consumer_error = "read: " + s.to_string();
        break;
      }
      if (!got) {
        bus.tlog().wait(cursor, std::chrono::milliseconds(10));
        if (std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(30)) {
          consumer_error = "no progress (hang guard)";
          break;
        }
        continue;
      }
      last_progress = std::chrono::steady_clock::now();
      if (rec.next <= cursor.position() || bus.tlog().head() - cursor.position() > bus.tlog().capacity()) {
        consumer_error = "pinned cursor overrun or stuck at position " + std::to_string(cursor.position());
        break;
      }
      model::Record r = model::copy_record(rec);
      bus.tlog().advance(cursor, rec);
      if (r.kind == mmsb::RecordKind::kPageCreated) {
        replayed.create(r.size);
      } else if (r.kind == mmsb::RecordKind::kDelta) {
        if (r.epoch != next || r.page >= replayed.pages.size() ||
            r.base_version != replayed.pages[r.page].version) {
          consumer_error = "record out of order at epoch " + std::to_string(next);
          break;
        }
        model::apply_record(replayed, r);
        ++next;
      }
      if (next % 32 == 0) std::this_thread::yield();
    }
    bus.tlog().close(cursor);
  });

  std::atomic<bool> writers_done{false};
  std::string mirror_error;
  std::thread mirror_thread([&] {
    Epoch last = 0;
    while (!writers_done.load()) {
      auto r = mirror.sync();
      if (!r.ok()) {
        mirror_error = r.status().to_string();
        return;
      }
      if (mirror.synced_epoch() < last) mirror_error = "synced_epoch went back";
      last = mirror.synced_epoch();
      std::this_thread::yield();
    }
  });

  for (auto& w : writers) w.join();
  writers_done = true;
  mirror_thread.join();
  consumer.join();

  for (auto& e : errors) CHECK(e.empty());
  INFO(consumer_error);
  CHECK(consumer_error.empty());
  INFO(mirror_error);
  CHECK(mirror_error.empty());
  CHECK(bus.epoch() == total);

  REQUIRE(mirror.sync().ok());
  CHECK(mirror.synced_epoch() == total);
  CHECK(mirror.state_hash() == bus.state_hash());
  REQUIRE(replayed.pages.size() == static_cast<size_t>(kThreads));
  for (int t = 0; t < kThreads; ++t) {
    INFO("page " << t);
    CHECK(model::same(bus.page_bytes(t), own[t]));
    CHECK(model::same(mirror.page_bytes(t), own[t]));
    CHECK((replayed.pages[t].bytes == own[t]));  // (bool: avoid printing pages)
    CHECK(mirror.page_version(t) == static_cast<mmsb::Version>(kWrites));
  }
}

TEST_CASE("threads: pages created while another thread's writes propagate", "[threads][deps]") {
  // The graph lives in per-page vectors that grow with every new page; a
  // propagation pass on one thread must not race page creation on another.
  Bus bus;
  const PageId src = *bus.create_page(64, "src");
  const PageId dst = *bus.create_page(64, "dst");
  REQUIRE(bus.add_dependency(src, dst, [](mmsb::UpdateContext& ctx) {
    std::vector<std::byte> img(ctx.source_bytes().begin(), ctx.source_bytes().end());
    return ctx.assign(img);
  }).ok());

  const int kWrites = 400, kPages = 1500;
  std::string writer_error, creator_error;
  std::thread writer([&] {
    for (int i = 1; i <= kWrites; ++i) {
      std::vector<uint8_t> v = pattern(uint64_t(i));
      auto s = bus.write(src, 0, model::to_bytes(v));
      if (!s.ok()) {
        writer_error = s.to_string();
        return;
      }
    }
  });
  std::thread creator([&] {
    for (int i = 0; i < kPages; ++i) {
      auto id = bus.create_page(8);
      if (!id.ok()) {
        creator_error = id.status().to_string();
        return;
      }
    }
  });
  writer.join();
  creator.join();
  CHECK(writer_error.empty());
  CHECK(creator_error.empty());
  CHECK(bus.page_count() == static_cast<uint32_t>(kPages + 2));
  std::vector<uint8_t> last = pattern(uint64_t(kWrites));
  CHECK(model::same(bus.page_bytes(src), last));
  CHECK(model::same(bus.page_bytes(dst), last));
  CHECK(bus.info(src)->version == static_cast<mmsb::Version>(kWrites));
}

TEST_CASE("threads: lock_writes holds off writers -- try_lock_writes does not wait", "[threads]") {
  Bus bus;
  REQUIRE(bus.create_page(8).ok());
  REQUIRE(bus.write(0, 0, std::vector<std::byte>(8, std::byte{1})).ok());
  std::atomic<int> phase{0};
  bool other_got_lock_while_held = true, other_got_lock_after = false;
  Epoch epoch_seen_under_lock = 99;
  mmsb::Version version_seen = 99, unknown_version = 99;
  std::thread other;
  {
    auto lock = bus.lock_writes();
    version_seen = bus.version_locked(0);
    unknown_version = bus.version_locked(5);
    other = std::thread([&] {
      {
        auto l = bus.try_lock_writes();
        other_got_lock_while_held = l.owns_lock();
      }
      phase = 1;
      // A writer now blocks until the main thread lets go of the lock.
      (void)bus.write(0, 0, std::vector<std::byte>(8, std::byte{2}));
      auto l = bus.try_lock_writes();
      other_got_lock_after = l.owns_lock();
    });
    while (phase.load() == 0) std::this_thread::yield();
    // The writer may or may not have reached the lock yet; either way no delta
    // can be applied while we hold it.
    for (int i = 0; i < 1000; ++i) std::this_thread::yield();
    epoch_seen_under_lock = bus.epoch();
  }
  other.join();
  CHECK_FALSE(other_got_lock_while_held);
  CHECK(other_got_lock_after);
  CHECK(epoch_seen_under_lock == 1u);
  CHECK(version_seen == 1u);
  CHECK(unknown_version == 0u);
  CHECK(bus.epoch() == 2u);
}
