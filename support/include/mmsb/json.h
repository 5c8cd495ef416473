// The one JSON writer of MMSB (mmsb-replay --json, mmsb-bench's lines, the
// export manifest, the inspector's layout file): nested objects and arrays,
// commas placed automatically, strings escaped per RFC 8259. Bytes
// that are not valid UTF-8 (page names are arbitrary bytes) are written as
// \u00XX, one per byte, so the document always parses.
//
//   Json j;
//   j.begin_object().key("epoch").num(3).key("pages").begin_array();
//   j.begin_object().field("id", 0).field("name", "alpha").end_object();
//   j.end_array().end_object();
//   std::fputs(j.text().c_str(), stdout);
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mmsb {

class Json {
 public:
  Json& begin_object();
  Json& end_object();
  Json& begin_array();
  Json& end_array();
  Json& key(std::string_view k);

  Json& str(std::string_view v);
  Json& num(uint64_t v);
  Json& num(int64_t v);
  Json& num(uint32_t v) { return num(uint64_t{v}); }
  Json& num(int v) { return num(int64_t{v}); }
  Json& real(double v);  // 6 significant digits; null when not finite
  Json& boolean(bool v);
  Json& null();
  Json& hex(std::span<const std::byte> bytes);  // "0a1b..." (lowercase, no spaces)

  // key(k) followed by the value.
  template <class T>
  Json& field(std::string_view k, const T& v) {
    key(k);
    return put(v);
  }

  // The document so far, with a final newline once it is complete.
  const std::string& text() const { return out_; }
  // Hands over the text so far and forgets it, to stream a long document;
  // the nesting is kept, so writing simply goes on.
  std::string take() { return std::exchange(out_, {}); }

 private:
  Json& put(std::string_view v) { return str(v); }
  Json& put(const std::string& v) { return str(v); }
  Json& put(const char* v) { return str(v); }
  Json& put(bool v) { return boolean(v); }
  Json& put(double v) { return real(v); }
  Json& put(uint64_t v) { return num(v); }
  Json& put(int64_t v) { return num(v); }
  Json& put(uint32_t v) { return num(v); }
  Json& put(int v) { return num(v); }
  Json& put(unsigned long long v) { return num(uint64_t(v)); }
  Json& put(std::span<const std::byte> v) { return hex(v); }
  Json& put(const std::vector<std::byte>& v) { return hex(v); }

  void before_value();
  void close();

  std::string out_;
  // One entry per open container: true once it holds an element.
  std::vector<bool> nonempty_;
  bool after_key_ = false;
};

// Appends `s` as a JSON string literal (quotes included) to `out`.
void append_json_string(std::string& out, std::string_view s);
// `s` as a JSON string literal, quotes included.
std::string json_string(std::string_view s);

}  // namespace mmsb
