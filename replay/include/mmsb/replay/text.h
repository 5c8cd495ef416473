// Text for people: byte strings (page names, labels) made safe to print.
#pragma once

#include <string>
#include <string_view>

namespace mmsb::replay {

// `s` with every byte outside printable ASCII, every backslash and every
// `quote` written as \xNN, so that a name quoted with `quote` reads back
// unambiguously. quote '\0' escapes no printable character but the
// backslash. Summaries (CompareReport) quote page names with '.
std::string printable(std::string_view s, char quote = '\'');

}  // namespace mmsb::replay
