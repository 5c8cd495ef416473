// mmsb-inspector under Xvfb: renders screenshots and runs scripts against
// the fixture of fixture.h, then checks the model state the inspector
// reports and the pixels of its screenshots (decoded with stb_image), at the
// hex cells the --layout-json sidecar names.
//
//   mmsb_inspector_gui_test INSPECTOR WORKDIR CASE
//   CASE: hex | window | diff | deps | script | damaged | args | cancel | scroll | names | reload | scale
//
// Exit 0 passed, 1 failed, 77 skipped (no xvfb-run, or no X server or
// OpenGL could start: "no X server: ...").
#include <stb_image.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"
#include "mmsb/format.h"
#include "mmsb/replay/recording.h"

namespace fs = std::filesystem;

namespace {

constexpr int kSkip = 77;
int g_failures = 0;

#define EXPECT(cond, ...)                                     \
  do {                                                        \
    if (!(cond)) {                                            \
      std::fprintf(stderr, "FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                      \
      std::fprintf(stderr, "\n");                             \
      ++g_failures;                                           \
    }                                                         \
  } while (0)

std::string quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) {
    if (c == '\'') o += "'\\''";
    else o += c;
  }
  return o + "'";
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool on_path(const char* prog) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(ss, dir, ':');)
    if (!dir.empty() && ::access((fs::path(dir) / prog).c_str(), X_OK) == 0) return true;
  return false;
}

struct Run {
  int code = -1;
  std::string out, err;
};

// The Xvfb screen, and environment variables (VAR=value ...) for the
// inspector: a case may set them for its runs.
std::string g_screen = "1280x800x24";
std::string g_env;

// Runs the inspector with `args` under xvfb-run; exits 77 when no X server
// (or no OpenGL window) could be had.
Run run_inspector_once(const std::string& inspector, const fs::path& work, const std::string& args,
                       int timeout_s = 0) {
  const fs::path out = work / "stdout.txt", err = work / "stderr.txt";
  const std::string cmd = (timeout_s ? "timeout -k 5 " + std::to_string(timeout_s) + " " : std::string()) +
                          (g_env.empty() ? std::string() : "env " + g_env + " ") + "xvfb-run -a -s '-screen 0 " +
                          g_screen + "' " + quote(inspector) + " " + args + " >" + quote(out.string()) + " 2>" +
                          quote(err.string());
  const int st = std::system(cmd.c_str());
  Run r;
  r.out = read_file(out);
  r.err = read_file(err);
  if (st == -1 || !WIFEXITED(st)) {
    r.code = -1;
    std::fprintf(stderr, "%s\n  did not exit normally (status %d)\n%s", cmd.c_str(), st, r.err.c_str());
    return r;
  }
  r.code = WEXITSTATUS(st);
  // xvfb-run also says "xvfb-run: error: problem while cleaning up" after a
  // run that worked: only a server that did not start means "skip".
  if (r.code == 69 || r.err.find("Xvfb failed to start") != std::string::npos ||
      r.err.find("xauth command not found") != std::string::npos) {
    std::printf("no X server: %s\n", r.err.c_str());
    std::exit(kSkip);
  }
  std::printf("$ %s\n  -> exit %d\n%s%s", cmd.c_str(), r.code, r.out.c_str(), r.err.c_str());
  return r;
}

// xvfb-run exits 5 when removing its temporary directory fails (a race with
// xauth's lock files), after the program ran: its status is lost, so run it
// again (every run here can be repeated).
Run run_inspector(const std::string& inspector, const fs::path& work, const std::string& args, int timeout_s = 0) {
  Run r;
  for (int attempt = 0; attempt < 3; ++attempt) {
    r = run_inspector_once(inspector, work, args, timeout_s);
    if (!(r.code == 5 && r.err.find("problem while cleaning up temporary directory") != std::string::npos)) break;
    std::printf("  (xvfb-run failed to clean up after itself; running again)\n");
  }
  return r;
}

// ---- the layout sidecar: a few keys of a JSON file the inspector writes ----

// The numbers inside the value of "key" (a flat or nested array), grouped by
// innermost array.
std::vector<std::vector<long long>> json_arrays(const std::string& json, const std::string& key) {
  std::vector<std::vector<long long>> out;
  const auto k = json.find("\"" + key + "\":");
  if (k == std::string::npos) return out;
  size_t i = json.find('[', k);
  if (i == std::string::npos) return out;
  int depth = 0;
  std::vector<long long> cur;
  for (; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '[') {
      ++depth;
      cur.clear();
    } else if (c == ']') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
      if (--depth == 0) break;
    } else if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
      size_t used = 0;
      cur.push_back(std::stoll(json.substr(i), &used));
      i += used - 1;
    }
  }
  return out;
}

std::string json_string(const std::string& json, const std::string& key) {
  const auto k = json.find("\"" + key + "\": \"");
  if (k == std::string::npos) return "";
  const size_t b = k + key.size() + 5;
  std::string s;
  for (size_t i = b; i < json.size() && json[i] != '"'; ++i) {
    if (json[i] == '\\' && i + 1 < json.size()) ++i;
    s += json[i];
  }
  return s;
}

long long json_number(const std::string& json, const std::string& key) {
  const auto k = json.find("\"" + key + "\": ");
  if (k == std::string::npos) return -999;
  return std::stoll(json.substr(k + key.size() + 4));
}

struct Rgb {
  int r = 0, g = 0, b = 0;
  bool near(const Rgb& o, int tol = 3) const {
    return std::abs(r - o.r) <= tol && std::abs(g - o.g) <= tol && std::abs(b - o.b) <= tol;
  }
};

Rgb json_color(const std::string& json, const std::string& name) {
  const auto a = json_arrays(json, name);
  if (a.empty() || a[0].size() != 3) return {-100, -100, -100};
  return {static_cast<int>(a[0][0]), static_cast<int>(a[0][1]), static_cast<int>(a[0][2])};
}

struct Image {
  int w = 0, h = 0;
  std::vector<unsigned char> px;
  bool load(const fs::path& p) {
    int n = 0;
    unsigned char* d = stbi_load(p.c_str(), &w, &h, &n, 3);
    if (!d) return false;
    px.assign(d, d + static_cast<size_t>(w) * h * 3);
    stbi_image_free(d);
    return true;
  }
  Rgb at(long long x, long long y) const {
    if (x < 0 || y < 0 || x >= w || y >= h) return {-100, -100, -100};
    const unsigned char* p = &px[(static_cast<size_t>(y) * w + static_cast<size_t>(x)) * 3];
    return {p[0], p[1], p[2]};
  }
};

// A cell's fill: its top-left and bottom-right corners, inside the rectangle
// and clear of the glyph drawn in its middle.
struct Cell {
  long long key = 0, x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};
std::map<long long, Cell> cells(const std::string& json, const std::string& key) {
  std::map<long long, Cell> m;
  for (const auto& a : json_arrays(json, key))
    if (a.size() == 5) m[a[0]] = {a[0], a[1], a[2], a[3], a[4]};
  return m;
}
bool cell_is(const Image& img, const Cell& c, const Rgb& want) {
  return img.at(c.x0 + 1, c.y0 + 1).near(want) && img.at(c.x1 - 2, c.y1 - 2).near(want);
}
std::string cell_colors(const Image& img, const Cell& c) {
  const Rgb a = img.at(c.x0 + 1, c.y0 + 1), b = img.at(c.x1 - 2, c.y1 - 2);
  char buf[96];
  std::snprintf(buf, sizeof buf, "(%d,%d,%d)/(%d,%d,%d)", a.r, a.g, a.b, b.r, b.g, b.b);
  return buf;
}

struct Shot {
  Image img;
  std::string json;
};

// The sidecar's "fits": {"name": [right, limit], ...}: texts that must not be
// clipped, how far each reaches and the edge of its room.
std::map<std::string, std::pair<long long, long long>> json_fits(const std::string& json) {
  std::map<std::string, std::pair<long long, long long>> m;
  const auto k = json.find("\"fits\": {");
  if (k == std::string::npos) return m;
  const auto end = json.find('}', k);
  for (size_t i = json.find('"', k + 8); i < end; i = json.find('"', i)) {
    const size_t q = json.find('"', i + 1);
    const size_t b = json.find('[', q), c = json.find(',', b), e = json.find(']', c);
    if (q >= end || b >= end || c >= end || e >= end) break;
    m[json.substr(i + 1, q - i - 1)] = {std::stoll(json.substr(b + 1)), std::stoll(json.substr(c + 1))};
    i = e;
  }
  return m;
}

// The texts `want` names are drawn and stay inside their room (review #9:
// clipped labels); with `all`, every text the sidecar lists does.
void expect_fits(const std::string& json, const std::vector<std::string>& want, const char* what, bool all) {
  const auto fits = json_fits(json);
  for (const auto& w : want) EXPECT(fits.count(w), "%s: no \"%s\" in the sidecar's fits", what, w.c_str());
  for (const auto& [name, f] : fits)
    if (all || std::find(want.begin(), want.end(), name) != want.end())
      EXPECT(f.first <= f.second, "%s: \"%s\" is clipped: it reaches x=%lld, its room ends at x=%lld", what,
             name.c_str(), f.first, f.second);
}

Shot load_shot(const fs::path& png, const fs::path& json) {
  Shot s;
  EXPECT(s.img.load(png), "cannot decode %s: %s", png.c_str(), stbi_failure_reason());
  s.json = read_file(json);
  EXPECT(!s.json.empty(), "no layout sidecar %s", json.c_str());
  EXPECT(s.img.w == 1280 && s.img.h == 800, "screenshot is %dx%d", s.img.w, s.img.h);
  return s;
}

// ---- cases ----

// Epoch 5 wrote alpha [16,20) and [40,42): those hex (and ASCII) cells in
// the delta colour, epoch 1's [0,4) in a fading colour, the rest plain.
void case_hex(const std::string& inspector, const fs::path& work, const fs::path& rec) {
  const fs::path png = work / "hex.png", json = work / "hex.json";
  const Run r = run_inspector(inspector, work,
                              quote(rec.string()) + " --screenshot " + quote(png.string()) +
                                  " --epoch 5 --page alpha --view hex --layout-json " + quote(json.string()));
  EXPECT(r.code == 0, "exit code %d", r.code);
  const Shot s = load_shot(png, json);
  EXPECT(json_number(s.json, "epoch") == 5, "epoch in the sidecar");
  EXPECT(json_number(s.json, "page") == fixture::kAlpha, "page in the sidecar");
  EXPECT(json_string(s.json, "view") == "hex", "view in the sidecar");
  const Rgb current = json_color(s.json, "current"), bg = json_color(s.json, "background");
  const auto hex = cells(s.json, "hex_cells"), ascii = cells(s.json, "ascii_cells");
  EXPECT(hex.size() == 64, "%zu hex cells on screen, want 64", hex.size());
  int current_cells = 0;
  for (const auto& [off, c] : hex) {
    const bool by5 = (off >= 16 && off < 20) || off == 40 || off == 41;
    const bool by1 = off < 4;
    if (by5) {
      EXPECT(cell_is(s.img, c, current), "byte %lld written at epoch 5 is not highlighted: %s", off,
             cell_colors(s.img, c).c_str());
      EXPECT(ascii.count(off) && cell_is(s.img, ascii.at(off), current), "ASCII cell of byte %lld", off);
      ++current_cells;
    } else if (by1) {
      // Fading: neither the delta colour nor the plain background.
      EXPECT(!s.img.at(c.x0 + 1, c.y0 + 1).near(current, 20) && !s.img.at(c.x0 + 1, c.y0 + 1).near(bg, 10),
             "byte %lld written at epoch 1 should be in a fading colour: %s", off, cell_colors(s.img, c).c_str());
    } else {
      EXPECT(cell_is(s.img, c, bg), "byte %lld was never written but is coloured: %s", off,
             cell_colors(s.img, c).c_str());
    }
  }
  EXPECT(current_cells == 6, "%d highlighted cells", current_cells);
  // The cursor on the timeline.
  const auto tl = json_arrays(s.json, "timeline");
  const Rgb cursor = json_color(s.json, "cursor");
  int cursor_px = 0;
  if (!tl.empty() && tl[0].size() == 4)
    for (long long y = tl[0][1]; y < tl[0][3]; ++y)
      for (long long x = tl[0][0]; x < tl[0][2]; ++x) cursor_px += s.img.at(x, y).near(cursor) ? 1 : 0;
  EXPECT(cursor_px > 20, "the epoch cursor is not drawn on the timeline (%d pixels)", cursor_px);

  // Smaller windows: the side panels give way so that a row of 16 bytes
  // still fits at 1024 px; at 800 px the hex view shows 8 a row and the
  // toolbar takes two rows. Nothing in the toolbar or the hex view is cut.
  for (const auto& [size, per_row] : {std::pair<std::string, long long>{"1024x700", 16}, {"800x600", 8}}) {
    const fs::path small_json = work / ("hex-" + size + ".json");
    const Run sr = run_inspector(inspector, work,
                                 quote(rec.string()) + " --size " + size + " --screenshot " +
                                     quote((work / ("hex-" + size + ".png")).string()) +
                                     " --epoch 5 --page alpha --view hex --layout-json " + quote(small_json.string()));
    EXPECT(sr.code == 0, "exit code %d (%s)", sr.code, size.c_str());
    const std::string j = read_file(small_json);
    expect_fits(j, {"toolbar", "hex:grid", "hex:legend", "hex:byte"}, size.c_str(), false);
    const auto small_hex = cells(j, "hex_cells");
    EXPECT(small_hex.size() == 64, "%s: %zu hex cells, want 64", size.c_str(), small_hex.size());
    // Byte `per_row` starts the second row, under byte 0.
    if (small_hex.count(0) && small_hex.count(per_row) && small_hex.count(per_row - 1)) {
      const Cell &first = small_hex.at(0), &last = small_hex.at(per_row - 1), &next = small_hex.at(per_row);
      EXPECT(last.y0 == first.y0 && next.y0 > first.y0 && next.x0 == first.x0,
             "%s: byte %lld is not the first of the second row (%lld bytes a row expected)", size.c_str(), per_row,
             per_row);
    }
  }
}

// A page larger than the hex view's window (--hex-window-bytes 32 makes
// alpha's 64 bytes one): at epoch 12, which wrote alpha [60,64), the view
// shows the window [32,64) with those cells current. Then a script moves
// the window with its buttons and the go-to field, checking which bytes are
// drawn after each.
void case_window(const std::string& inspector, const fs::path& work, const fs::path& rec) {
  const fs::path png = work / "window.png", json = work / "window.json";
  const Run r = run_inspector(inspector, work,
                              quote(rec.string()) + " --screenshot " + quote(png.string()) +
                                  " --epoch 12 --page alpha --view hex --hex-window-bytes 32 --layout-json " +
                                  quote(json.string()));
  EXPECT(r.code == 0, "exit code %d: %s", r.code, r.err.c_str());
  const Shot s = load_shot(png, json);
  const Rgb current = json_color(s.json, "current");
  const auto hex = cells(s.json, "hex_cells");
  EXPECT(hex.size() == 32 && hex.begin()->first == 32 && hex.rbegin()->first == 63,
         "%zu hex cells from %lld to %lld, want bytes 32..63", hex.size(), hex.empty() ? -1 : hex.begin()->first,
         hex.empty() ? -1 : hex.rbegin()->first);
  for (long long off = 60; off < 64; ++off)
    EXPECT(hex.count(off) && cell_is(s.img, hex.at(off), current), "byte %lld written at epoch 12 is not highlighted",
           off);
  expect_fits(s.json, {"hex:window", "hex:grid"}, "window", false);

  const fs::path script = work / "window.txt";
  {
    std::ofstream f(script);
    f << "select-page alpha\n"
         "seek 5\n"
         "view hex\n"
         "wait 2\n"
         "expect-highlight 16 current\n"  // the window [0,32) holds epoch 5's first byte
         "layout-json " << (work / "w0.json").string() << "\n"
         "click-button later >\n"
         "wait 2\n"
         "expect-highlight 40 current\n"
         "layout-json " << (work / "w1.json").string() << "\n"
         "click-button field:goto\n"
         "type 0x3c\n"
         "key Enter\n"
         "wait 2\n"
         "expect-byte 60\n"
         "layout-json " << (work / "w2.json").string() << "\n"
         "click-button < earlier\n"
         "wait 2\n"
         "layout-json " << (work / "w3.json").string() << "\n"
         // A bad offset is refused in the toolbar; the next good one clears it.
         "click-button field:goto\n"
         "type 64\n"
         "key Enter\n"
         "wait 2\n"
         "layout-json " << (work / "bad.json").string() << "\n"
         "click-button field:goto\n"
         "type 41\n"
         "key Enter\n"
         "wait 2\n"
         "expect-byte 41\n"
         "layout-json " << (work / "good.json").string() << "\n"
         // Following byte 40's writes: epoch 5 wrote [16,20) first and 40
         // after; the view stays on byte 40 (window [32,64)) rather than
         // moving to 16.
         "seek 12\n"
         "click-byte 40\n"
         "click-button < byte write\n"
         "wait 2\n"
         "expect-epoch 5\n"
         "expect-highlight 40 current\n"
         "layout-json " << (work / "follow.json").string() << "\n"
         "quit\n";
  }
  const Run sr = run_inspector(inspector, work,
                               quote(rec.string()) + " --hex-window-bytes 32 --script " + quote(script.string()));
  EXPECT(sr.code == 0, "script exit code %d: %s", sr.code, sr.err.c_str());
  // Which bytes each frame drew: the window's, 16-aligned, a quarter before
  // the byte asked for and kept inside the page.
  const std::pair<const char*, std::pair<long long, long long>> want[] = {
      {"w0.json", {0, 31}}, {"w1.json", {16, 47}}, {"w2.json", {32, 63}}, {"w3.json", {0, 31}}};
  const std::string bad = json_string(read_file(work / "bad.json"), "notice");
  EXPECT(bad.find("'64' is not an offset in this page: 0x0 to 0x3f") != std::string::npos, "notice for 64: '%s'",
         bad.c_str());
  EXPECT(json_string(read_file(work / "good.json"), "notice").empty(), "the notice stays after a good offset: '%s'",
         json_string(read_file(work / "good.json"), "notice").c_str());
  const auto follow = cells(read_file(work / "follow.json"), "hex_cells");
  EXPECT(follow.count(40) && !follow.count(16), "following byte 40 to epoch 5 shows bytes %lld..%lld",
         follow.empty() ? -1 : follow.begin()->first, follow.empty() ? -1 : follow.rbegin()->first);
  // At 800 px the window's line wraps: nothing of it is cut.
  const fs::path narrow = work / "narrow.json";
  const Run nr = run_inspector(inspector, work,
                               quote(rec.string()) + " --size 800x600 --screenshot " + quote((work / "narrow.png").string()) +
                                   " --epoch 12 --page alpha --view hex --hex-window-bytes 32 --layout-json " +
                                   quote(narrow.string()));
  EXPECT(nr.code == 0, "800x600 exit code %d", nr.code);
  expect_fits(read_file(narrow), {"hex:window", "hex:grid"}, "800x600 window", false);
  for (const auto& [file, range] : want) {
    const auto c = cells(read_file(work / file), "hex_cells");
    EXPECT(!c.empty() && c.begin()->first == range.first && c.rbegin()->first == range.second,
           "%s: hex cells %lld..%lld, want %lld..%lld", file, c.empty() ? -1 : c.begin()->first,
           c.empty() ? -1 : c.rbegin()->first, range.first, range.second);
  }
}

// Epochs 1 -> 9 of alpha differ at [2,3), [16,20), [40,42). Twice: the
// fixture's diff computed right away, and (--diff-sync-bytes 0) on the
// background thread as a big recording's is, which the screenshot waits for.
void case_diff(const std::string& inspector, const fs::path& work, const fs::path& rec) {
  for (const std::string extra : {"", " --diff-sync-bytes 0 --frames 1"}) {
    const fs::path png = work / "diff.png", json = work / "diff.json";
    const Run r = run_inspector(inspector, work,
                                quote(rec.string()) + " --screenshot " + quote(png.string()) +
                                    " --epoch 9 --page alpha --view diff --diff-a 1 --diff-b 9 --layout-json " +
                                    quote(json.string()) + extra);
    EXPECT(r.code == 0, "exit code %d (%s)", r.code, extra.c_str());
    const Shot s = load_shot(png, json);
    EXPECT(json_string(s.json, "view") == "diff", "view in the sidecar");
    const Rgb old_c = json_color(s.json, "diff_old"), new_c = json_color(s.json, "diff_new"),
              bg = json_color(s.json, "background");
    const auto olds = cells(s.json, "diff_old_cells"), news = cells(s.json, "diff_new_cells");
    // Only rows that differ are shown: 0..7, 16..23, 40..47.
    EXPECT(olds.size() == 24 && news.size() == 24, "%zu/%zu diff cells, want 24", olds.size(), news.size());
    for (const auto& [off, c] : olds) {
      const bool differs = off == 2 || (off >= 16 && off < 20) || off == 40 || off == 41;
      EXPECT(cell_is(s.img, c, differs ? old_c : bg), "A side, byte %lld: %s", off, cell_colors(s.img, c).c_str());
      EXPECT(news.count(off) && cell_is(s.img, news.at(off), differs ? new_c : bg), "B side, byte %lld", off);
    }
    // The table of differing pages: alpha, beta, gamma, omega.
    std::set<long long> rows;
    for (const auto& a : json_arrays(s.json, "diff_rows"))
      if (a.size() == 5) rows.insert(a[0]);
    EXPECT(rows == (std::set<long long>{0, 1, 2, 3}), "%zu pages listed as differing", rows.size());
    expect_fits(s.json, {"recording:program", "diff:only rows that differ", "timeline:page", "deltas:written"},
                "1280x800", true);
  }
  // A page over the side-by-side limit (63 bytes here: alpha has 64) is
  // refused there with the command that prints its differing bytes; the
  // table of differing pages still lists it.
  {
    const fs::path png = work / "limit.png", json = work / "limit.json";
    const Run r = run_inspector(inspector, work,
                                quote(rec.string()) + " --screenshot " + quote(png.string()) +
                                    " --epoch 9 --page alpha --view diff --diff-a 1 --diff-b 9 --side-by-side-bytes 63"
                                    " --layout-json " + quote(json.string()));
    EXPECT(r.code == 0, "exit code %d (side-by-side limit)", r.code);
    const std::string j = read_file(json);
    const std::string err = json_string(j, "side_by_side_error");
    EXPECT(err.find("page 'alpha' has 64 bytes, more than the side-by-side view shows (63)") != std::string::npos &&
               err.find("'mmsb-replay diff ") != std::string::npos && err.find(" 1 9 --page 0'") != std::string::npos,
           "side-by-side refusal: '%s'", err.c_str());
    EXPECT(cells(j, "diff_old_cells").empty(), "the refused page's cells are drawn");
    EXPECT(json_arrays(j, "diff_rows").size() == 4, "%zu pages listed as differing", json_arrays(j, "diff_rows").size());
  }
  // In a narrow window these are not cut either: the recording's values
  // wrap, the checkbox goes below the summary. (The deltas' "N ranges, M B"
  // needs more than its 240 px panel leaves there.)
  {
    const fs::path png = work / "narrow.png", json = work / "narrow.json";
    const Run r = run_inspector(inspector, work,
                                quote(rec.string()) + " --size 900x640 --screenshot " + quote(png.string()) +
                                    " --epoch 9 --page alpha --view diff --diff-a 1 --diff-b 9 --layout-json " +
                                    quote(json.string()));
    EXPECT(r.code == 0, "exit code %d (900x640)", r.code);
    const std::string j = read_file(json);
    expect_fits(j, {"recording:program", "recording:index", "diff:only rows that differ", "timeline:page", "toolbar"},
                "900x640", false);
  }
  // A script on the background path: the rows can be clicked once it is done.
  const fs::path script = work / "diff-background.txt";
  {
    std::ofstream f(script);
    f << "view diff\n"
         "diff 1 9\n"
         "wait-diff\n"
         "click-diff-page beta\n"
         "expect-page beta\n"
         "diff 4 12\n"
         "expect-diff-pages 4\n"
         "quit\n";
  }
  const Run sr = run_inspector(inspector, work,
                               quote(rec.string()) + " --diff-sync-bytes 0 --script " + quote(script.string()));
  EXPECT(sr.code == 0, "background diff script: exit code %d: %s", sr.code, sr.err.c_str());
}

// The propagation of epoch 6 (gamma, caused by 5): the whole tree from the
// root cause 5 (5 -> 6 -> 7), with the cursor's node 6 highlighted.
void case_deps(const std::string& inspector, const fs::path& work, const fs::path& rec) {
  const fs::path png = work / "deps.png", json = work / "deps.json";
  const Run r = run_inspector(inspector, work,
                              quote(rec.string()) + " --screenshot " + quote(png.string()) +
                                  " --epoch 6 --view deps --layout-json " + quote(json.string()));
  EXPECT(r.code == 0, "exit code %d", r.code);
  const Shot s = load_shot(png, json);
  std::set<long long> nodes;
  const auto rects = cells(s.json, "deps_nodes");
  for (const auto& [e, c] : rects) nodes.insert(e);
  EXPECT(nodes == (std::set<long long>{5, 6, 7}), "propagation nodes on screen: %zu", nodes.size());
  const Rgb bg = json_color(s.json, "background");
  if (rects.count(5) && rects.count(6)) {
    const Cell &root = rects.at(5), &here = rects.at(6);
    EXPECT(s.img.at(root.x1 - 3, root.y0 + 2).near(bg), "the root's node is highlighted: %s",
           cell_colors(s.img, root).c_str());
    EXPECT(!s.img.at(here.x1 - 3, here.y0 + 2).near(bg, 8), "the cursor's node is not highlighted: %s",
           cell_colors(s.img, here).c_str());
  }
  EXPECT(json_string(s.json, "view") == "deps", "view in the sidecar");
}

// The UI driven through ImGui's input: keys, clicks on rows, tabs, bytes
// and buttons, drags and the wheel on the timeline; then a screenshot.
void case_script(const std::string& inspector, const fs::path& work, const fs::path& rec) {
  const fs::path script = work / "script.txt", png = work / "script.png", json = work / "script.json";
  {
    std::ofstream f(script);
    f << "expect-loaded yes\n"
         "expect-epoch 15\n"
         "click-page alpha\n"
         "expect-page alpha\n"
         "seek 5\n"
         "expect-highlight 16 current\n"
         "expect-highlight 0 recent\n"
         "expect-highlight 30 none\n"
         "select-page beta\n"
         "seek 8\n"
         "expect-highlight 0 current\n"
         "expect-highlight 10 unchanged\n"
         "select-page alpha\n"
         "seek 5\n"
         "key Right\n"
         "expect-epoch 6\n"
         "key Left 2\n"
         "expect-epoch 4\n"
         "key Shift+Right\n"
         "expect-epoch 14\n"
         "key Home\n"
         "expect-epoch 0\n"
         "key End\n"
         "expect-epoch 15\n"
         "seek 0\n"
         "play 1000000\n"
         "wait 3\n"
         "expect-epoch 15\n"
         "click-button field:epoch\n"
         "key Ctrl+A\n"
         "type 12\n"
         "key Enter\n"
         "expect-epoch 12\n"
         "click-delta 9\n"
         "expect-epoch 9\n"
         "expect-page alpha\n"
         "drag-timeline 1.0 0.0 10\n"
         "expect-epoch 0\n"
         "drag-timeline 0.0 1.0 10\n"
         "expect-epoch 15\n"
         "drag-timeline 0.2 0.34 5\n"
         "expect-epoch 5\n"
         "wheel-timeline 0.5 4\n"
         "expect-zoomed yes\n"
         "click-button Fit\n"
         "expect-zoomed no\n"
         "seek 1\n"
         "click-byte 2\n"
         "expect-byte 2\n"
         "click-button byte write >\n"
         "expect-epoch 9\n"
         "click-button < byte write\n"
         "expect-epoch 1\n"
         "click-button page change >\n"
         "expect-epoch 5\n"
         "click-tab diff\n"
         "expect-view diff\n"
         "diff 1 9\n"
         "expect-diff-pages 4\n"
         "click-diff-page beta\n"
         "expect-page beta\n"
         "click-tab deps\n"
         "expect-view deps\n"
         "seek 6\n"
         "click-deps 7\n"
         "expect-epoch 7\n"
         "expect-page omega\n"
         "click-tab hex\n"
         "expect-view hex\n"
         "select-page alpha\n"
         "seek 5\n"
         "hover-byte 17\n"
         "screenshot " << png.string() << "\n"
         "layout-json " << json.string() << "\n"
         "quit\n";
  }
  const Run r = run_inspector(inspector, work, quote(rec.string()) + " --script " + quote(script.string()));
  EXPECT(r.code == 0, "exit code %d: %s", r.code, r.err.c_str());
  const Shot s = load_shot(png, json);
  const auto hex = cells(s.json, "hex_cells");
  const Rgb current = json_color(s.json, "current");
  EXPECT(hex.count(16) && cell_is(s.img, hex.at(16), current), "byte 16 highlighted after the script");
}

// The command line: every bad argument exits 2 (as the header of
// inspector/main.cc and mmsb-replay say), --view takes the tab's name,
// clamped diff epochs are reported, and --help lists the keys and exit codes.
void case_args(const std::string& inspector, const fs::path& work, const fs::path& rec) {
  const std::string shot = " --screenshot " + quote((work / "args.png").string());
  for (const std::string bad : {"--view bogus", "--fade 100", "--bogus", "--epoch abc", "--epoch -1", "--diff-a -2",
                                "--diff-b -1", "extra-positional", "--size 10x10", "--page nosuch"}) {
    const Run r = run_inspector(inspector, work, quote(rec.string()) + " " + bad + shot);
    EXPECT(r.code == 2, "'%s' exits %d, want 2", bad.c_str(), r.code);
    EXPECT(!r.err.empty(), "'%s' says nothing on stderr", bad.c_str());
  }
  const fs::path json = work / "args.json";
  const Run p = run_inspector(inspector, work,
                              quote(rec.string()) + " --view propagation --epoch 6" + shot + " --layout-json " +
                                  quote(json.string()));
  EXPECT(p.code == 0, "--view propagation exits %d", p.code);
  EXPECT(json_string(read_file(json), "view") == "deps", "--view propagation shows '%s'",
         json_string(read_file(json), "view").c_str());
  // The fixture's epochs are 0..15: both ends are clamped, and said so.
  const Run c = run_inspector(inspector, work,
                              quote(rec.string()) + " --view diff --diff-a 40 --diff-b 99" + shot + " --layout-json " +
                                  quote(json.string()));
  EXPECT(c.code == 0, "clamped diff epochs exit %d", c.code);
  EXPECT(c.err.find("--diff-a 40 is outside 0..15") != std::string::npos, "no warning for --diff-a: %s", c.err.c_str());
  EXPECT(c.err.find("--diff-b 99 is outside 0..15") != std::string::npos, "no warning for --diff-b: %s", c.err.c_str());
  const auto diff = json_arrays(read_file(json), "diff");
  EXPECT(!diff.empty() && diff[0] == (std::vector<long long>{15, 15}), "the diff is not clamped to 15..15");
  // --page, --epoch, --diff-a/-b set the start in every mode, not only for
  // a screenshot: here a script checks them.
  const fs::path start = work / "start.txt";
  {
    std::ofstream f(start);
    f << "expect-epoch 3\nexpect-page beta\nquit\n";
  }
  const Run st = run_inspector(inspector, work,
                               quote(rec.string()) + " --epoch 3 --page beta --script " + quote(start.string()));
  EXPECT(st.code == 0, "--epoch 3 --page beta with a script exits %d: %s", st.code, st.err.c_str());
  const Run np = run_inspector(inspector, work,
                               quote(rec.string()) + " --page nosuch --script " + quote(start.string()));
  EXPECT(np.code == 2 && np.err.find("no page 'nosuch'") != std::string::npos,
         "--page nosuch with a script exits %d: %s", np.code, np.err.c_str());
  const Run lj = run_inspector(inspector, work,
                               quote(rec.string()) + " --layout-json " + quote(json.string()) + " --script " +
                                   quote(start.string()));
  EXPECT(lj.code == 2 && lj.err.find("go with --screenshot") != std::string::npos,
         "--layout-json without --screenshot exits %d: %s", lj.code, lj.err.c_str());
  const Run h = run_inspector(inspector, work, "--help");
  EXPECT(h.code == 0, "--help exits %d", h.code);
  for (const char* want : {"Exit codes", "PageUp/PageDown", "Shift: 10", "Ctrl: 100", "Home/End", "Space",
                           "middle-drag", "2   usage"})
    EXPECT(h.out.find(want) != std::string::npos, "--help does not mention '%s'", want);
}

// Whether Recording::open blocks on a FIFO segment (it did when this test
// was written; the library may come to refuse non-regular files): tried in
// a child process that is killed after two seconds.
bool open_blocks(const fs::path& dir) {
  const pid_t pid = fork();
  if (pid == 0) {
    (void)mmsb::replay::Recording::open(dir);
    _exit(0);
  }
  if (pid < 0) return false;
  for (int i = 0; i < 200; ++i) {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) return false;
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return true;
}

// An open that never finishes (a FIFO where a segment should be): the
// Opening modal's Cancel gives the window back, another recording opens,
// and quitting while a second such open runs does not wait for it.
void case_cancel(const std::string& inspector, const fs::path& work, const fs::path& rec) {
  const fs::path fifo = work / "fifo";
  fs::create_directories(fifo);
  EXPECT(mkfifo((fifo / "seg-000000.tlog").c_str(), 0600) == 0, "mkfifo failed");
  const bool blocks = open_blocks(fifo);
  const fs::path script = work / "cancel.txt";
  {
    std::ofstream f(script);
    auto type_path = [&](const fs::path& p) {
      f << "click-button field:path\nkey Ctrl+A\ntype " << p.string() << "\nkey Enter\n";
    };
    type_path(fifo);
    if (blocks) {
      f << "wait 5\n"
           "expect-modal Opening\n"
           "click-button Cancel\n"
           "expect-loaded no\n";
    } else {
      std::printf("Recording::open refuses a FIFO now: the Cancel button is not exercised\n");
      f << "wait-loaded\nexpect-modal Cannot open\nclick-button Close\n";
    }
    type_path(rec);
    f << "wait-loaded\n"
         "expect-loaded yes\n"
         "expect-epoch 15\n";
    type_path(fifo);  // and quit while it hangs
    f << "wait 5\n"
         "quit\n";
  }
  const Run r = run_inspector(inspector, work, "--script " + quote(script.string()), 60);
  EXPECT(r.code == 0, "exit code %d (124: the inspector hung): %s", r.code, r.err.c_str());
}

// The Deltas list follows the cursor, also to the start state (epoch 0,
// which has no delta: the list shows its top). 300 one-byte writes, more
// rows than the panel holds.
void case_scroll(const std::string& inspector, const fs::path& work, const fs::path&) {
  const fs::path rec = work / "long.mmsb";
  {
    mmsb::Bus bus;
    auto page = bus.create_page(16, "counter");
    EXPECT(page.ok(), "create_page");
    auto r = mmsb::capture::Recorder::start(bus, rec, {});
    EXPECT(r.ok(), "Recorder::start");
    if (!page.ok() || !r.ok()) return;
    for (int i = 1; i <= 300; ++i) {
      const std::byte b{static_cast<unsigned char>(i)};
      EXPECT(bus.write(*page, static_cast<uint64_t>(i % 16), std::span(&b, 1)).ok(), "write %d", i);
    }
    EXPECT((*r)->stop().ok(), "Recorder::stop");
  }
  const fs::path script = work / "scroll.txt", json = work / "scroll.json";
  std::ofstream(script) << "seek 250\nwait 2\nkey Home\nwait 2\nexpect-epoch 0\nlayout-json " << json.string()
                        << "\nquit\n";
  const Run r = run_inspector(inspector, work, quote(rec.string()) + " --script " + quote(script.string()));
  EXPECT(r.code == 0, "exit code %d", r.code);
  const auto rows = json_arrays(read_file(json), "delta_rows");
  EXPECT(!rows.empty() && rows[0][0] == 1, "the Deltas list starts at epoch %lld, want 1",
         rows.empty() ? -1 : rows[0][0]);
}

// A recording cut short opens its readable part after asking; a directory of
// garbage gives an error; a flipped byte gives an error or a banner -- and
// the inspector keeps running throughout.
void case_damaged(const std::string& inspector, const fs::path& work, const fs::path& rec) {
  const fs::path seg = rec / "seg-000000.tlog";
  const std::string bytes = read_file(seg);
  EXPECT(bytes.size() > 400, "fixture segment is %zu bytes", bytes.size());
  const fs::path cut = work / "cut", junk = work / "junk", flip = work / "flip";
  fs::create_directories(cut);
  fs::create_directories(junk);
  fs::create_directories(flip);
  std::ofstream(cut / "seg-000000.tlog", std::ios::binary) << bytes.substr(0, bytes.size() * 2 / 3);
  std::ofstream(junk / "seg-000000.tlog", std::ios::binary) << std::string(4096, 'x');
  // Flip a byte in the payload of the middle delta frame (the fixture's
  // layout varies from run to run with the snapshots' timing).
  size_t flip_at = 0;
  mmsb::Epoch flip_last = 0;  // the last epoch before the flipped frame
  {
    auto opened = mmsb::replay::Recording::open(rec);
    EXPECT(opened.ok(), "cannot open the fixture: %s", opened.status().to_string().c_str());
    if (!opened.ok()) return;
    const auto& r = **opened;
    EXPECT(r.delta_frames().size() >= 3, "%zu delta frames in the fixture", r.delta_frames().size());
    if (r.delta_frames().size() < 3) return;
    const auto& f = r.frames()[r.delta_frames()[r.delta_frames().size() / 2]];
    flip_at = f.offset + mmsb::format::kFrameHeaderBytes + f.header.payload_bytes / 2;
    flip_last = f.header.first_epoch - 1;
  }
  std::string flipped = bytes;
  flipped[flip_at] = static_cast<char>(flipped[flip_at] ^ 0x20);
  std::ofstream(flip / "seg-000000.tlog", std::ios::binary) << flipped;

  const fs::path script = work / "damaged.txt", png = work / "damaged.png";
  {
    std::ofstream f(script);
    f << "open " << junk.string() << "\n"
         "expect-loaded no\n"
         "expect-modal Cannot open\n"
         "click-button Close\n"
         "open " << cut.string() << "\n"
         "expect-modal Damaged recording\n"
         "expect-loaded no\n"
         "click-button Open the readable part\n"
         "expect-loaded yes\n"
         "expect-banner yes\n"
         "key Home\n"
         "key End\n"
         "screenshot " << png.string() << "\n"
         // A flipped payload byte in an indexed segment: the history ends
         // before that frame; the inspector says so and opens the rest.
         "open " << flip.string() << "\n"
         "expect-modal Damaged recording\n"
         "expect-modal checksum\n"
         "click-button Open the readable part\n"
         "expect-banner yes\n"
         "key End\n"
         "layout-json " << (work / "flipped.json").string() << "\n"
         // The intact fixture, typed into the path field: opened in the background.
         "click-button field:path\n"
         "key Ctrl+A\n"
         "type " << rec.string() << "\n"
         "key Enter\n"
         "wait-loaded\n"
         "expect-loaded yes\n"
         "expect-banner no\n"
         "expect-epoch 15\n"
         "quit\n";
  }
  const Run r = run_inspector(inspector, work, "--script " + quote(script.string()));
  EXPECT(r.code == 0, "exit code %d", r.code);
  Image img;
  EXPECT(img.load(png), "no screenshot of the damaged recording");
  // The flipped copy ends before the frame that holds the flipped byte.
  const std::string fj = read_file(work / "flipped.json");
  EXPECT(fj.find("\"banner\": true") != std::string::npos, "no damage banner for the flipped copy");
  EXPECT(json_number(fj, "epoch") == static_cast<long long>(flip_last),
         "the flipped copy's history ends at epoch %lld, want %llu (the frame before the flipped one)",
         json_number(fj, "epoch"), static_cast<unsigned long long>(flip_last));

  // Screenshot mode on garbage: exit 3, and a picture of the error.
  const fs::path epng = work / "error.png", ejson = work / "error.json";
  const Run e = run_inspector(inspector, work, quote(junk.string()) + " --screenshot " + quote(epng.string()) +
                                                   " --layout-json " + quote(ejson.string()));
  EXPECT(e.code == 3, "exit code %d for a directory that is no recording", e.code);
  EXPECT(json_string(read_file(ejson), "modal") == "Cannot open the recording", "no error modal in the screenshot");
  EXPECT(json_string(read_file(ejson), "path") == junk.string(), "the path field holds '%s' after the failed open",
         json_string(read_file(ejson), "path").c_str());
}

}  // namespace

// The Pages table's name cell of page `id` as drawn ("page_names" in the
// sidecar), its JSON escapes undone.
std::string json_page_name(const std::string& json, mmsb::PageId id) {
  const auto k = json.find("\"page_names\": {");
  if (k == std::string::npos) return "<no page_names>";
  const std::string key = "\"" + std::to_string(id) + "\": \"";
  const auto at = json.find(key, k);
  if (at == std::string::npos || at > json.find('}', k)) return "<no page " + std::to_string(id) + ">";
  std::string s;
  for (size_t i = at + key.size(); i < json.size() && json[i] != '"'; ++i) {
    if (json[i] == '\\' && i + 1 < json.size()) ++i;
    s += json[i];
  }
  return s;
}

bool json_flag(const std::string& json, const std::string& key) {
  return json.find("\"" + key + "\": true") != std::string::npos;
}

// Page names as the lists draw them: one line each, control bytes escaped
// as mmsb-replay escapes them, a long name shortened from the front (its end
// tells tiles apart); a narrow window stacks the side panels so that the
// deltas list's "written" is not cut.
void case_names(const std::string& inspector, const fs::path& work, const fs::path&) {
  const fs::path rec = work / "names.mmsb";
  const std::string long_name = "renderer/frame_buffers/band_026/tile_004947";
  {
    mmsb::Bus bus;
    auto r = mmsb::capture::Recorder::start(bus, rec, {});
    EXPECT(r.ok(), "Recorder::start");
    if (!r.ok()) return;
    for (const std::string& name : {std::string("new\nline"), long_name, std::string("plain")}) {
      auto page = bus.create_page(8, name);
      EXPECT(page.ok(), "create_page %s", name.c_str());
      const std::byte b{0x5a};
      if (page.ok()) EXPECT(bus.write(*page, 0, std::span(&b, 1)).ok(), "write");
    }
    EXPECT((*r)->stop().ok(), "Recorder::stop");
  }
  for (const char* size : {"1024x700", "800x600", "1280x800"}) {
    const fs::path json = work / (std::string("names-") + size + ".json");
    const Run r = run_inspector(inspector, work,
                                quote(rec.string()) + " --size " + size + " --page 1 --screenshot " +
                                    quote((work / (std::string("names-") + size + ".png")).string()) +
                                    " --layout-json " + quote(json.string()));
    EXPECT(r.code == 0, "%s: exit code %d", size, r.code);
    const std::string j = read_file(json);
    const bool narrow = std::string(size) != "1280x800";
    EXPECT(json_flag(j, "stacked") == narrow, "%s: the side panels are %sstacked", size, narrow ? "not " : "");
    EXPECT(json_page_name(j, 0) == "new\\x0aline", "%s: page 0 is drawn as '%s'", size, json_page_name(j, 0).c_str());
    EXPECT(json_page_name(j, 2) == "plain", "%s: page 2 is drawn as '%s'", size, json_page_name(j, 2).c_str());
    const std::string shown = json_page_name(j, 1);
    if (narrow)
      EXPECT(shown.size() < long_name.size() && shown.front() == '~' &&
                 long_name.compare(long_name.size() - (shown.size() - 1), std::string::npos, shown, 1) == 0,
             "%s: the long name is drawn as '%s', not shortened from the front", size, shown.c_str());
    else
      EXPECT(shown == long_name || (shown.front() == '~' && shown.size() > 12), "%s: the long name is drawn as '%s'",
             size, shown.c_str());
    expect_fits(j, {"deltas:written", "timeline:page", "toolbar"}, size, false);
  }
}

// Reload (F5) of a recording still being written: the Recording panel says
// a writer runs; the reload shows the epochs written since, the cursor that
// was at the end follows it, page and byte stay selected; a cursor elsewhere
// stays where it was.
void case_reload(const std::string& inspector, const fs::path& work, const fs::path&) {
  const fs::path rec = work / "live.mmsb", live = work / "live.json", after = work / "after.json",
                 grown = work / "grown", script = work / "reload.txt";
  mmsb::Bus bus;
  auto page = bus.create_page(16, "counter");
  auto r = mmsb::capture::Recorder::start(bus, rec, {});
  EXPECT(page.ok() && r.ok(), "create_page, Recorder::start");
  if (!page.ok() || !r.ok()) return;
  auto write = [&](int i) {
    const std::byte b{static_cast<unsigned char>(i)};
    EXPECT(bus.write(*page, static_cast<uint64_t>(i % 16), std::span(&b, 1)).ok(), "write %d", i);
  };
  for (int i = 1; i <= 5; ++i) write(i);
  EXPECT((*r)->flush().ok(), "flush");
  std::ofstream(script) << "wait-loaded\nexpect-epoch 5\nselect-page counter\nselect-byte 3\nlayout-json "
                        << live.string() << "\nwait-file " << grown.string()
                        << "\nkey F5\nwait-loaded\nexpect-epoch 8\nexpect-page counter\nexpect-byte 3\n"
                           "layout-json "
                        << after.string() << "\nseek 4\nkey F5\nwait-loaded\nexpect-epoch 4\nexpect-byte 3\nquit\n";
  Run run;
  std::thread ui([&] { run = run_inspector(inspector, work, quote(rec.string()) + " --script " + quote(script.string()), 120); });
  for (int i = 0; i < 6000 && !fs::exists(live); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT(fs::exists(live), "the inspector never opened the recording");
  for (int i = 6; i <= 8; ++i) write(i);
  EXPECT((*r)->flush().ok(), "flush");
  std::ofstream(grown) << "go\n";
  ui.join();
  EXPECT((*r)->stop().ok(), "Recorder::stop");
  EXPECT(run.code == 0, "exit code %d: %s", run.code, run.err.c_str());
  EXPECT(json_flag(read_file(live), "live"), "the Recording panel does not say the writer runs");
  const std::string notice = json_string(read_file(after), "notice");
  EXPECT(notice == "reloaded: epochs 0..8 (3 new)", "notice after the reload: '%s'", notice.c_str());
}

// The sidecar's objects of rectangles ("panels", "tabs"): name -> [x0, y0, x1, y1].
std::map<std::string, std::vector<long long>> json_rects(const std::string& json, const std::string& key) {
  std::map<std::string, std::vector<long long>> m;
  const auto k = json.find("\"" + key + "\": {");
  if (k == std::string::npos) return m;
  const auto end = json.find('}', k);
  for (size_t i = json.find('"', k + key.size() + 4); i < end; i = json.find('"', i)) {
    const size_t q = json.find('"', i + 1), e = json.find(']', q);
    if (q >= end || e >= end) break;
    m[json.substr(i + 1, q - i - 1)] = json_arrays("\"r\": " + json.substr(q + 2, e - q - 1), "r").at(0);
    i = e;
  }
  return m;
}

std::string join(const std::vector<long long>& v) {
  std::string t;
  for (const long long x : v) t += (t.empty() ? "" : " ") + std::to_string(x);
  return t;
}

double json_double(const std::string& json, const std::string& key) {
  const auto k = json.find("\"" + key + "\": ");
  return k == std::string::npos ? -999 : std::stod(json.substr(k + key.size() + 4));
}

// HiDPI. Under Xvfb the display's scale is 1: the default is --scale 1, and
// that is the layout the inspector drew before it had a scale (the values
// below are what it drew then). --scale 2 in a window twice the size draws
// that layout doubled: every panel, tab, row and cell the sidecar lists, to
// within 3 px: rounding, and the few sizes ImGui keeps at one pixel at any
// scale (borders, and a pixel a tab, which add up along a row). The
// scale may change while running (a script's `scale`, as when the window
// moves to another monitor); MMSB_INSPECTOR_SCALE sets it when --scale
// does not; bad values are refused.
void case_scale(const std::string& inspector, const fs::path& work, const fs::path& rec) {
  const std::string at5 = " --epoch 5 --page alpha --view hex";
  auto shot = [&](const std::string& name, const std::string& args) {
    const fs::path png = work / (name + ".png"), json = work / (name + ".json");
    const Run r = run_inspector(inspector, work,
                                quote(rec.string()) + " " + args + " --screenshot " + quote(png.string()) +
                                    " --layout-json " + quote(json.string()));
    EXPECT(r.code == 0, "%s: exit code %d: %s", name.c_str(), r.code, r.err.c_str());
    Shot s;
    EXPECT(s.img.load(png), "%s: cannot decode %s", name.c_str(), png.c_str());
    s.json = read_file(json);
    return s;
  };

  // Bad values: exit 2, and a message that names them.
  for (const std::string bad : {"0", "abc", "9", "-1", "4.5", "2x"}) {
    const Run r = run_inspector(inspector, work, quote(rec.string()) + " --scale " + bad + " --screenshot " +
                                                     quote((work / "bad.png").string()));
    EXPECT(r.code == 2 && r.err.find("--scale") != std::string::npos, "--scale %s exits %d: %s", bad.c_str(), r.code,
           r.err.c_str());
  }
  g_env = "MMSB_INSPECTOR_SCALE=abc";
  const Run env_bad =
      run_inspector(inspector, work, quote(rec.string()) + " --screenshot " + quote((work / "bad.png").string()));
  EXPECT(env_bad.code == 2 && env_bad.err.find("MMSB_INSPECTOR_SCALE") != std::string::npos,
         "MMSB_INSPECTOR_SCALE=abc exits %d: %s", env_bad.code, env_bad.err.c_str());

  // The default at 1x: what --scale 1 draws, pixel for pixel, and what the
  // inspector drew before it had a scale.
  g_env.clear();
  const Shot def = shot("default", at5), one = shot("one", "--scale 1" + at5);
  EXPECT(json_double(def.json, "scale") == 1 && json_double(one.json, "scale") == 1, "the scale under Xvfb is %g",
         json_double(def.json, "scale"));
  EXPECT(def.json == one.json, "the default sidecar differs from --scale 1's");
  {
    // Pixel for pixel, but for the Recording panel: it shows how long the open took.
    const auto panels = json_rects(one.json, "panels");
    const std::vector<long long> skip = panels.count("recording") ? panels.at("recording") : std::vector<long long>{};
    EXPECT(skip.size() == 4, "no Recording panel in the sidecar");
    long long differ = 0;
    for (int y = 0; y < def.img.h && skip.size() == 4; ++y)
      for (int x = 0; x < def.img.w; ++x)
        if (!(x >= skip[0] && x < skip[2] && y >= skip[1] && y < skip[3]) && !def.img.at(x, y).near(one.img.at(x, y), 0))
          ++differ;
    EXPECT(def.img.w == 1280 && def.img.h == 800 && one.img.w == 1280 && differ == 0,
           "the default screenshot (%dx%d) differs from --scale 1's in %lld pixels", def.img.w, def.img.h, differ);
  }
  {
    const auto hex = cells(one.json, "hex_cells"), ascii = cells(one.json, "ascii_cells");
    const auto tabs = json_rects(one.json, "tabs");
    auto same = [&](const char* what, const std::vector<long long>& got, const std::vector<long long>& want) {
      EXPECT(got == want, "%s at 1x: [%s], before --scale: [%s]", what, join(got).c_str(), join(want).c_str());
    };
    const auto tl = json_arrays(one.json, "timeline");
    same("timeline", tl.empty() ? std::vector<long long>{} : tl[0], {100, 43, 1272, 135});
    same("tab hex", tabs.count("hex") ? tabs.at("hex") : std::vector<long long>{}, {340, 170, 370, 189});
    same("tab deps", tabs.count("deps") ? tabs.at("deps") : std::vector<long long>{}, {415, 170, 501, 189});
    auto cell = [](const std::map<long long, Cell>& m, long long k) {
      if (!m.count(k)) return std::vector<long long>{};
      const Cell& c = m.at(k);
      return std::vector<long long>{c.x0, c.y0, c.x1, c.y1};
    };
    same("hex cell 0", cell(hex, 0), {407, 294, 428, 311});
    same("hex cell 63", cell(hex, 63), {729, 345, 750, 362});
    same("ascii cell 17", cell(ascii, 17), {767, 311, 774, 328});
  }

  // Doubled: each state at 1x and at 2x in a window twice the size, on a
  // screen that holds it. The grids' widths, worked out from ImGui's
  // defaults (ProggyClean 13 px is 7 px a character; a window's padding 8,
  // a scrollbar 14): 78 characters (the diff's row) + 2 * 8 + 14 + 2, and
  // the 8-byte hex row's 45 characters likewise.
  g_screen = "2560x1600x24";
  struct State {
    const char* name;
    int w, h;
    std::string args;
    bool stacked;
  };
  const State states[] = {
      {"hex", 1280, 800, at5, false},
      {"hex-narrow", 800, 600, at5, true},
      {"diff", 1280, 800, " --epoch 9 --page alpha --view diff --diff-a 1 --diff-b 9", false},
      {"deps", 1024, 700, " --epoch 6 --view deps", true},
  };
  for (const State& st : states) {
    const std::string n = st.name;
    const Shot a = shot(n + "-1x", "--scale 1 --size " + std::to_string(st.w) + "x" + std::to_string(st.h) + st.args);
    const Shot b =
        shot(n + "-2x", "--scale 2 --size " + std::to_string(2 * st.w) + "x" + std::to_string(2 * st.h) + st.args);
    const char* what = st.name;
    EXPECT(b.img.w == 2 * st.w && b.img.h == 2 * st.h, "%s: the 2x screenshot is %dx%d", what, b.img.w, b.img.h);
    EXPECT(json_double(b.json, "scale") == 2, "%s: the 2x sidecar's scale is %g", what, json_double(b.json, "scale"));
    EXPECT(json_flag(a.json, "stacked") == st.stacked && json_flag(b.json, "stacked") == st.stacked,
           "%s: stacked at 1x %d, at 2x %d, want %d", what, json_flag(a.json, "stacked"), json_flag(b.json, "stacked"),
           st.stacked);
    const std::vector<long long> grids = {78 * 7 + 2 * 8 + 14 + 2, 45 * 7 + 2 * 8 + 14 + 2};
    const auto ga = json_arrays(a.json, "grid_px"), gb = json_arrays(b.json, "grid_px");
    EXPECT(!ga.empty() && ga[0] == grids, "%s: grid_px at 1x: [%s]", what, ga.empty() ? "" : join(ga[0]).c_str());
    EXPECT(!gb.empty() && gb[0] == (std::vector<long long>{2 * grids[0], 2 * grids[1]}), "%s: grid_px at 2x: [%s]", what,
           gb.empty() ? "" : join(gb[0]).c_str());
    int compared = 0;
    long long worst = 0;
    using Nums = std::vector<long long>;
    auto doubled = [&](const std::string& key, const Nums& one_x, const Nums& two_x) {
      EXPECT(one_x.size() == two_x.size() && !one_x.empty(), "%s: %s has %zu numbers at 1x, %zu at 2x", what,
             key.c_str(), one_x.size(), two_x.size());
      for (size_t i = 0; i < one_x.size() && i < two_x.size(); ++i) {
        ++compared;
        worst = std::max(worst, std::abs(two_x[i] - 2 * one_x[i]));
        EXPECT(std::abs(two_x[i] - 2 * one_x[i]) <= 3, "%s: %s[%zu] is %lld at 2x, %lld at 1x", what, key.c_str(), i,
               two_x[i], one_x[i]);
      }
    };
    for (const char* key : {"window", "timeline"}) {
      const auto x = json_arrays(a.json, key), y = json_arrays(b.json, key);
      doubled(key, x.empty() ? std::vector<long long>{} : x[0], y.empty() ? std::vector<long long>{} : y[0]);
    }
    for (const char* key : {"panels", "tabs"}) {
      const auto x = json_rects(a.json, key), y = json_rects(b.json, key);
      EXPECT(x.size() >= 3 && x.size() == y.size(), "%s: %zu %s at 1x, %zu at 2x", what, x.size(), key, y.size());
      for (const auto& [name, r] : x)
        doubled(std::string(key) + ":" + name, r, y.count(name) ? y.at(name) : std::vector<long long>{});
    }
    for (const char* key : {"hex_cells", "ascii_cells", "diff_old_cells", "diff_new_cells", "page_rows", "diff_rows",
                            "delta_rows", "deps_nodes"}) {
      const auto x = cells(a.json, key), y = cells(b.json, key);
      EXPECT(x.size() == y.size(), "%s: %zu %s at 1x, %zu at 2x", what, x.size(), key, y.size());
      for (const auto& [k, c] : x) {
        const std::string name = std::string(key) + ":" + std::to_string(k);
        if (!y.count(k)) {
          EXPECT(false, "%s: %s is not drawn at 2x", what, name.c_str());
          continue;
        }
        const Cell& d = y.at(k);
        doubled(name, {c.x0, c.y0, c.x1, c.y1}, {d.x0, d.y0, d.x1, d.y1});
      }
    }
    EXPECT(compared > 100, "%s: only %d numbers compared", what, compared);
    std::printf("%s: %d coordinates at 2x within %lld px of twice 1x's\n", what, compared, worst);
    // Texts that fit at 1x fit at 2x.
    const auto fa = json_fits(a.json), fb = json_fits(b.json);
    for (const auto& [name, f] : fa)
      if (f.first <= f.second)
        EXPECT(fb.count(name) && fb.at(name).first <= fb.at(name).second, "%s: \"%s\" fits at 1x, not at 2x", what,
               name.c_str());
  }
  // The pixels follow the layout: epoch 5's bytes in the delta colour at 2x.
  {
    const Shot b = shot("hex-2x", "--scale 2 --size 2560x1600" + at5);
    const auto hex = cells(b.json, "hex_cells");
    const Rgb current = json_color(b.json, "current"), bg = json_color(b.json, "background");
    for (const long long off : {16, 19, 40, 41})
      EXPECT(hex.count(off) && cell_is(b.img, hex.at(off), current), "2x: byte %lld is not highlighted: %s", off,
             hex.count(off) ? cell_colors(b.img, hex.at(off)).c_str() : "not drawn");
    EXPECT(hex.count(30) && cell_is(b.img, hex.at(30), bg), "2x: byte 30 is coloured");
  }

  // Scaled while running (a move to a 2x monitor): the same layout as
  // --scale 2 from the start, and a screenshot of it.
  const fs::path script = work / "scale.txt";
  std::ofstream(script) << "select-page alpha\nseek 5\nview hex\nwait 2\nlayout-json " << (work / "run1.json").string()
                        << "\nscale 2\nwait 3\nlayout-json " << (work / "run2.json").string() << "\nscreenshot "
                        << (work / "run2.png").string() << "\nquit\n";
  const Run sr =
      run_inspector(inspector, work, quote(rec.string()) + " --size 2560x1600 --script " + quote(script.string()));
  EXPECT(sr.code == 0, "the scale script exits %d: %s", sr.code, sr.err.c_str());
  {
    const std::string r1 = read_file(work / "run1.json"), r2 = read_file(work / "run2.json"),
                      direct = read_file(work / "hex-2x.json");
    EXPECT(json_double(r1, "scale") == 1 && json_double(r2, "scale") == 2, "the script's scales: %g, then %g",
           json_double(r1, "scale"), json_double(r2, "scale"));
    EXPECT(json_rects(r2, "panels") == json_rects(direct, "panels"),
           "the panels scaled while running differ from --scale 2's");
    const auto got = cells(r2, "hex_cells");
    EXPECT(got.size() == 64, "%zu hex cells scaled while running", got.size());
    for (const auto& [k, c] : cells(direct, "hex_cells")) {
      const bool same = got.count(k) && got.at(k).x0 == c.x0 && got.at(k).y0 == c.y0 && got.at(k).x1 == c.x1 &&
                        got.at(k).y1 == c.y1;
      EXPECT(same, "hex cell %lld scaled while running is not where --scale 2 draws it", k);
    }
    Image img;
    EXPECT(img.load(work / "run2.png") && img.w == 2560 && img.h == 1600, "the screenshot after scaling: %dx%d", img.w,
           img.h);
  }

  // The default window at --scale 2 is 1280x800 doubled, on the usual
  // screen too; --size is the screenshot's size at any scale; the
  // environment variable holds where --scale is not given.
  g_screen = "1280x800x24";
  {
    const Shot big = shot("default-2x", "--scale 2" + at5);
    EXPECT(big.img.w == 2560 && big.img.h == 1600, "--scale 2's default screenshot is %dx%d", big.img.w, big.img.h);
    const Shot sized = shot("sized-2x", "--scale 2 --size 1600x1000" + at5);
    EXPECT(sized.img.w == 1600 && sized.img.h == 1000, "--scale 2 --size 1600x1000 gives %dx%d", sized.img.w,
           sized.img.h);
    g_env = "MMSB_INSPECTOR_SCALE=2";
    const Shot env = shot("env", at5), over = shot("env-over", "--scale 1" + at5);
    g_env.clear();
    EXPECT(json_double(env.json, "scale") == 2 && env.img.w == 2560, "MMSB_INSPECTOR_SCALE=2: scale %g, %d px wide",
           json_double(env.json, "scale"), env.img.w);
    EXPECT(json_double(over.json, "scale") == 1 && over.img.w == 1280,
           "--scale 1 over MMSB_INSPECTOR_SCALE=2: scale %g, %d px wide", json_double(over.json, "scale"), over.img.w);
  }
}

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s INSPECTOR WORKDIR hex|window|diff|deps|script|damaged|args|cancel|scroll|names|reload|scale\n", argv[0]);
    return 2;
  }
  const std::string inspector = argv[1], which = argv[3];
  const fs::path work = fs::path(argv[2]) / which;
  if (!on_path("xvfb-run")) {
    std::printf("no X server: xvfb-run is not installed (apt-get install xvfb xauth)\n");
    return kSkip;
  }
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work);
  const fs::path rec = work / "fixture.mmsb";
  const std::string err = fixture::make_recording(rec);
  if (!err.empty()) {
    std::fprintf(stderr, "cannot make the fixture: %s\n", err.c_str());
    return 1;
  }
  if (which == "hex") case_hex(inspector, work, rec);
  else if (which == "window") case_window(inspector, work, rec);
  else if (which == "diff") case_diff(inspector, work, rec);
  else if (which == "deps") case_deps(inspector, work, rec);
  else if (which == "script") case_script(inspector, work, rec);
  else if (which == "damaged") case_damaged(inspector, work, rec);
  else if (which == "args") case_args(inspector, work, rec);
  else if (which == "cancel") case_cancel(inspector, work, rec);
  else if (which == "scroll") case_scroll(inspector, work, rec);
  else if (which == "names") case_names(inspector, work, rec);
  else if (which == "reload") case_reload(inspector, work, rec);
  else if (which == "scale") case_scale(inspector, work, rec);
  else {
    std::fprintf(stderr, "unknown case %s\n", which.c_str());
    return 2;
  }
  if (g_failures) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("passed\n");
  fs::remove_all(work, ec);
  return 0;
}
