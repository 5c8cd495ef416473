#include "output.h"

#include <unistd.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace mmsb::cli {

namespace {
constexpr char kHexDigits[] = "0123456789abcdef";

void append_hex(std::string& out, std::byte b) {
  const auto c = static_cast<unsigned char>(b);
  out += kHexDigits[c >> 4];
  out += kHexDigits[c & 15];
}
}  // namespace

std::string fmt(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  const int n = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(out.data(), out.size() + 1, format, again);
  va_end(again);
  return out;
}

std::string hex(std::span<const std::byte> bytes, char sep) {
  std::string out;
  out.reserve(bytes.size() * 3);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i > 0 && sep) out += sep;
    append_hex(out, bytes[i]);
  }
  return out;
}

std::string hex_dump(std::span<const std::byte> bytes, uint64_t base) {
  std::string out;
  out.reserve((bytes.size() / 16 + 1) * 80);
  for (size_t line = 0; line < bytes.size(); line += 16) {
    char offset[24];
    std::snprintf(offset, sizeof offset, "%08" PRIx64 "  ", base + line);
    out += offset;
    std::string ascii;
    for (size_t i = 0; i < 16; ++i) {
      if (i == 8) out += ' ';
      if (line + i < bytes.size()) {
        const std::byte b = bytes[line + i];
        append_hex(out, b);
        out += ' ';
        const auto c = static_cast<unsigned char>(b);
        ascii += (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '.';
      } else {
        out += "   ";
      }
    }
    out += " |";
    out += ascii;
    out += "|\n";
  }
  return out;
}

std::string iso8601_utc(uint64_t ns) {
  const time_t secs = static_cast<time_t>(ns / 1000000000u);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<unsigned>(ns / 1000000u % 1000u));
  return buf;
}

bool stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

ProgressBar::ProgressBar(std::string label, bool enabled) : label_(std::move(label)), enabled_(enabled) {}

ProgressBar::~ProgressBar() { done(); }

void ProgressBar::update(uint64_t done, uint64_t total) {
  if (!enabled_ || total == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && done < total && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  constexpr int kWidth = 30;
  const double frac = done >= total ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '-');
  std::fprintf(stderr, "\r%s [%s] %3d%%  %" PRIu64 "/%" PRIu64 "\033[K", label_.c_str(), bar.c_str(),
               static_cast<int>(frac * 100), done, total);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::done() {
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

std::function<void(uint64_t, uint64_t)> ProgressBar::callback() {
  if (!enabled_) return {};
  return [this](uint64_t done, uint64_t total) { update(done, total); };
}

}  // namespace mmsb::cli
