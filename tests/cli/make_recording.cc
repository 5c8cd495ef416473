// mmsb_cli_fixture: recordings with hand-known contents for the mmsb-replay
// tests (cli_test.sh), and the independent checks those tests need.
//
//   record DIR [--steps N] [--seed S] [--flip-byte E] [--batch N]
//              [--segment-bytes B] [--snapshot-every N] [--start-at E]
//       Records the script below, then N random steps. --flip-byte E flips
//       bit 0 of the first byte of the application write at epoch E, so the
//       run differs from the plain one by exactly that byte. --start-at E
//       starts the recorder once the bus is at epoch E (an application write
//       must follow), so the recording starts from a snapshot. --odd-name 1
//       adds page 5 (8 B, never written) named q"<LF><FF>: a quote, a
//       newline and a byte that is not UTF-8. --wide N then adds a page
//       'wide' of N bytes and writes all of them at once (epoch 13), with
//       bytes that depend on --seed. --comb 1 then adds a page 'comb' of
//       64 bytes and assigns it an image with 0xc0 at every fourth byte: one
//       delta of 16 one-byte ranges (offsets 0, 4, .., 60). --hold 1 keeps the recorder running
//       after the script: it flushes, prints "ready", and stops only when
//       stdin reaches its end (a recording still being written).
//   page NAME EPOCH [--steps N] [--seed S] [--flip-byte E]
//       Runs the same script on a live bus (no recorder, no replay) and
//       prints the page's bytes right after EPOCH in hex, without spaces.
//   cut SRC DST OFFSET
//       Copies recording SRC to DST cut at OFFSET bytes of its segments laid
//       end to end (the segment holding the offset is truncated, later ones
//       left out), and prints the last epoch of DST's durable history as the
//       independent reader of tests/tlog_reader.h sees it ("none" when DST is
//       not readable at all).
//   frames DIR
//       One line per readable frame (tests/tlog_reader.h): file offset kind
//       first_epoch last_epoch payload_bytes.
//   last-epoch DIR
//       The durable history's last epoch per tests/tlog_reader.h.
//   flip-bit FILE OFFSET
//       Flips bit 0 of the byte at OFFSET.
//   json-check < FILE
//       Exit 0 if stdin is exactly one well-formed JSON document (RFC 8259).
//
// The script (pages created at epoch 0; deps alpha -> sum -> check):
//   page 0 'alpha' 64 B, 1 'beta' 100 B, 2 'sum' 8 B (u64 LE sum of alpha's
//   bytes), 3 'check' 2 B (sum's first two bytes), later 4 (unnamed) 16 B.
//   epoch  1  alpha @0  68 65 6c 6c 6f ("hello")
//          2  sum   [0,2) 14 02      (532, derived, cause 1)
//          3  check [0,2) 14 02      (derived, cause 2)
//          4  beta  @10 aa bb cc dd
//          5  alpha @16 00 01 .. 0f
//          6  sum   [0,1) 8c         (652, cause 5)
//          7  check [0,1) 8c         (cause 6)
//          -  page 4 created (unnamed, 16 B) at epoch 7
//          8  page 4 @0 4d 4d 53 42 ("MMSB")
//          9  beta  @99 01
//         10  alpha @0  48 45 4c 4c 4f ("HELLO")
//         11  sum   [0,2) ec 01      (492, cause 10)
//         12  check [0,2) ec 01      (cause 11)
// Random steps then write 1..8 random bytes at random offsets of alpha, beta
// or page 4 (alpha's fire sum and check).
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine_model.h"  // model::Rng
#include "mmsb/bus.h"
#include "mmsb/capture/recorder.h"
#include "tlog_reader.h"

namespace fs = std::filesystem;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "mmsb_cli_fixture: %s\n", what.c_str());
  std::exit(2);
}

void check(const mmsb::Status& s, const char* what) {
  if (!s.ok()) die(std::string(what) + ": " + s.to_string());
}

struct Options {
  uint64_t steps = 0, seed = 1, flip = 0;
  uint32_t batch = 8192;
  uint64_t segment_bytes = uint64_t{256} << 20;
  uint64_t snapshot_every = 0;
  uint64_t start_at = 0;
  bool odd_name = false;
  uint64_t wide = 0;
  bool hold = false;
  bool comb = false;
};

// Parses --name value pairs from argv[first..].
Options parse_options(int argc, char** argv, int first) {
  Options o;
  for (int i = first; i < argc; i += 2) {
    if (i + 1 >= argc) die(std::string("missing value for ") + argv[i]);
    const std::string k = argv[i];
    const uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (k == "--steps") o.steps = v;
    else if (k == "--seed") o.seed = v;
    else if (k == "--flip-byte") o.flip = v;
    else if (k == "--batch") o.batch = static_cast<uint32_t>(v);
    else if (k == "--segment-bytes") o.segment_bytes = v;
    else if (k == "--snapshot-every") o.snapshot_every = v;
    else if (k == "--start-at") o.start_at = v;
    else if (k == "--odd-name") o.odd_name = v != 0;
    else if (k == "--wide") o.wide = v;
    else if (k == "--hold") o.hold = v != 0;
    else if (k == "--comb") o.comb = v != 0;
    else die("unknown option " + k);
  }
  return o;
}

std::vector<std::byte> bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(std::byte(b));
  return out;
}

// Runs the script (and o.steps random steps) on `bus`; `start` runs once,
// before the first application write at or after epoch o.start_at (the
// recorder starts there).
void run_script(mmsb::Bus& bus, const Options& o, const std::function<void()>& start) {
  const mmsb::PageId alpha = bus.create_page(64, "alpha").value();
  const mmsb::PageId beta = bus.create_page(100, "beta").value();
  const mmsb::PageId sum = bus.create_page(8, "sum").value();
  const mmsb::PageId chk = bus.create_page(2, "check").value();
  bool started = !start;
  check(bus.add_dependency(alpha, sum, [](mmsb::UpdateContext& ctx) {
    uint64_t total = 0;
    for (std::byte b : ctx.source_bytes()) total += static_cast<uint8_t>(b);
    std::byte le[8];
    for (int i = 0; i < 8; ++i) le[i] = std::byte(total >> (8 * i));
    return ctx.assign(le);
  }), "add_dependency alpha -> sum");
  check(bus.add_dependency(sum, chk, [](mmsb::UpdateContext& ctx) {
    return ctx.assign(ctx.source_bytes().first(2));
  }), "add_dependency sum -> check");

  bool flipped = o.flip == 0;
  auto write = [&](mmsb::PageId page, uint64_t offset, std::vector<std::byte> v) {
    if (!started && bus.epoch() >= o.start_at) {
      start();
      started = true;
    }
    if (bus.epoch() + 1 == o.flip) {
      v[0] ^= std::byte{1};
      flipped = true;
    }
    check(bus.write(page, offset, v), "write");
  };
  write(alpha, 0, bytes({0x68, 0x65, 0x6c, 0x6c, 0x6f}));
  write(beta, 10, bytes({0xaa, 0xbb, 0xcc, 0xdd}));
  write(alpha, 16, bytes({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));
  const mmsb::PageId extra = bus.create_page(16).value();
  write(extra, 0, bytes({0x4d, 0x4d, 0x53, 0x42}));
  write(beta, 99, bytes({0x01}));
  write(alpha, 0, bytes({0x48, 0x45, 0x4c, 0x4c, 0x4f}));
  if (bus.epoch() != 12) die("the script ended at epoch " + std::to_string(bus.epoch()) + ", not 12");
  if (o.odd_name) check(bus.create_page(8, "q'\"\n\xff").status(), "create_page (odd name)");
  if (o.wide > 0) {
    const mmsb::PageId wide = bus.create_page(o.wide, "wide").value();
    model::Rng fill(o.seed ^ 0x77696465);
    std::vector<std::byte> v(o.wide);
    for (auto& b : v) b = std::byte(fill.byte());
    write(wide, 0, v);
  }
  if (o.comb) {
    const mmsb::PageId comb = bus.create_page(64, "comb").value();
    std::vector<std::byte> image(64);
    for (size_t i = 0; i < image.size(); i += 4) image[i] = std::byte{0xc0};
    check(bus.assign(comb, image), "assign (comb)");
  }

  model::Rng rng(o.seed);
  const mmsb::PageId targets[] = {alpha, beta, extra};
  const uint64_t sizes[] = {64, 100, 16};
  for (uint64_t i = 0; i < o.steps; ++i) {
    const size_t t = rng.below(3);
    const uint64_t offset = rng.below(sizes[t]);
    const uint64_t len = rng.between(1, std::min<uint64_t>(8, sizes[t] - offset));
    std::vector<std::byte> v(len);
    for (auto& b : v) b = std::byte(rng.byte());
    write(targets[t], offset, v);
  }
  if (!flipped) die("--flip-byte " + std::to_string(o.flip) + " is not the epoch of an application write");
  if (!started) die("--start-at " + std::to_string(o.start_at) + " is past the last application write");
}

int cmd_record(int argc, char** argv) {
  if (argc < 3) die("usage: record DIR [options]");
  const Options o = parse_options(argc, argv, 3);
  mmsb::Bus bus;
  std::unique_ptr<mmsb::capture::Recorder> rec;
  mmsb::capture::RecorderOptions ro;
  ro.program = "mmsb_cli_fixture";
  ro.labels = {{"test", "cli"}, {"steps", std::to_string(o.steps)}};
  ro.batch_deltas = o.batch;
  ro.segment_bytes = o.segment_bytes;
  ro.snapshot_every_deltas = o.snapshot_every;
  ro.snapshot_log_ratio = 0;
  run_script(bus, o, [&] {
    auto r = mmsb::capture::Recorder::start(bus, argv[2], ro);
    check(r.status(), "Recorder::start");
    rec = std::move(r).value();
    // A bus past epoch 0 is snapshotted first thing by the writer thread;
    // waiting for it keeps the snapshot at epoch --start-at.
    if (o.start_at > 0) check(rec->flush(), "Recorder::flush");
  });
  if (o.hold) {
    check(rec->flush(), "Recorder::flush");
    std::printf("ready\n");
    std::fflush(stdout);
    char buf[256];
    while (::read(0, buf, sizeof buf) > 0) {
    }
  }
  check(rec->stop(), "Recorder::stop");
  return 0;
}

int cmd_page(int argc, char** argv) {
  if (argc < 4) die("usage: page NAME EPOCH [options]");
  const std::string name = argv[2];
  const uint64_t epoch = std::strtoull(argv[3], nullptr, 10);
  const Options o = parse_options(argc, argv, 4);
  // Page ids are fixed by the script; the unnamed page is "4"; 'wide'
  // comes after the odd name's page when both are asked for.
  const std::map<std::string, mmsb::PageId> ids = {
      {"alpha", 0}, {"beta", 1}, {"sum", 2}, {"check", 3}, {"4", 4}, {"wide", o.odd_name ? 6u : 5u}};
  if (!ids.count(name)) die("unknown page " + name);
  const mmsb::PageId want = ids.at(name);
  mmsb::Bus bus;
  std::optional<std::string> hex;
  check(bus.subscribe(mmsb::mask_of(mmsb::EventKind::kDeltaApplied),
                      [&](const mmsb::Event& e) {
                        if (e.epoch != epoch || want >= bus.page_count()) return;
                        static const char digits[] = "0123456789abcdef";
                        std::string h;
                        for (std::byte b : bus.page_bytes(want)) {
                          h += digits[static_cast<uint8_t>(b) >> 4];
                          h += digits[static_cast<uint8_t>(b) & 15];
                        }
                        hex = h;
                      })
            .status(),
        "subscribe");
  run_script(bus, o, {});
  if (!hex) die("page " + name + " has no state at epoch " + std::to_string(epoch));
  std::printf("%s\n", hex->c_str());
  return 0;
}

// Segment files of a recording directory, in order.
std::vector<fs::path> segments(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".tlog") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// "none" when nothing of the state survives: not a recording, or one with no
// page table, snapshot or delta left (a cut inside the first frames), which
// `mmsb-replay recover` calls nothing recoverable (exit 3).
std::string last_epoch_of(const fs::path& dir) {
  const tlogr::Recording r = tlogr::read_recording(dir);
  if (!r.ok() || (r.pages.empty() && r.parts.empty() && r.deltas.empty())) return "none";
  return std::to_string(r.last_epoch);
}

int cmd_cut(int argc, char** argv) {
  if (argc != 5) die("usage: cut SRC DST OFFSET");
  const fs::path src = argv[2], dst = argv[3];
  uint64_t left = std::strtoull(argv[4], nullptr, 10);
  fs::create_directories(dst);
  for (const fs::path& seg : segments(src)) {
    if (left == 0) break;
    std::vector<uint8_t> b = tlogr::read_file(seg);
    if (b.size() > left) b.resize(left);
    left -= b.size();
    tlogr::write_file(dst / seg.filename(), b);
  }
  std::printf("%s\n", last_epoch_of(dst).c_str());
  return 0;
}

int cmd_frames(int argc, char** argv) {
  if (argc != 3) die("usage: frames DIR");
  const tlogr::Recording r = tlogr::read_recording(argv[2]);
  if (!r.ok()) die(r.error);
  for (const tlogr::Frame& f : r.frames)
    std::printf("%s %llu %u %llu %llu %u\n", r.segments[f.segment].name.c_str(),
                static_cast<unsigned long long>(f.offset), f.kind, static_cast<unsigned long long>(f.first_epoch),
                static_cast<unsigned long long>(f.last_epoch), f.payload_bytes);
  return 0;
}

int cmd_flip_bit(int argc, char** argv) {
  if (argc != 4) die("usage: flip-bit FILE OFFSET");
  std::vector<uint8_t> b = tlogr::read_file(argv[2]);
  const uint64_t off = std::strtoull(argv[3], nullptr, 10);
  if (off >= b.size()) die("offset past the end of " + std::string(argv[2]));
  b[off] ^= 1;
  tlogr::write_file(argv[2], b);
  return 0;
}

// ---- json-check: a strict RFC 8259 recognizer ----
class JsonChecker {
 public:
  explicit JsonChecker(std::string s) : s_(std::move(s)) {}
  bool document() {
    ws();
    if (!value(0)) return false;
    ws();
    return i_ == s_.size();
  }
  size_t where() const { return i_; }

 private:
  bool value(int depth) {
    if (depth > 512 || i_ >= s_.size()) return false;
    switch (s_[i_]) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': return string();
      case 't': return word("true");
      case 'f': return word("false");
      case 'n': return word("null");
      default: return number();
    }
  }
  bool object(int depth) {
    ++i_;
    ws();
    if (peek('}')) return ++i_, true;
    for (;;) {
      ws();
      if (!peek('"') || !string()) return false;
      ws();
      if (!peek(':')) return false;
      ++i_;
      ws();
      if (!value(depth + 1)) return false;
      ws();
      if (peek('}')) return ++i_, true;
      if (!peek(',')) return false;
      ++i_;
    }
  }
  bool array(int depth) {
    ++i_;
    ws();
    if (peek(']')) return ++i_, true;
    for (;;) {
      ws();
      if (!value(depth + 1)) return false;
      ws();
      if (peek(']')) return ++i_, true;
      if (!peek(',')) return false;
      ++i_;
    }
  }
  bool string() {
    ++i_;
    while (i_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') return ++i_, true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (++i_ >= s_.size()) return false;
        const char e = s_[i_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k)
            if (i_ + k >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_ + k]))) return false;
          i_ += 5;
          continue;
        }
        if (!std::strchr("\"\\/bfnrt", e)) return false;
      }
      ++i_;  // (UTF-8 validity of raw bytes is not checked here)
    }
    return false;
  }
  bool number() {
    const size_t start = i_;
    if (peek('-')) ++i_;
    if (peek('0')) {
      ++i_;
    } else if (digits() == 0) {
      return false;
    }
    if (peek('.')) {
      ++i_;
      if (digits() == 0) return false;
    }
    if (peek('e') || peek('E')) {
      ++i_;
      if (peek('+') || peek('-')) ++i_;
      if (digits() == 0) return false;
    }
    return i_ > start;
  }
  size_t digits() {
    size_t n = 0;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_, ++n;
    return n;
  }
  bool word(const char* w) {
    const size_t n = std::strlen(w);
    if (s_.compare(i_, n, w) != 0) return false;
    i_ += n;
    return true;
  }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  std::string s_;
  size_t i_ = 0;
};

int cmd_json_check() {
  std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  JsonChecker c(in);
  if (c.document()) return 0;
  std::fprintf(stderr, "mmsb_cli_fixture: not well-formed JSON near byte %zu\n", c.where());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: mmsb_cli_fixture record|page|cut|frames|last-epoch|flip-bit|json-check ...");
  const std::string cmd = argv[1];
  if (cmd == "record") return cmd_record(argc, argv);
  if (cmd == "page") return cmd_page(argc, argv);
  if (cmd == "cut") return cmd_cut(argc, argv);
  if (cmd == "frames") return cmd_frames(argc, argv);
  if (cmd == "last-epoch" && argc == 3) return std::printf("%s\n", last_epoch_of(argv[2]).c_str()) < 0;
  if (cmd == "flip-bit") return cmd_flip_bit(argc, argv);
  if (cmd == "json-check") return cmd_json_check();
  die("unknown command " + cmd);
}
