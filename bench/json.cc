#include "json.h"

#include <cmath>
#include <cstdio>

namespace mmsb::bench {

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
          out += esc;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

JsonLine::JsonLine(std::string_view bench, std::string_view workload) {
  buf_.reserve(256);
  buf_.push_back('{');
  str("bench", bench);
  str("workload", workload);
}

void JsonLine::key(std::string_view k) {
  if (buf_.size() > 1) buf_ += ',';
  append_json_string(buf_, k);
  buf_ += ':';
}

JsonLine& JsonLine::str(std::string_view k, std::string_view value) {
  key(k);
  append_json_string(buf_, value);
  return *this;
}

JsonLine& JsonLine::num(std::string_view k, double value) {
  key(k);
  if (!std::isfinite(value)) {
    buf_ += "null";
    return *this;
  }
  char tmp[32];
  std::snprintf(tmp, sizeof tmp, "%.6g", value);
  buf_ += tmp;
  return *this;
}

JsonLine& JsonLine::integer(std::string_view k, int64_t value) {
  key(k);
  buf_ += std::to_string(value);
  return *this;
}

JsonLine& JsonLine::boolean(std::string_view k, bool value) {
  key(k);
  buf_ += value ? "true" : "false";
  return *this;
}

void JsonLine::emit() const {
  std::string line = text();
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

}  // namespace mmsb::bench
