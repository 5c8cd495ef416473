#include "mmsb/json.h"

#include <cmath>
#include <cstdio>

namespace mmsb {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if there is none
// (overlong forms, surrogates and code points past U+10FFFF are invalid).
size_t utf8_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

void append_u00(std::string& out, unsigned char c) {
  static const char kHex[] = "0123456789abcdef";
  out += "\\u00";
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = utf8_length(s, i);
    if (n == 0) {  // not UTF-8: the byte as a code point
      append_u00(out, c);
      ++i;
      continue;
    }
    if (n > 1) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    ++i;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      append_u00(out, c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void Json::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!nonempty_.empty()) {
    if (nonempty_.back()) out_ += ',';
    nonempty_.back() = true;
  }
}

void Json::close() {
  nonempty_.pop_back();
  if (nonempty_.empty()) out_ += '\n';
}

std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

Json& Json::begin_object() {
  before_value();
  out_ += '{';
  nonempty_.push_back(false);
  return *this;
}

Json& Json::end_object() {
  out_ += '}';
  close();
  return *this;
}

Json& Json::begin_array() {
  before_value();
  out_ += '[';
  nonempty_.push_back(false);
  return *this;
}

Json& Json::end_array() {
  out_ += ']';
  close();
  return *this;
}

Json& Json::key(std::string_view k) {
  before_value();
  append_json_string(out_, k);
  out_ += ':';
  after_key_ = true;
  return *this;
}

Json& Json::str(std::string_view v) {
  before_value();
  append_json_string(out_, v);
  return *this;
}

Json& Json::num(uint64_t v) {
  before_value();
  out_ += std::to_string(v);
  return *this;
}

Json& Json::num(int64_t v) {
  before_value();
  out_ += std::to_string(v);
  return *this;
}

Json& Json::real(double v) {
  before_value();
  if (!std::isfinite(v)) {
    out_ += "null";
    return *this;
  }
  char tmp[32];
  std::snprintf(tmp, sizeof tmp, "%.6g", v);
  out_ += tmp;
  return *this;
}

Json& Json::boolean(bool v) {
  before_value();
  out_ += v ? "true" : "false";
  return *this;
}

Json& Json::null() {
  before_value();
  out_ += "null";
  return *this;
}

Json& Json::hex(std::span<const std::byte> bytes) {
  static const char kHex[] = "0123456789abcdef";
  before_value();
  out_ += '"';
  for (std::byte b : bytes) {
    const auto c = static_cast<unsigned char>(b);
    out_ += kHex[c >> 4];
    out_ += kHex[c & 15];
  }
  out_ += '"';
  return *this;
}

}  // namespace mmsb
