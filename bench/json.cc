#include "json.h"

#include <cstdio>

namespace mmsb::bench {

JsonLine::JsonLine(std::string_view bench, std::string_view workload) {
  json_.begin_object();
  str("bench", bench);
  str("workload", workload);
}

JsonLine& JsonLine::str(std::string_view k, std::string_view value) {
  json_.key(k).str(value);
  return *this;
}

JsonLine& JsonLine::num(std::string_view k, double value) {
  json_.key(k).real(value);
  return *this;
}

JsonLine& JsonLine::integer(std::string_view k, int64_t value) {
  json_.key(k).num(value);
  return *this;
}

JsonLine& JsonLine::boolean(std::string_view k, bool value) {
  json_.key(k).boolean(value);
  return *this;
}

std::string JsonLine::text() const {
  Json closed = json_;
  closed.end_object();
  std::string line = closed.text();
  while (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

void JsonLine::emit() const {
  const std::string line = text() + '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

}  // namespace mmsb::bench
