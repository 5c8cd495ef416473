// Text for people: byte strings (page names, labels) made safe to print.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mmsb::replay {

// `s` with every byte outside printable ASCII, every backslash and every
// `quote` written as \xNN, so that a name quoted with `quote` reads back
// unambiguously. quote '\0' escapes no printable character but the
// backslash. Summaries (CompareReport) quote page names with '.
std::string printable(std::string_view s, char quote = '\'');

// A byte offset or count as people type it: decimal digits, or hex digits
// after 0x (as hex dumps print offsets). Nothing else: no sign, no spaces.
std::optional<uint64_t> parse_offset(std::string_view s);

}  // namespace mmsb::replay
