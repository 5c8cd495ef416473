// JSON-line output: one flat object per line on stdout, fields in the order
// they were added. Numbers are written with 6 significant digits; a value
// that is not finite (a 0-second measurement) is written as null. Built on
// mmsb::Json (support/), the project's one JSON writer.
//
//   JsonLine("apply", "W1").num("deltas_per_s", 2.1e7).num("mb_per_s", 690).emit();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mmsb/json.h"

namespace mmsb::bench {

class JsonLine {
 public:
  // Starts {"bench":..., "workload":...}: every line carries both.
  JsonLine(std::string_view bench, std::string_view workload);
  JsonLine& str(std::string_view key, std::string_view value);
  JsonLine& num(std::string_view key, double value);
  JsonLine& integer(std::string_view key, int64_t value);
  JsonLine& boolean(std::string_view key, bool value);
  // The object, closed.
  std::string text() const;
  // Writes the line to stdout and flushes it (progress goes to stderr, so the
  // two interleave sensibly on a terminal).
  void emit() const;

 private:
  Json json_;
};

}  // namespace mmsb::bench
