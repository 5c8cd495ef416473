// A frame's payload decodes with the stock tools (docs/FORMAT.md): cut out
// of a segment at the offsets the independent reader found, `zstd -d`, then
// `flatc --json` with the schema; the JSON must say what the test wrote.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "engine_model.h"
#include "mmsb/bus.h"
#include "mmsb/capture/recorder.h"
#include "tlog_reader.h"

#ifndef MMSB_SCHEMA_FILE
#error "MMSB_SCHEMA_FILE (the path of schema/mmsb_tlog.fbs) must be defined by the build"
#endif

namespace fs = std::filesystem;
using mmsb::Bus;
using mmsb::capture::Recorder;
using mmsb::capture::RecorderOptions;

namespace {

using model::TempDir;

bool on_path(const std::string& tool) { return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0; }

std::string quote(const fs::path& p) { return "'" + p.string() + "'"; }

// Cuts frame f's payload out of its segment, runs zstd -d and flatc --json;
// returns the JSON text ("" on failure, with *log saying why).
std::string decode_with_stock_tools(const tlogr::Recording& rec, const tlogr::Frame& f, const fs::path& work,
                                    const std::string& stem, std::string* log) {
  const std::vector<uint8_t> file = tlogr::read_file(rec.segments[f.segment].path);
  if (f.end() > file.size()) {
    *log = "frame runs past the file";
    return {};
  }
  const std::vector<uint8_t> payload(file.begin() + static_cast<long>(f.offset + tlogr::kFrameHeaderBytes),
                                     file.begin() + static_cast<long>(f.end()));
  const fs::path zst = work / (stem + ".zst");
  const fs::path bin = work / (stem + ".bin");
  const fs::path json = work / (stem + ".json");
  tlogr::write_file(zst, payload);
  const std::string unzstd = "zstd -d -q -f " + quote(zst) + " -o " + quote(bin) + " 2>" + quote(work / "zstd.err");
  if (std::system(unzstd.c_str()) != 0) {
    *log = "failed: " + unzstd;
    return {};
  }
  if (tlogr::read_file(bin).size() != f.raw_bytes) {
    *log = "zstd -d gave " + std::to_string(tlogr::read_file(bin).size()) + " bytes, the header's raw size is " +
           std::to_string(f.raw_bytes);
    return {};
  }
  const std::string flatc = "flatc --json --strict-json --defaults-json --raw-binary -o " + quote(work) + " " +
                            quote(MMSB_SCHEMA_FILE) + " -- " + quote(bin) + " 2>" + quote(work / "flatc.err");
  if (std::system(flatc.c_str()) != 0) {
    const std::vector<uint8_t> err = tlogr::read_file(work / "flatc.err");
    *log = "failed: " + flatc + ": " + std::string(err.begin(), err.end());
    return {};
  }
  const std::vector<uint8_t> text = tlogr::read_file(json);
  *log = flatc;
  return std::string(text.begin(), text.end());
}

// ---- crude JSON look-ups (flatc's output is regular enough) ----

// Position just past `"key":` and any spaces; npos when absent.
size_t after_key(const std::string& json, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  size_t p = json.find(k);
  if (p == std::string::npos) return p;
  p += k.size();
  while (p < json.size() && std::isspace(static_cast<unsigned char>(json[p]))) ++p;
  return p;
}

bool has_key(const std::string& json, const std::string& key) { return after_key(json, key) != std::string::npos; }

// The integer value of `key` (-1 when absent or not a number).
long long number(const std::string& json, const std::string& key) {
  size_t p = after_key(json, key);
  if (p == std::string::npos || p >= json.size() || !std::isdigit(static_cast<unsigned char>(json[p]))) return -1;
  return std::stoll(json.substr(p));
}

std::string string_value(const std::string& json, const std::string& key) {
  size_t p = after_key(json, key);
  if (p == std::string::npos || json[p] != '"') return "<absent>";
  const size_t q = json.find('"', p + 1);
  return json.substr(p + 1, q - p - 1);
}

// The integers of the array `key` (empty when absent).
std::vector<long long> numbers(const std::string& json, const std::string& key) {
  std::vector<long long> out;
  size_t p = after_key(json, key);
  if (p == std::string::npos || json[p] != '[') return out;
  const size_t end = json.find(']', p);
  for (++p; p < end; ++p)
    if (std::isdigit(static_cast<unsigned char>(json[p]))) {
      size_t used = 0;
      out.push_back(std::stoll(json.substr(p), &used));
      p += used - 1;
    }
  return out;
}

// The strings of the array `key`.
std::vector<std::string> strings(const std::string& json, const std::string& key) {
  std::vector<std::string> out;
  size_t p = after_key(json, key);
  if (p == std::string::npos || json[p] != '[') return out;
  const size_t end = json.find(']', p);
  for (size_t q = json.find('"', p); q < end; q = json.find('"', q + 1)) {
    const size_t r = json.find('"', q + 1);
    out.push_back(json.substr(q + 1, r - q - 1));
    q = r;
  }
  return out;
}

// The column `name` at whichever width (8/16/32) is present.
std::vector<long long> column(const std::string& json, const std::string& name) {
  for (const char* w : {"8", "16", "32"})
    if (has_key(json, name + w)) return numbers(json, name + w);
  return {};
}

}  // namespace

TEST_CASE("frames decode with the stock tools: zstd -d, then flatc --json with the schema", "[capture][tools]") {
  REQUIRE(on_path("zstd"));   // scripts/install-deps.sh installs zstd
  REQUIRE(on_path("flatc"));  // ... and flatbuffers-compiler
  REQUIRE(fs::exists(MMSB_SCHEMA_FILE));

  TempDir work("tools", /*create=*/true);
  const fs::path dir = work.path / "rec";
  Bus bus;
  REQUIRE(*bus.create_page(100, "alpha") == 0u);
  REQUIRE(*bus.create_page(37) == 1u);
  REQUIRE(*bus.create_page(4096, "gamma") == 2u);
  RecorderOptions opt;
  opt.program = "tools-test";
  opt.labels = {{"purpose", "stock-tools"}};
  opt.batch_deltas = 1000;
  opt.flush_interval = std::chrono::milliseconds(3600 * 1000);
  opt.snapshot_log_ratio = 0;
  auto started = Recorder::start(bus, dir, opt);
  REQUIRE(started.ok());
  std::unique_ptr<Recorder> rec = std::move(*started);

  // Eleven deltas, written by hand: delta i goes to page i % 3 at offset 3i
  // with bytes {i + 1, i + 2}; the last one at offset 3000 of page 2.
  std::vector<long long> want_pages, want_offsets, want_lengths, want_data;
  for (int i = 0; i < 11; ++i) {
    const uint32_t page = i == 10 ? 2u : static_cast<uint32_t>(i % 3);
    const uint64_t off = i == 10 ? 3000 : static_cast<uint64_t>(3 * i);
    const std::vector<uint8_t> v{static_cast<uint8_t>(i + 1), static_cast<uint8_t>(i + 2)};
    REQUIRE(bus.write(page, off, model::to_bytes(v)).ok());
    want_pages.push_back(page);
    want_offsets.push_back(static_cast<long long>(off));
    want_lengths.push_back(2);
    want_data.push_back(i + 1);
    want_data.push_back(i + 2);
  }
  REQUIRE(rec->stop().ok());

  const tlogr::Recording r = tlogr::read_recording(dir);
  INFO(r.summary());
  REQUIRE(r.ok());
  REQUIRE(r.clean());
  const std::vector<tlogr::Frame> metas = r.frames_of(tlogr::kMeta);
  const std::vector<tlogr::Frame> tables = r.frames_of(tlogr::kPageTable);
  const std::vector<tlogr::Frame> batches = r.frames_of(tlogr::kDeltas);
  const std::vector<tlogr::Frame> indexes = r.frames_of(tlogr::kIndex);
  REQUIRE(metas.size() == 1);
  REQUIRE(tables.size() == 1);
  REQUIRE(batches.size() == 1);  // one flush (at stop), batches of up to 1000
  REQUIRE(indexes.size() == 1);
  std::string log;

  SECTION("delta batch") {
    const std::string json = decode_with_stock_tools(r, batches[0], work.path, "deltas", &log);
    INFO(log);
    INFO(json);
    REQUIRE(!json.empty());
    CHECK(string_value(json, "body_type") == "DeltaBatch");
    CHECK(number(json, "first_epoch") == 1);
    CHECK(number(json, "count") == 11);
    CHECK(column(json, "page") == want_pages);
    CHECK(column(json, "offset") == want_offsets);
    CHECK(column(json, "length") == want_lengths);
    CHECK(numbers(json, "data") == want_data);
    CHECK(numbers(json, "derived").empty());
  }
  SECTION("meta") {
    const std::string json = decode_with_stock_tools(r, metas[0], work.path, "meta", &log);
    INFO(log);
    INFO(json);
    REQUIRE(!json.empty());
    CHECK(string_value(json, "body_type") == "Meta");
    CHECK(number(json, "format_major") == 1);
    CHECK(number(json, "format_minor") == 1);
    CHECK(string_value(json, "program") == "tools-test");
    CHECK(number(json, "pid") == ::getpid());
    CHECK(number(json, "segment") == 0);
    CHECK(number(json, "start_epoch") == 0);
    CHECK(number(json, "default_page_size") == 4096);
    CHECK(string_value(json, "key") == "purpose");
    CHECK(string_value(json, "value") == "stock-tools");
  }
  SECTION("page table") {
    const std::string json = decode_with_stock_tools(r, tables[0], work.path, "pages", &log);
    INFO(log);
    INFO(json);
    REQUIRE(!json.empty());
    CHECK(string_value(json, "body_type") == "PageTable");
    CHECK(numbers(json, "ids") == std::vector<long long>{0, 1, 2});
    CHECK(numbers(json, "sizes") == std::vector<long long>{100, 37, 4096});
    CHECK(strings(json, "names") == std::vector<std::string>{"alpha", "", "gamma"});
    CHECK(numbers(json, "epochs") == std::vector<long long>{0, 0, 0});
  }
  SECTION("index") {
    const std::string json = decode_with_stock_tools(r, indexes[0], work.path, "index", &log);
    INFO(log);
    INFO(json);
    REQUIRE(!json.empty());
    CHECK(string_value(json, "body_type") == "SegmentIndex");
    // Every frame before the index, in order: its offset.
    std::vector<long long> offsets;
    for (size_t p = json.find("\"offset\":"); p != std::string::npos; p = json.find("\"offset\":", p + 1))
      offsets.push_back(number(json.substr(p), "offset"));
    std::vector<long long> want;
    for (const tlogr::Frame& f : r.frames)
      if (f.kind != tlogr::kIndex) want.push_back(static_cast<long long>(f.offset));
    CHECK(offsets == want);
  }
}
