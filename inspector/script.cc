#include "script.h"

#include <imgui.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "app.h"

namespace mmsb::inspector {

namespace {

using ull = unsigned long long;

const std::set<std::string>& known_commands() {
  static const std::set<std::string> k = {
      "open", "seek", "select-page", "select-byte", "view", "diff", "filter-pages", "fade", "play", "pause", "scale",
      "key", "drag-timeline", "pan-timeline", "wheel-timeline", "click-tab", "click-page", "click-diff-page",
      "click-delta", "click-deps", "click-byte", "hover-byte", "click-button", "type", "wait", "wait-file", "wait-loaded", "wait-diff", "screenshot",
      "layout-json", "stats-begin", "stats-end", "expect-epoch", "expect-page", "expect-view", "expect-byte",
      "expect-highlight", "expect-diff-pages", "expect-loaded", "expect-error", "expect-modal", "expect-banner",
      "expect-zoomed", "print", "quit"};
  return k;
}

// Commands that only look: several run in one frame.
bool is_passive(const std::string& n) {
  return n.rfind("expect-", 0) == 0 || n == "print" || n == "layout-json" || n == "stats-begin";
}

bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    if (v > (~uint64_t{0} - 9) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

bool parse_float(const std::string& s, float* out) {
  char* end = nullptr;
  const float v = std::strtof(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

bool yes_no(const std::string& s, bool* out) {
  if (s == "yes" || s == "true" || s == "1") return *out = true, true;
  if (s == "no" || s == "false" || s == "0") return *out = false, true;
  return false;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

bool Script::load(const std::string& path, std::string* error) {
  path_ = path;
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read the script " + path;
    return false;
  }
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const auto b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    const auto e = line.find_last_not_of(" \t\r");
    line = line.substr(b, e - b + 1);
    Cmd c;
    c.line = n;
    std::istringstream ss(line);
    ss >> c.name;
    for (std::string a; ss >> a;) c.args.push_back(a);
    const auto sp = line.find_first_of(" \t");
    if (sp != std::string::npos) c.rest = line.substr(line.find_first_not_of(" \t", sp));
    if (!known_commands().count(c.name)) {
      *error = "script " + path + ":" + std::to_string(n) + ": unknown command '" + c.name + "'";
      return false;
    }
    cmds_.push_back(std::move(c));
  }
  return true;
}

void Script::fail(const Cmd& c, const std::string& message) {
  if (error_.empty()) error_ = "script " + path_ + ":" + std::to_string(c.line) + ": " + c.name + ": " + message;
  done_ = true;
}

void Script::next() {
  ++pc_;
  sub_ = 0;
  retry_ = 0;
}

void Script::before_frame(App& app) {
  ImGuiIO& io = ImGui::GetIO();
  // Release what the previous frame pressed.
  if (key_ >= 0) io.KeysDown[key_] = false;
  key_ = -1;
  wheel_ = 0;
  shift_ = ctrl_ = false;
  if (warmup_ > 0) {
    --warmup_;
  } else if (!done_) {
    // Passive commands run back to back; the first active one gets this frame.
    while (pc_ < cmds_.size() && !done_) {
      const Cmd& c = cmds_[pc_];
      const bool passive = is_passive(c.name);
      if (step(app, c)) next();
      else break;  // continues next frame
      if (!passive) break;
    }
    if (pc_ >= cmds_.size()) done_ = true;
  }
  io.MousePos = ImVec2(mouse_x_, mouse_y_);
  for (int i = 0; i < 3; ++i) io.MouseDown[i] = down_[i];
  io.MouseWheel += wheel_;
  if (key_ >= 0) io.KeysDown[key_] = true;
  io.KeyShift = shift_;
  io.KeyCtrl = ctrl_;
}

void Script::after_render(App& app, const Shooter& shoot) {
  (void)app;
  if (pending_shot_.empty()) return;
  std::string err;
  const std::string path = pending_shot_;
  pending_shot_.clear();
  if (!shoot(path, &err)) {
    error_ = "script " + path_ + ": screenshot " + path + ": " + err;
    done_ = true;
  }
}

void Script::record_frame(double cpu_ms, double gl_ms, double frame_ms) {
  if (!timing_) return;
  cpu_ms_.push_back(cpu_ms);
  gl_ms_.push_back(gl_ms);
  frame_ms_.push_back(frame_ms);
}

// One frame of command `c`; true when it is complete.
bool Script::step(App& app, const Cmd& c) {
  Model& m = app.model();
  const FrameLayout& lay = app.layout();
  auto need = [&](size_t n) {
    if (c.args.size() >= n) return true;
    fail(c, "needs " + std::to_string(n) + " argument(s)");
    return false;
  };
  auto u64_arg = [&](size_t i, uint64_t* v) {
    if (parse_u64(c.args[i], v)) return true;
    fail(c, "'" + c.args[i] + "' is not a number");
    return false;
  };
  // True while it is still worth waiting a frame for something to appear.
  auto wait_more = [&] { return retry_++ < 10; };
  auto page_arg = [&](const std::string& s, PageId* id) {
    const auto p = m.find_page(s);
    if (p) {
      *id = *p;
      return true;
    }
    fail(c, "no page '" + s + "' in the recording");
    return false;
  };
  // A click at (x, y): hover, press, release over three frames.
  auto click = [&](const Rect& r, int button) {
    mouse_x_ = r.cx();
    mouse_y_ = r.cy();
    down_[button] = sub_ == 1;
    ++sub_;
    return sub_ >= 3;
  };
  auto click_in = [&](const std::vector<std::pair<uint64_t, Rect>>& v, uint64_t key, const char* what) {
    const Rect* r = lay.find(v, key);
    if (!r && sub_ == 0) {
      if (wait_more()) return false;
      fail(c, std::string(what) + " " + std::to_string(key) + " is not on screen");
      return true;
    }
    return click(r ? *r : Rect{mouse_x_, mouse_y_, mouse_x_, mouse_y_}, 0);
  };
  auto drag = [&](int button) {
    if (!need(2)) return true;
    float f0, f1;
    if (!parse_float(c.args[0], &f0) || !parse_float(c.args[1], &f1)) {
      fail(c, "fractions expected");
      return true;
    }
    uint64_t frames = 30;
    if (c.args.size() > 2 && !u64_arg(2, &frames)) return true;
    frames = std::max<uint64_t>(frames, 1);
    const Rect& t = lay.timeline;
    if (t.empty()) {
      fail(c, "no timeline on screen");
      return true;
    }
    auto x_at = [&](float f) { return t.x0 + std::clamp(f, 0.f, 1.f) * (t.x1 - t.x0 - 1); };
    mouse_y_ = t.cy();
    const uint64_t s = static_cast<uint64_t>(sub_);
    if (s == 0) {
      mouse_x_ = x_at(f0);
    } else if (s <= frames + 1) {
      down_[button] = true;
      const float f = f0 + (f1 - f0) * static_cast<float>(s - 1) / static_cast<float>(frames);
      mouse_x_ = x_at(f);
    } else {
      down_[button] = false;
      mouse_x_ = x_at(f1);
      return true;
    }
    ++sub_;
    return false;
  };

  const std::string& n = c.name;
  if (n == "open") {
    if (c.rest.empty()) return fail(c, "needs a directory"), true;
    app.open_blocking(c.rest);
    return true;
  }
  if (n == "seek") {
    uint64_t e;
    if (need(1) && u64_arg(0, &e)) m.seek(e);
    return true;
  }
  if (n == "select-page") {
    PageId id;
    if (need(1) && page_arg(c.rest, &id)) m.select_page(id);
    return true;
  }
  if (n == "select-byte") {
    uint64_t o;
    if (need(1) && u64_arg(0, &o)) m.select_byte(o);
    return true;
  }
  if (n == "view") {
    const auto v = need(1) ? parse_view(c.args[0]) : std::nullopt;
    if (v) app.show_view(*v);
    else if (!failed()) fail(c, "hex, diff or deps");
    return true;
  }
  if (n == "diff") {
    uint64_t a, b;
    if (need(2) && u64_arg(0, &a) && u64_arg(1, &b)) m.set_diff(a, b);
    return true;
  }
  if (n == "filter-pages") {
    app.set_page_filter(c.rest);
    return true;
  }
  if (n == "fade") {
    uint64_t k;
    if (need(1) && u64_arg(0, &k)) m.set_fade(static_cast<int>(std::min<uint64_t>(k, 64)));
    return true;
  }
  if (n == "scale") {  // main.cc applies it before the next frame
    float f = 0;
    if (!need(1)) return true;
    if (!parse_float(c.args[0], &f) || !(f >= 0.5f && f <= 4.f)) return fail(c, "a scale from 0.5 to 4 expected"), true;
    display_scale_ = f;
    return true;
  }
  if (n == "play") {
    float r = 30;
    if (!c.args.empty() && !parse_float(c.args[0], &r)) return fail(c, "a rate expected"), true;
    m.set_rate(r);
    m.set_playing(true);
    return true;
  }
  if (n == "pause") {
    m.set_playing(false);
    return true;
  }
  if (n == "key") {
    if (!need(1)) return true;
    static const std::map<std::string, ImGuiKey> keys = {
        {"Left", ImGuiKey_LeftArrow}, {"Right", ImGuiKey_RightArrow}, {"Up", ImGuiKey_UpArrow},
        {"Down", ImGuiKey_DownArrow}, {"Home", ImGuiKey_Home},        {"End", ImGuiKey_End},
        {"PageUp", ImGuiKey_PageUp},  {"PageDown", ImGuiKey_PageDown}, {"Space", ImGuiKey_Space},
        {"Enter", ImGuiKey_Enter},    {"Escape", ImGuiKey_Escape},    {"A", ImGuiKey_A}};
    std::string name = c.args[0];
    bool shift = false, ctrl = false;
    for (;;) {
      if (name.rfind("Shift+", 0) == 0) shift = true, name = name.substr(6);
      else if (name.rfind("Ctrl+", 0) == 0) ctrl = true, name = name.substr(5);
      else break;
    }
    const auto k = keys.find(name);
    if (k == keys.end() && name != "F5") return fail(c, "unknown key '" + c.args[0] + "'"), true;
    uint64_t count = 1;
    if (c.args.size() > 1 && !u64_arg(1, &count)) return true;
    // Even frames press (one frame down), odd frames release.
    const int idx = k == keys.end() ? kReloadKey : ImGui::GetIO().KeyMap[k->second];
    if (idx < 0 || idx >= static_cast<int>(IM_ARRAYSIZE(ImGui::GetIO().KeysDown))) return fail(c, "key not mapped"), true;
    shift_ = shift;
    ctrl_ = ctrl;
    if (sub_ % 2 == 0) key_ = idx;
    ++sub_;
    return static_cast<uint64_t>(sub_) >= 2 * count;
  }
  if (n == "drag-timeline") return drag(0);
  if (n == "pan-timeline") return drag(1);
  if (n == "wheel-timeline") {
    float f, ticks;
    if (!need(2)) return true;
    if (!parse_float(c.args[0], &f) || !parse_float(c.args[1], &ticks)) return fail(c, "numbers expected"), true;
    const Rect& t = lay.timeline;
    if (t.empty()) return fail(c, "no timeline on screen"), true;
    mouse_x_ = t.x0 + std::clamp(f, 0.f, 1.f) * (t.x1 - t.x0 - 1);
    mouse_y_ = t.cy();
    if (sub_ == 1) wheel_ = ticks;
    ++sub_;
    return sub_ >= 3;
  }
  if (n == "click-tab") {
    if (!need(1)) return true;
    const auto it = lay.tabs.find(c.args[0]);
    if (it == lay.tabs.end() && sub_ == 0 && wait_more()) return false;
    if (it == lay.tabs.end()) return fail(c, "no tab '" + c.args[0] + "' on screen"), true;
    return click(it->second, 0);
  }
  if (n == "click-page" || n == "click-diff-page") {
    PageId id;
    if (!need(1) || !page_arg(c.rest, &id)) return true;
    const auto& rows = n == "click-page" ? lay.page_rows : lay.diff_rows;
    const Rect* r = nullptr;
    for (const auto& [p, rr] : rows)
      if (p == id) r = &rr;
    if (!r && sub_ == 0 && wait_more()) return false;
    if (!r && sub_ == 0) return fail(c, "the row of page " + c.rest + " is not on screen"), true;
    return click(r ? *r : Rect{mouse_x_, mouse_y_, mouse_x_, mouse_y_}, 0);
  }
  if (n == "click-delta" || n == "click-deps" || n == "click-byte" || n == "hover-byte") {
    uint64_t k;
    if (!need(1) || !u64_arg(0, &k)) return true;
    const auto& v = n == "click-delta" ? lay.delta_rows : n == "click-deps" ? lay.deps_nodes : lay.hex_cells;
    if (n == "hover-byte") {
      const Rect* r = lay.find(v, k);
      if (!r && wait_more()) return false;
      if (!r) return fail(c, "byte " + c.args[0] + " is not on screen"), true;
      mouse_x_ = r->cx();
      mouse_y_ = r->cy();
      return true;
    }
    return click_in(v, k, n == "click-byte" ? "byte" : "epoch");
  }
  if (n == "click-button") {
    const auto it = lay.buttons.find(c.rest);
    if (it == lay.buttons.end() && sub_ == 0 && wait_more()) return false;
    if (it == lay.buttons.end() && sub_ == 0) return fail(c, "no button '" + c.rest + "' on screen"), true;
    return click(it != lay.buttons.end() ? it->second : Rect{mouse_x_, mouse_y_, mouse_x_, mouse_y_}, 0);
  }
  if (n == "type") {
    ImGui::GetIO().AddInputCharactersUTF8(c.rest.c_str());
    return true;
  }
  if (n == "wait") {
    uint64_t f = 1;
    if (!c.args.empty() && !u64_arg(0, &f)) return true;
    return static_cast<uint64_t>(++sub_) > f;
  }
  if (n == "wait-file") {  // another process's signal, for tests: up to a minute
    if (c.rest.empty()) return fail(c, "needs a file"), true;
    if (std::filesystem::exists(c.rest)) return true;
    if (++sub_ > 6000) return fail(c, "no " + c.rest + " after a minute"), true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return false;
  }
  if (n == "wait-loaded") {
    if (!app.loading() || ++sub_ > 600 * 60) return true;
    return false;
  }
  if (n == "wait-diff") {
    if (!m.diff_pending() || ++sub_ > 600 * 60) return true;
    return false;
  }
  if (n == "screenshot") {
    if (c.rest.empty()) return fail(c, "needs a file"), true;
    if (sub_ <= 2 && m.diff_pending()) {  // capture the diff, not "computing": wait, then settle again
      m.wait_diff();
      sub_ = 0;
      return false;
    }
    // Two frames for the layout to settle, then the third is captured.
    if (sub_ == 2) {
      pending_shot_ = c.rest;
      ++sub_;
      return false;
    }
    if (sub_ > 2) return pending_shot_.empty();
    ++sub_;
    return false;
  }
  if (n == "layout-json") {
    std::string err;
    if (c.rest.empty()) fail(c, "needs a file");
    else if (!app.write_layout_json(c.rest, &err)) fail(c, err);
    return true;
  }
  if (n == "stats-begin") {
    timing_ = true;
    cpu_ms_.clear();
    gl_ms_.clear();
    frame_ms_.clear();
    return true;
  }
  if (n == "stats-end") {
    timing_ = false;
    const double cpu50 = percentile(cpu_ms_, 0.5), cpu95 = percentile(cpu_ms_, 0.95),
                 cpumax = cpu_ms_.empty() ? 0 : *std::max_element(cpu_ms_.begin(), cpu_ms_.end());
    const double f50 = percentile(frame_ms_, 0.5), f95 = percentile(frame_ms_, 0.95),
                 fmax = frame_ms_.empty() ? 0 : *std::max_element(frame_ms_.begin(), frame_ms_.end());
    std::printf("frame stats: %zu frames, cursor now at epoch %llu\n"
                "  model + UI building (CPU) ms: p50 %.2f  p95 %.2f  max %.2f\n"
                "  OpenGL draw (glFinish)    ms: p50 %.2f  p95 %.2f\n"
                "  whole frame (with swap)   ms: p50 %.2f  p95 %.2f  max %.2f\n",
                cpu_ms_.size(), static_cast<ull>(m.cursor()), cpu50, cpu95, cpumax, percentile(gl_ms_, 0.5),
                percentile(gl_ms_, 0.95), f50, f95, fmax);
    std::fflush(stdout);
    float limit;
    if (!c.args.empty() && parse_float(c.args[0], &limit) && cpu95 > limit) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "95th percentile of the CPU time per frame is %.2f ms, over %.2f ms", cpu95, limit);
      fail(c, buf);
    }
    return true;
  }
  if (n == "print") {
    std::printf("%s\n", c.rest.c_str());
    std::fflush(stdout);
    return true;
  }
  if (n == "quit") {
    done_ = true;
    return true;
  }
  // Expectations.
  if (n == "expect-epoch") {
    uint64_t e;
    if (need(1) && u64_arg(0, &e) && m.cursor() != e)
      fail(c, "expected epoch " + std::to_string(e) + ", the cursor is at " + std::to_string(m.cursor()));
    return true;
  }
  if (n == "expect-page") {
    PageId id;
    if (need(1) && page_arg(c.rest, &id) && m.selected_page() != id)
      fail(c, "expected page " + c.rest + ", the selected page is " +
                  (m.selected_page() == kNoPage ? std::string("none") : m.page_label(m.selected_page())));
    return true;
  }
  if (n == "expect-view") {
    if (need(1) && c.args[0] != view_name(m.view()))
      fail(c, "expected view " + c.args[0] + ", the view is " + view_name(m.view()));
    return true;
  }
  if (n == "expect-byte") {
    uint64_t o;
    if (need(1) && u64_arg(0, &o) && m.selected_byte() != std::optional<uint64_t>(o))
      fail(c, "expected byte " + c.args[0] + " to be selected, " +
                  (m.selected_byte() ? std::to_string(*m.selected_byte()) : std::string("none")) + " is");
    return true;
  }
  if (n == "expect-highlight") {
    uint64_t o;
    if (!need(2) || !u64_arg(0, &o)) return true;
    const auto h = m.highlight();
    const uint64_t base = m.window_offset();
    if (o < base || o - base >= h.size())
      return fail(c, "byte " + c.args[0] + " is not in the hex view's window of the page (or no page is shown)"), true;
    const int age = h[o - base];
    const std::string got = age == kAgeCurrent     ? "current"
                            : age == kAgeUnchanged ? "unchanged"
                            : age == kAgeNone      ? "none"
                                                   : "recent";
    if (got != c.args[1]) fail(c, "byte " + c.args[0] + " is " + got + " (age " + std::to_string(age) + "), expected " + c.args[1]);
    return true;
  }
  if (n == "expect-diff-pages") {
    m.wait_diff();
    uint64_t k;
    if (need(1) && u64_arg(0, &k) && m.diff().size() != k)
      fail(c, "expected " + c.args[0] + " differing pages, got " + std::to_string(m.diff().size()) +
                  (m.diff_error().empty() ? "" : " (" + m.diff_error() + ")"));
    return true;
  }
  if (n == "expect-loaded") {
    bool want = false;
    if (need(1) && yes_no(c.args[0], &want) && m.loaded() != want)
      fail(c, std::string("expected ") + (want ? "a recording to be open" : "no recording open"));
    return true;
  }
  if (n == "expect-error") {
    if (app.last_error().find(c.rest) == std::string::npos)
      fail(c, "expected an open error holding '" + c.rest + "', got '" + app.last_error() + "'");
    return true;
  }
  if (n == "expect-modal") {
    const bool shown = !lay.modal.empty() && (lay.modal.find(c.rest) != std::string::npos ||
                                               lay.modal_text.find(c.rest) != std::string::npos);
    if (!shown && wait_more()) return false;
    if (!shown)
      fail(c, "expected a modal holding '" + c.rest + "', got '" + lay.modal + "'");
    return true;
  }
  if (n == "expect-banner") {
    bool want = false;
    if (!need(1)) return true;
    if (!yes_no(c.args[0], &want)) return fail(c, "yes or no"), true;
    if (lay.banner != want && wait_more()) return false;
    if (lay.banner != want) fail(c, std::string("expected the damage banner to be ") + (want ? "shown" : "hidden"));
    return true;
  }
  if (n == "expect-zoomed") {
    bool want = false;
    if (need(1) && yes_no(c.args[0], &want)) {
      const double full = static_cast<double>(m.last_epoch() - m.first_epoch()) + 1;
      const bool zoomed = m.timeline().span() < full - 1e-6;
      if (zoomed != want)
        fail(c, "the timeline shows " + std::to_string(m.timeline().span()) + " of " + std::to_string(full) + " epochs");
    }
    return true;
  }
  fail(c, "not implemented");
  return true;
}

}  // namespace mmsb::inspector
