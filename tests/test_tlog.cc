// The in-memory TLog: record contents and order, ring wrap, lag detection for
// unpinned cursors, back-pressure for pinned ones.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "engine_model.h"
#include "mmsb/bus.h"
#include "mmsb/tlog.h"

using mmsb::Bus;
using mmsb::BusOptions;
using mmsb::Code;
using mmsb::Delta;
using mmsb::PageId;
using mmsb::RecordKind;
using mmsb::TLog;
using mmsb::TLogRecord;

namespace {

using model::B;

BusOptions small_tlog(size_t capacity) {
  BusOptions o;
  o.tlog_capacity = capacity;
  return o;
}

}  // namespace

// ---------------------------------------------------------- TLog alone ----

TEST_CASE("TLog capacity is a power of two, at least 64 KiB", "[tlog]") {
  CHECK(TLog(1).capacity() == 65536u);
  CHECK(TLog(65536).capacity() == 65536u);
  CHECK(TLog(65537).capacity() == 131072u);
  CHECK(TLog(100000).capacity() == 131072u);
  CHECK(TLog(size_t{1} << 20).capacity() == (size_t{1} << 20));
  TLog t(300000);
  CHECK(t.capacity() == 524288u);
  CHECK(t.max_record_bytes() == 262144u);
}

TEST_CASE("TLog record size: header + ranges + bytes, padded to 8", "[tlog]") {
  std::vector<mmsb::Range> one{{0, 5}}, two{{0, 8}, {20, 8}};
  std::vector<std::byte> five(5), sixteen(16), eight(8);
  mmsb::DeltaView d;
  d.ranges = one;
  d.bytes = five;
  CHECK(TLog::delta_record_bytes(d) == 64u);  // 48 + 8 + 5 = 61 -> 64
  d.ranges = two;
  d.bytes = sixteen;
  CHECK(TLog::delta_record_bytes(d) == 80u);  // 48 + 16 + 16
  d.ranges = one;
  d.bytes = eight;
  CHECK(TLog::delta_record_bytes(d) == 64u);  // 48 + 8 + 8
}

TEST_CASE("TLog: appended records read back in order, through many wraps", "[tlog][property]") {
  TLog log(1);  // 64 KiB
  model::Rng rng(0x7106001);
  auto c = log.open(false);
  REQUIRE(c.ok());
  CHECK_FALSE(c->pinned());
  CHECK(c->position() == log.head());

  mmsb::TLogRecord rec;
  bool got = true;
  REQUIRE(log.read(*c, &rec, &got).ok());
  CHECK_FALSE(got);
  CHECK_FALSE(log.wait(*c, std::chrono::microseconds(1000)));

  // Batches of records, each batch smaller than the ring, read after each batch.
  uint64_t epoch = 0;
  uint64_t total_bytes = 0;
  for (int batch = 0; batch < 1000; ++batch) {
    std::vector<model::Record> want;
    size_t batch_bytes = 0;
    int n = static_cast<int>(rng.between(1, 12));
    for (int i = 0; i < n; ++i) {
      if (rng.chance(15)) {
        mmsb::PageCreatedView p;
        p.page = static_cast<PageId>(rng.below(1000));
        p.size = rng.between(1, 1 << 20);
        p.epoch = epoch;
        std::string name = rng.chance(50) ? "page-" + std::to_string(rng.below(100000)) : "";
        p.name = name;
        log.append_page_created(p);
        model::Record r;
        r.kind = RecordKind::kPageCreated;
        r.page = p.page;
        r.size = p.size;
        r.epoch = p.epoch;
        r.name = name;
        want.push_back(r);
        batch_bytes += 64 + name.size();
      } else {
        // 1..3 ranges of random lengths (up to ~2 KiB per record).
        std::vector<mmsb::Range> ranges;
        uint32_t off = static_cast<uint32_t>(rng.below(100));
        int nr = static_cast<int>(rng.between(1, 3));
        for (int k = 0; k < nr; ++k) {
          uint32_t len = static_cast<uint32_t>(rng.chance(70) ? rng.between(1, 40) : rng.between(1, 700));
          ranges.push_back({off, len});
          off += len + static_cast<uint32_t>(rng.between(0, 50));
        }
        std::vector<model::Run> runs = model::to_runs(ranges);
        size_t nbytes = 0;
        for (auto& r : ranges) nbytes += r.length;
        std::vector<uint8_t> bytes = rng.bytes(nbytes);
        std::vector<std::byte> bb = model::to_bytes(bytes);
        mmsb::DeltaView d;
        d.page = static_cast<PageId>(rng.below(1000));
        d.base_version = rng.below(1 << 20);
        d.epoch = ++epoch;
        d.cause = rng.chance(30) ? rng.between(1, epoch) : 0;
        d.ranges = ranges;
        d.bytes = bb;
        REQUIRE(TLog::delta_record_bytes(d) <= log.max_record_bytes());
        log.append_delta(d);
        model::Record r;
        r.kind = RecordKind::kDelta;
        r.page = d.page;
        r.epoch = d.epoch;
        r.base_version = d.base_version;
        r.cause = d.cause;
        r.runs = runs;
        r.bytes = bytes;
        want.push_back(r);
        batch_bytes += TLog::delta_record_bytes(d);
      }
      if (batch_bytes > log.capacity() / 3) break;  // keep a batch well inside the ring
    }
    total_bytes += batch_bytes;
    CHECK(log.wait(*c, std::chrono::microseconds(0)));
    std::vector<model::Record> got_records;
    REQUIRE(model::drain(log, *c, got_records).ok());
    CHECK(c->position() == log.head());
    INFO("batch " << batch);
    REQUIRE(got_records.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      const model::Record &g = got_records[i], &w = want[i];
      INFO("record " << i);
      REQUIRE(g.kind == w.kind);
      REQUIRE(g.page == w.page);
      REQUIRE(g.epoch == w.epoch);
      if (w.kind == RecordKind::kDelta) {
        REQUIRE(g.base_version == w.base_version);
        REQUIRE(g.cause == w.cause);
        REQUIRE(g.runs == w.runs);
        REQUIRE(g.bytes == w.bytes);
      } else {
        REQUIRE(g.size == w.size);
        REQUIRE(g.name == w.name);
      }
    }
  }
  CHECK(total_bytes > 10 * log.capacity());  // the ring wrapped many times
  log.close(*c);
}

TEST_CASE("TLog: an unpinned cursor whose records were overwritten gets kLagged", "[tlog]") {
  TLog log(1);
  auto c = log.open(false);
  REQUIRE(c.ok());
  std::vector<mmsb::Range> ranges{{0, 1000}};
  std::vector<std::byte> bytes(1000, std::byte{7});
  mmsb::DeltaView d;
  d.page = 0;
  d.ranges = ranges;
  d.bytes = bytes;
  // 200 records of ~1 KiB: three times the ring.
  for (int i = 0; i < 200; ++i) {
    d.epoch = static_cast<mmsb::Epoch>(i + 1);
    d.base_version = static_cast<mmsb::Version>(i);
    log.append_delta(d);
  }
  mmsb::TLogRecord rec;
  bool got = false;
  auto s = log.read(*c, &rec, &got);
  CHECK(s.code() == Code::kLagged);
  log.close(*c);

  // A cursor opened now is at the head and reads the next record fine.
  auto fresh = log.open(false);
  REQUIRE(fresh.ok());
  d.epoch = 201;
  log.append_delta(d);
  std::vector<model::Record> out;
  REQUIRE(model::drain(log, *fresh, out).ok());
  REQUIRE(out.size() == 1);
  CHECK(out[0].epoch == 201u);
  log.close(*fresh);
}

TEST_CASE("TLog: the record index finds each block's first record -- read_at reads from there", "[tlog][property]") {
  // Reference: every record's start, from the head before and after its
  // append (a record that wrapped starts after the padding, at head - size).
  const size_t capacity = GENERATE(size_t{1} << 16, size_t{1} << 18, size_t{1} << 20);
  TLog log(capacity);
  model::Rng rng(0x1d3e + capacity);
  std::vector<uint64_t> starts;          // every record's stream position
  std::vector<mmsb::Epoch> epochs;       // ... and its epoch (page creations: 0)
  std::vector<std::byte> bytes(capacity / 2);
  mmsb::Epoch epoch = 0;
  for (int batch = 0; batch < 60; ++batch) {
    const int n = static_cast<int>(rng.between(1, 40));
    for (int i = 0; i < n; ++i) {
      if (rng.chance(10)) {
        mmsb::PageCreatedView p;
        p.page = 1;
        p.size = 1;
        log.append_page_created(p);
        starts.push_back(log.head() - TLog::kHeaderBytes);  // a header and an empty name
        epochs.push_back(0);
        continue;
      }
      // Mostly small records, some larger than an index block (blocks no
      // record starts in), up to the largest the ring takes.
      const uint64_t most = log.max_record_bytes() - 56;
      const uint64_t len = rng.chance(80) ? rng.between(1, 300)
                           : rng.chance(50) ? rng.between(1, std::min<uint64_t>(70000, most))
                                            : rng.between(1, most);
      const std::vector<mmsb::Range> ranges{{0, static_cast<uint32_t>(len)}};
      mmsb::DeltaView d;
      d.page = 0;
      d.epoch = ++epoch;
      d.ranges = ranges;
      d.bytes = std::span<const std::byte>(bytes.data(), len);
      REQUIRE(TLog::delta_record_bytes(d) <= log.max_record_bytes());
      log.append_delta(d);
      starts.push_back(log.head() - TLog::delta_record_bytes(d));
      epochs.push_back(epoch);
    }
    // Every block-aligned position whose bytes the ring still holds.
    const uint64_t head = log.head();
    const uint64_t low = head > log.capacity() ? head - log.capacity() : 0;
    for (uint64_t q = (low + TLog::kIndexBlockBytes - 1) / TLog::kIndexBlockBytes * TLog::kIndexBlockBytes; q < head;
         q += TLog::kIndexBlockBytes) {
      const auto it = std::lower_bound(starts.begin(), starts.end(), q);
      const uint64_t want = it == starts.end() ? head : *it;
      INFO("batch " << batch << ", block at " << q << ", head " << head);
      REQUIRE(log.first_record_from(q, head) == want);
      const uint64_t cut = q + rng.below(head - q) + 1;  // an earlier end
      REQUIRE(log.first_record_from(q, cut) == std::min(want, cut));
      // From there, read_at walks the remaining records in order.
      size_t k = static_cast<size_t>(it - starts.begin());
      mmsb::TLogRecord rec;
      for (uint64_t pos = want; pos < head;) {
        log.read_at(pos, &rec);
        if (rec.kind == RecordKind::kPadding) {
          pos = rec.next;
          continue;
        }
        REQUIRE(k < starts.size());
        REQUIRE(pos == starts[k]);
        if (rec.kind == RecordKind::kDelta) REQUIRE(rec.delta.epoch == epochs[k]);
        if (rec.kind == RecordKind::kPageCreated) REQUIRE(epochs[k] == 0);
        pos = rec.next;
        ++k;
      }
      REQUIRE(k == starts.size());
    }
    // A position inside a block rounds up to the next block.
    if (head > low + 2 * TLog::kIndexBlockBytes) {
      const uint64_t q = (low + TLog::kIndexBlockBytes - 1) / TLog::kIndexBlockBytes * TLog::kIndexBlockBytes;
      REQUIRE(log.first_record_from(q + 1, head) == log.first_record_from(q + TLog::kIndexBlockBytes, head));
    }
  }
  CHECK(log.head() > 5 * log.capacity());  // the ring wrapped
}

TEST_CASE("TLog: at most kMaxPinned pinned cursors", "[tlog]") {
  TLog log(1);
  std::vector<TLog::Cursor> cs;
  for (size_t i = 0; i < TLog::kMaxPinned; ++i) {
    auto c = log.open(true);
    REQUIRE(c.ok());
    CHECK(c->pinned());
    cs.push_back(*c);
  }
  auto extra = log.open(true);
  REQUIRE_FALSE(extra.ok());
  CHECK(extra.status().code() == Code::kResourceExhausted);
  auto unpinned = log.open(false);  // unpinned cursors are not limited
  REQUIRE(unpinned.ok());
  CHECK_FALSE(unpinned->pinned());

  log.close(cs.back());
  cs.pop_back();
  auto again = log.open(true);
  REQUIRE(again.ok());
  cs.push_back(*again);
  for (auto& c : cs) log.close(c);
  log.close(*unpinned);
}

TEST_CASE("TLog: wait(min_bytes) waits for that many bytes -- producer_waits counts full-ring waits",
          "[tlog][threads]") {
  TLog log(1);  // 64 KiB: wake_bytes() = 4 KiB
  REQUIRE(log.wake_bytes() == 4096u);
  auto opened = log.open(true);
  REQUIRE(opened.ok());
  TLog::Cursor c = *opened;
  const std::vector<mmsb::Range> range{{0, 16}};
  const std::vector<std::byte> bytes(16);
  uint64_t epoch = 0;
  auto append = [&] {
    mmsb::DeltaView d;
    d.page = 0;
    d.epoch = ++epoch;
    d.ranges = range;
    d.bytes = bytes;
    log.append_delta(d);  // 48 + 8 + 16 = 72 bytes
  };
  const std::chrono::microseconds short_wait(1000);
  CHECK_FALSE(log.wait(c, short_wait, 1));
  append();
  CHECK(log.wait(c, short_wait, 72));
  CHECK_FALSE(log.wait(c, short_wait, 73));
  CHECK_FALSE(log.wait(c, short_wait, log.wake_bytes()));
  while (log.head() - c.position() < log.wake_bytes()) append();
  CHECK(log.wait(c, short_wait, log.wake_bytes()));

  // A sleeping consumer is woken by the producer crossing a wake_bytes()
  // boundary (the 60 s timeout is a hang guard, not a timing assertion).
  {
    TLogRecord rec;
    bool got = true;
    while (got) {  // consume everything there is, so the wait below must sleep
      REQUIRE(log.read(c, &rec, &got).ok());
      if (got) log.advance(c, rec);
    }
    const uint64_t from = log.head();
    REQUIRE(c.position() == from);
    std::thread producer([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      while (log.head() - from < 3 * log.wake_bytes()) append();
    });
    CHECK(log.wait(c, std::chrono::seconds(60), 2 * log.wake_bytes()));
    CHECK(log.head() - c.position() >= 2 * log.wake_bytes());
    producer.join();
  }

  // Fill the ring without consuming: the producer must wait, and says so.
  CHECK(log.producer_waits() == 0);
  std::atomic<bool> done{false};
  std::thread producer([&] {
    for (int i = 0; i < 2000; ++i) append();  // 144,000 bytes: more than twice the ring
    done = true;
  });
  const auto guard = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (log.producer_waits() == 0 && std::chrono::steady_clock::now() < guard)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(log.producer_waits() >= 1);
  CHECK_FALSE(done.load());
  // Then every record arrives, in order: nothing was overwritten while full.
  uint64_t expect = 0;
  bool in_order = true;
  TLogRecord rec;
  while (!done.load() || log.head() != c.position()) {
    bool got = false;
    REQUIRE(log.read(c, &rec, &got).ok());
    if (!got) {
      log.wait(c, short_wait);
      continue;
    }
    if (expect == 0) expect = rec.delta.epoch;  // the first record not read yet
    in_order = in_order && rec.delta.epoch == expect++;
    log.advance(c, rec);
  }
  producer.join();
  CHECK(in_order);
  CHECK(expect == epoch + 1);
  log.close(c);
}

// ------------------------------------------------------------ via a Bus ----

TEST_CASE("Bus TLog: page creations and deltas, in order, with their fields", "[tlog][bus]") {
  Bus bus;
  auto c = bus.tlog().open(false);
  REQUIRE(c.ok());

  REQUIRE(*bus.create_page(100, "a") == 0u);
  REQUIRE(*bus.create_page(50) == 1u);
  REQUIRE(bus.write(0, 5, B({1, 2, 3})).ok());                       // epoch 1
  REQUIRE(bus.write(1, 49, B({4})).ok());                            // epoch 2
  REQUIRE(bus.write(0, 98, B({1, 2, 3})).code() == Code::kOutOfRange);  // no record
  REQUIRE(*bus.create_page(7, "c") == 2u);
  Delta d;
  d.page = 0;
  d.base_version = 1;
  d.ranges = {{0, 1}, {10, 2}};
  d.bytes = B({9, 8, 7});
  d.epoch = 1000;  // ignored by the bus
  d.cause = 999;   // ignored by the bus
  REQUIRE(bus.apply(d.view()).ok());  // epoch 3
  Delta stale = d;
  REQUIRE(bus.apply(stale.view()).code() == Code::kConflict);  // no record

  std::vector<model::Record> recs;
  {
    auto lock = bus.lock_writes();
    REQUIRE(model::drain(bus.tlog(), *c, recs).ok());
  }
  REQUIRE(recs.size() == 6);

  CHECK(recs[0].kind == RecordKind::kPageCreated);
  CHECK(recs[0].page == 0u);
  CHECK(recs[0].size == 100u);
  CHECK(recs[0].epoch == 0u);
  CHECK(recs[0].name == "a");

  CHECK(recs[1].kind == RecordKind::kPageCreated);
  CHECK(recs[1].page == 1u);
  CHECK(recs[1].size == 50u);
  CHECK(recs[1].name.empty());

  CHECK(recs[2].kind == RecordKind::kDelta);
  CHECK(recs[2].page == 0u);
  CHECK(recs[2].epoch == 1u);
  CHECK(recs[2].base_version == 0u);
  CHECK(recs[2].cause == 0u);
  CHECK(recs[2].runs == std::vector<model::Run>{{5, 3}});
  CHECK(recs[2].bytes == std::vector<uint8_t>{1, 2, 3});

  CHECK(recs[3].kind == RecordKind::kDelta);
  CHECK(recs[3].page == 1u);
  CHECK(recs[3].epoch == 2u);
  CHECK(recs[3].base_version == 0u);
  CHECK(recs[3].runs == std::vector<model::Run>{{49, 1}});
  CHECK(recs[3].bytes == std::vector<uint8_t>{4});

  CHECK(recs[4].kind == RecordKind::kPageCreated);
  CHECK(recs[4].page == 2u);
  CHECK(recs[4].size == 7u);
  CHECK(recs[4].epoch == 2u);
  CHECK(recs[4].name == "c");

  CHECK(recs[5].kind == RecordKind::kDelta);
  CHECK(recs[5].page == 0u);
  CHECK(recs[5].epoch == 3u);
  CHECK(recs[5].base_version == 1u);
  CHECK(recs[5].cause == 0u);
  CHECK(recs[5].runs == (std::vector<model::Run>{{0, 1}, {10, 2}}));
  CHECK(recs[5].bytes == std::vector<uint8_t>{9, 8, 7});

  {
    auto lock = bus.lock_writes();
    bus.tlog().close(*c);
  }
}

TEST_CASE("Bus TLog: replaying the records reproduces the state", "[tlog][bus][property]") {
  Bus bus;
  model::Model live;
  model::Rng rng(0x7106002);
  auto c = bus.tlog().open(false);
  REQUIRE(c.ok());
  model::Model replayed;
  uint64_t seen_epoch = 0;
  std::string problem;

  auto catch_up = [&] {
    std::vector<model::Record> recs;
    auto lock = bus.lock_writes();
    REQUIRE(model::drain(bus.tlog(), *c, recs).ok());
    for (const auto& r : recs) {
      if (r.kind == RecordKind::kPageCreated) {
        REQUIRE(r.page == replayed.pages.size());
        REQUIRE(r.epoch == seen_epoch);
        replayed.create(r.size, r.name);
      } else {
        REQUIRE(r.epoch == seen_epoch + 1);  // contiguous
        REQUIRE(r.page < replayed.pages.size());
        REQUIRE(r.base_version == replayed.pages[r.page].version);
        seen_epoch = r.epoch;
        model::apply_record(replayed, r);
      }
    }
  };

  for (int op = 0; op < 3000; ++op) {
    if (live.pages.empty() || rng.chance(2)) {
      uint64_t size = rng.chance(50) ? rng.between(1, 100) : rng.between(1, 70000);
      std::string name = rng.chance(50) ? "n" + std::to_string(op) : "";
      REQUIRE(*bus.create_page(size, name) == live.create(size, name));
    } else {
      PageId id = static_cast<PageId>(rng.below(live.pages.size()));
      uint64_t n = live.pages[id].bytes.size();
      uint64_t off = rng.below(n);
      std::vector<uint8_t> v = rng.bytes(rng.between(1, std::min<uint64_t>(n - off, 300)));
      mmsb::Epoch e = 0;
      REQUIRE(bus.write(id, off, model::to_bytes(v), &e).ok());
      REQUIRE(e == live.write(id, off, v));
    }
    if (rng.chance(5)) catch_up();
  }
  catch_up();
  REQUIRE(replayed.pages.size() == live.pages.size());
  CHECK(seen_epoch == live.epoch);
  for (PageId id = 0; id < live.pages.size(); ++id) {
    INFO("page " << id);
    REQUIRE((replayed.pages[id].bytes == live.pages[id].bytes));
    REQUIRE(replayed.pages[id].version == live.pages[id].version);
    REQUIRE(replayed.pages[id].name == live.pages[id].name);
  }
  auto lock = bus.lock_writes();
  bus.tlog().close(*c);
}

TEST_CASE("Bus TLog: an unpinned cursor that falls behind gets kLagged", "[tlog][bus]") {
  Bus bus(small_tlog(64 << 10));
  REQUIRE(bus.tlog().capacity() == 65536u);
  REQUIRE(bus.create_page(4096).ok());
  mmsb::TLog::Cursor keeping_up, falling_behind;
  {
    auto lock = bus.lock_writes();
    auto a = bus.tlog().open(false);
    auto b = bus.tlog().open(false);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    keeping_up = *a;
    falling_behind = *b;
  }
  std::vector<std::byte> kib(1000, std::byte{1});
  uint64_t seen = 0;
  for (int i = 0; i < 300; ++i) {  // ~300 KB of records through a 64 KiB ring
    kib[0] = static_cast<std::byte>(i);
    REQUIRE(bus.write(0, 0, kib).ok());
    std::vector<model::Record> recs;
    auto lock = bus.lock_writes();
    REQUIRE(model::drain(bus.tlog(), keeping_up, recs).ok());
    REQUIRE(recs.size() == 1);
    REQUIRE(recs[0].epoch == ++seen);
  }
  auto lock = bus.lock_writes();
  mmsb::TLogRecord rec;
  bool got = false;
  CHECK(bus.tlog().read(falling_behind, &rec, &got).code() == Code::kLagged);
  bus.tlog().close(keeping_up);
  bus.tlog().close(falling_behind);
}

TEST_CASE("Bus TLog: a slow pinned consumer sees every epoch -- the producer waits for it",
          "[tlog][bus][threads]") {
  Bus bus(small_tlog(64 << 10));
  const size_t capacity = bus.tlog().capacity();
  REQUIRE(capacity == 65536u);
  auto opened = bus.tlog().open(true);  // before any record: sees the creations too
  REQUIRE(opened.ok());
  mmsb::TLog::Cursor cursor = *opened;
  REQUIRE(cursor.pinned());

  const int kPages = 3;
  const int kWrites = 1200;
  model::Model producer_model;  // touched only by the producer until join

  std::atomic<bool> producer_failed{false};
  std::thread producer([&] {
    model::Rng rng(0x7106003);
    for (int p = 0; p < kPages; ++p) {
      uint64_t size = p == 0 ? 4096 : (p == 1 ? 4097 : 1);
      auto id = bus.create_page(size);
      if (!id.ok() || *id != producer_model.create(size)) producer_failed = true;
    }
    for (int i = 0; i < kWrites; ++i) {
      PageId id = static_cast<PageId>(rng.below(kPages));
      uint64_t n = producer_model.pages[id].bytes.size();
      uint64_t off = rng.below(n);
      std::vector<uint8_t> v = rng.bytes(rng.between(1, std::min<uint64_t>(n - off, 700)));
      mmsb::Epoch e = 0;
      if (!bus.write(id, off, model::to_bytes(v), &e).ok() || e != producer_model.write(id, off, v))
        producer_failed = true;
    }
  });

  // The consumer (this thread): slow, and never more than the ring behind.
  model::Model replayed;
  uint64_t next_epoch = 1;
  bool contiguous = true, bounded = true, forward = true, ok_reads = true;
  int creations = 0;
  size_t steps = 0;
  auto last_progress = std::chrono::steady_clock::now();
  bool gave_up = false;
  while (next_epoch <= static_cast<uint64_t>(kWrites)) {
    if (bus.tlog().head() - cursor.position() > capacity) {
      bounded = false;  // the producer overwrote records we have not read
      break;
    }
    mmsb::TLogRecord rec;
    bool got = false;
    if (!bus.tlog().read(cursor, &rec, &got).ok()) {
      ok_reads = false;
      break;
    }
    if (!got) {
      bus.tlog().wait(cursor, std::chrono::milliseconds(10));
      // A hang guard, not a timing assertion: a lost record would otherwise block forever.
      if (std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(30)) {
        gave_up = true;
        break;
      }
      continue;
    }
    last_progress = std::chrono::steady_clock::now();
    if (rec.next <= cursor.position()) {
      forward = false;
      break;
    }
    model::Record r = model::copy_record(rec);
    bus.tlog().advance(cursor, rec);
    if (r.kind == RecordKind::kPageCreated) {
      ++creations;
      replayed.create(r.size, r.name);
    } else if (r.kind == RecordKind::kDelta) {
      if (r.epoch != next_epoch || r.page >= replayed.pages.size() ||
          r.base_version != replayed.pages[r.page].version) {
        contiguous = false;
        break;
      }
      model::apply_record(replayed, r);
      ++next_epoch;
    }
    if (++steps % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  bus.tlog().close(cursor);  // also releases a producer blocked on a failed consumer
  producer.join();

  CHECK_FALSE(gave_up);
  CHECK(ok_reads);
  CHECK(forward);
  CHECK(contiguous);
  CHECK(bounded);
  CHECK_FALSE(producer_failed);
  CHECK(creations == kPages);
  CHECK(next_epoch == static_cast<uint64_t>(kWrites) + 1);
  CHECK(bus.epoch() == static_cast<uint64_t>(kWrites));
  REQUIRE(replayed.pages.size() == producer_model.pages.size());
  for (PageId id = 0; id < replayed.pages.size(); ++id) {
    INFO("page " << id);
    CHECK((replayed.pages[id].bytes == producer_model.pages[id].bytes));
    CHECK(model::same(bus.page_bytes(id), producer_model.pages[id].bytes));
  }
}
