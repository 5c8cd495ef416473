// Text output of mmsb-replay: hex, hex dumps, times, the progress bar.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "mmsb/replay/text.h"

namespace mmsb::cli {

// printf into a std::string, of any length.
std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));

// "68 65 6c" (with `sep` between bytes; none when sep is 0).
std::string hex(std::span<const std::byte> bytes, char sep = ' ');

// hexdump -C style, 16 bytes a line: offset (8 hex digits, counted from
// `base`), two groups of 8 bytes, and the printable ASCII between bars.
//   00000000  68 65 6c 6c 6f 00 00 00  00 00 00 00 00 00 00 00  |hello...........|
std::string hex_dump(std::span<const std::byte> bytes, uint64_t base = 0);

// A byte string (e.g. a page name) with non-printable bytes and `quote` as \xNN.
using mmsb::replay::printable;

// ISO 8601 UTC with milliseconds: "2024-05-01T12:00:00.123Z".
std::string iso8601_utc(uint64_t ns_since_epoch);

// A progress bar on stderr, drawn only when `enabled` (stderr is a terminal
// and neither --json nor --quiet was given), at most ten times a second, and
// erased when done or destroyed:
//   index  [##########----------]  51%  1020/2000
class ProgressBar {
 public:
  ProgressBar(std::string label, bool enabled);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(uint64_t done, uint64_t total);
  void done();  // erases the bar
  // update() as a callback for the replay library's progress hooks; empty
  // when disabled, so the library does not even call it.
  std::function<void(uint64_t, uint64_t)> callback();

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

// True when progress bars may be drawn: stderr is a terminal.
bool stderr_is_terminal();

}  // namespace mmsb::cli
