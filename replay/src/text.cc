#include "mmsb/replay/text.h"

#include <charconv>

namespace mmsb::replay {

std::string printable(std::string_view s, char quote) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F || ch == quote || ch == '\\') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

std::optional<uint64_t> parse_offset(std::string_view s) {
  const bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  const char* first = s.data() + (hex ? 2 : 0);
  const char* last = s.data() + s.size();
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(first, last, v, hex ? 16 : 10);
  if (first == last || ec != std::errc() || end != last) return std::nullopt;
  return v;
}

}  // namespace mmsb::replay
