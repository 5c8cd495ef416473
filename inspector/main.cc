// mmsb-inspector: a timeline UI for MMSB recordings.
//
//   mmsb-inspector [RECORDING]
//   mmsb-inspector RECORDING --screenshot out.png --epoch N [--page P] [--view hex|diff|deps|propagation]
//                  [--diff-a A --diff-b B] [--layout-json out.json]
//   mmsb-inspector [RECORDING] --script FILE
//   any of them with [--scale F] [--size WxH]
//
// HiDPI: the UI is scaled by --scale, else $MMSB_INSPECTOR_SCALE, else the
// display's content scale as GLFW reports it (1 at 96 dpi, and under Xvfb).
// --size is in pixels, the size of a screenshot.
//
// This file only sets up GLFW, OpenGL and Dear ImGui, parses the command line
// and runs the frame loop; the UI is App (app.h), the logic mmsb::replay.
//
// Exit codes: 0 fine; 1 a script failed; 2 bad arguments; 3 the recording
// could not be opened (a screenshot of the error is still written);
// 69 no window could be opened (no X server / OpenGL).
#include <GLFW/glfw3.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>
#include <stb_image_write.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "app.h"
#include "mmsb/replay/recording.h"
#include "script.h"

static_assert(mmsb::inspector::kReloadKey == GLFW_KEY_F5, "app.h's F5 is not GLFW's");

namespace {

using mmsb::inspector::App;
using mmsb::inspector::Palette;
using mmsb::inspector::Script;
using Clock = std::chrono::steady_clock;

constexpr int kExitScript = 1, kExitUsage = 2, kExitOpen = 3, kExitNoDisplay = 69;
constexpr float kMinScale = 0.5f, kMaxScale = 4.f;
constexpr int kWidth1x = 1280, kHeight1x = 800;  // the default window, at scale 1

constexpr const char* kFooter = R"(Keys (when no text field has the focus):
  Left/Right       step one epoch (Shift: 10, Ctrl: 100)
  PageUp/PageDown  step 1000 epochs
  Home/End         the first / the last epoch
  Space            play / pause
  F5               reload the recording (newer epochs of one still being written)
Timeline: click or drag to scrub, right- or middle-drag to pan, the wheel zooms at the pointer.

Exit codes:
  0   ok
  1   a script failed (or the screenshot could not be written)
  2   usage: bad flags or arguments, an unknown page
  3   the recording could not be opened (a screenshot of the error is still written)
  69  no window could be opened (no X server or no OpenGL 3))";

// Epochs are unsigned: "-1" must not wrap around to 2^64 - 1.
const CLI::Validator kNotNegative(
    [](std::string& s) { return !s.empty() && s.front() == '-' ? std::string("must not be negative") : std::string(); },
    "EPOCH");

// A UI scale, from --scale or $MMSB_INSPECTOR_SCALE: "" if `s` is one, else why not.
std::string scale_error(const std::string& s) {
  char* end = nullptr;
  const float v = std::strtof(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) return "'" + s + "' is not a number";
  if (!(v >= kMinScale && v <= kMaxScale)) return "must be from 0.5 to 4, not " + s;
  return {};
}
const CLI::Validator kScale([](std::string& s) { return scale_error(s); }, "0.5..4");

std::string g_glfw_error;
void on_glfw_error(int code, const char* text) {
  g_glfw_error = "GLFW error " + std::to_string(code) + ": " + (text ? text : "?");
}

// Set when the window's content scale or framebuffer changed: the UI is
// scaled again at the next frame boundary.
bool g_rescale = false;
void on_content_scale(GLFWwindow*, float, float) { g_rescale = true; }
void on_framebuffer_size(GLFWwindow*, int, int) { g_rescale = true; }

// The display's scale for `window`: physical pixels per 1x pixel.
float display_scale(GLFWwindow* window) {
  float x = 1, y = 1;
  glfwGetWindowContentScale(window, &x, &y);
  return std::clamp(x > 0 ? x : 1.f, kMinScale, kMaxScale);
}

// Physical pixels per window coordinate: 1 on X11; 2 on a Wayland or macOS
// HiDPI display, where the system scales windows itself.
float framebuffer_scale(GLFWwindow* window) {
  int ww = 0, wh = 0, fw = 0, fh = 0;
  glfwGetWindowSize(window, &ww, &wh);
  glfwGetFramebufferSize(window, &fw, &fh);
  return ww > 0 && fw > 0 ? static_cast<float>(fw) / static_cast<float>(ww) : 1.f;
}

void on_drop(GLFWwindow* window, int count, const char** paths) {
  if (count > 0) static_cast<App*>(glfwGetWindowUserPointer(window))->open_async(paths[0]);
}

// Reads the back buffer (what was just rendered) and writes it as a PNG.
bool write_png(GLFWwindow* window, const std::string& path, std::string* error) {
  int w = 0, h = 0;
  glfwGetFramebufferSize(window, &w, &h);
  if (w <= 0 || h <= 0) {
    *error = "the window has no pixels";
    return false;
  }
  std::vector<unsigned char> px(static_cast<size_t>(w) * h * 3), flipped(px.size());
  glReadBuffer(GL_BACK);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadPixels(0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, px.data());
  const size_t stride = static_cast<size_t>(w) * 3;
  for (int y = 0; y < h; ++y)
    std::copy_n(px.data() + static_cast<size_t>(h - 1 - y) * stride, stride, flipped.data() + static_cast<size_t>(y) * stride);
  stbi_write_png_compression_level = 9;
  errno = 0;
  if (!stbi_write_png(path.c_str(), w, h, 3, flipped.data(), static_cast<int>(stride))) {
    *error = "cannot write " + path + (errno ? std::string(": ") + std::strerror(errno) : std::string());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  mmsb::replay::raise_open_file_limit();  // a recording keeps one descriptor per segment
  CLI::App cli{"mmsb-inspector: scrub an MMSB recording's timeline, read pages in hex with the bytes each delta "
               "wrote highlighted, diff two epochs and walk propagation."};
  std::string recording, screenshot, page, view_arg, script_path, layout_json, size;
  uint64_t epoch = 0, diff_a = 0, diff_b = 0;
  int frames = 4, fade = 0;
  float scale_arg = 1;
  cli.add_option("recording", recording, "Recording directory to open");
  auto* shot_opt = cli.add_option("--screenshot", screenshot, "Render one frame at the given state into this PNG and exit");
  auto* epoch_opt = cli.add_option("--epoch", epoch, "Cursor epoch (default: the last)")->check(kNotNegative);
  cli.add_option("--page", page, "Page to select, by name or id (default: the one the delta at --epoch wrote)");
  cli.add_option("--view", view_arg, "View to show: hex, diff, or deps (also: propagation)")
      ->check(CLI::IsMember({"hex", "diff", "deps", "propagation"}));
  auto* a_opt = cli.add_option("--diff-a", diff_a, "Diff view: epoch A (default: the first)")->check(kNotNegative);
  auto* b_opt = cli.add_option("--diff-b", diff_b, "Diff view: epoch B (default: the cursor)")->check(kNotNegative);
  cli.add_option("--fade", fade, "Highlight the page's last K writes, fading")->check(CLI::Range(1, mmsb::inspector::Model::kMaxFade));
  cli.add_option("--layout-json", layout_json,
                 "With --screenshot: also write where the frame drew each hex cell, row and tab, as JSON");
  auto* frames_opt =
      cli.add_option("--frames", frames, "With --screenshot: frames rendered before the one captured")->check(CLI::Range(1, 1000));
  cli.add_option("--script", script_path, "Run a script of UI commands (see inspector/script.h), then exit");
  auto* size_opt = cli.add_option(
      "--size", size, "Window size in pixels, WIDTHxHEIGHT: a --screenshot's size (default: 1280x800 times the scale)");
  auto* scale_opt =
      cli.add_option("--scale", scale_arg,
                     "UI scale, 0.5 to 4: 2 draws everything twice as large, for a 2x (HiDPI) display (default: "
                     "$MMSB_INSPECTOR_SCALE, else the display's scale)")
          ->check(kScale);
  // Hidden, for the tests: diffs over more than this many bytes of pages are
  // computed in the background (0: every diff, as on a big recording).
  uint64_t diff_sync_bytes = mmsb::inspector::Model::kDiffSyncBytes;
  cli.add_option("--diff-sync-bytes", diff_sync_bytes)->group("");
  // ... the hex view shows pages larger than this a window at a time, and
  // the side-by-side diff refuses pages larger than that.
  uint64_t hex_window_bytes = mmsb::inspector::Model::kWindowBytes;
  cli.add_option("--hex-window-bytes", hex_window_bytes)->group("")->check(CLI::Range(uint64_t{16}, uint64_t{1} << 40));
  uint64_t side_by_side_bytes = mmsb::inspector::Model::kViewLimit;
  cli.add_option("--side-by-side-bytes", side_by_side_bytes)->group("");
  cli.footer(kFooter);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cli.exit(e);  // --help
    std::fprintf(stderr, "mmsb-inspector: %s\n  run 'mmsb-inspector --help' for usage\n", e.what());
    return kExitUsage;
  }

  int win_w = kWidth1x, win_h = kHeight1x;  // in pixels
  if (!size_opt->empty() && (std::sscanf(size.c_str(), "%dx%d", &win_w, &win_h) != 2 || win_w < 320 || win_h < 240 ||
                             win_w > 16384 || win_h > 16384)) {
    std::fprintf(stderr, "mmsb-inspector: --size wants WIDTHxHEIGHT (at least 320x240), not '%s'\n", size.c_str());
    return kExitUsage;
  }
  // The scale: --scale, else $MMSB_INSPECTOR_SCALE, else (0) the display's.
  float scale_override = 0;
  if (!scale_opt->empty()) {
    scale_override = scale_arg;
  } else if (const char* env = std::getenv("MMSB_INSPECTOR_SCALE"); env && *env) {
    if (const std::string why = scale_error(env); !why.empty()) {
      std::fprintf(stderr, "mmsb-inspector: MMSB_INSPECTOR_SCALE: %s\n", why.c_str());
      return kExitUsage;
    }
    scale_override = std::strtof(env, nullptr);
  }
  const bool shot_mode = !shot_opt->empty();
  if (shot_mode && recording.empty()) {
    std::fprintf(stderr, "mmsb-inspector: --screenshot needs a recording directory\n");
    return kExitUsage;
  }
  if (!shot_mode && (!layout_json.empty() || frames_opt->count() > 0)) {
    std::fprintf(stderr, "mmsb-inspector: --layout-json and --frames go with --screenshot (a script writes its "
                         "layout with the layout-json command)\n");
    return kExitUsage;
  }
  if (recording.empty() && (!page.empty() || !epoch_opt->empty() || !a_opt->empty() || !b_opt->empty())) {
    std::fprintf(stderr, "mmsb-inspector: --page, --epoch, --diff-a and --diff-b need a recording directory\n");
    return kExitUsage;
  }
  std::unique_ptr<Script> script;
  if (!script_path.empty()) {
    script = std::make_unique<Script>();
    std::string err;
    if (!script->load(script_path, &err)) {
      std::fprintf(stderr, "mmsb-inspector: %s\n", err.c_str());
      return kExitUsage;
    }
  }
  const bool headless = shot_mode || script;

  glfwSetErrorCallback(on_glfw_error);
  if (!glfwInit()) {
    std::fprintf(stderr, "mmsb-inspector: cannot open a window (no display? DISPLAY=%s): %s\n",
                 std::getenv("DISPLAY") ? std::getenv("DISPLAY") : "", g_glfw_error.c_str());
    return kExitNoDisplay;
  }
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 0);
  glfwWindowHint(GLFW_RESIZABLE, headless ? GLFW_FALSE : GLFW_TRUE);
  glfwWindowHint(GLFW_VISIBLE, GLFW_FALSE);  // shown once sized for the scale
  GLFWwindow* window = glfwCreateWindow(win_w, win_h, "mmsb-inspector", nullptr, nullptr);
  if (!window) {
    std::fprintf(stderr, "mmsb-inspector: cannot create an OpenGL 3 window: %s\n", g_glfw_error.c_str());
    glfwTerminate();
    return kExitNoDisplay;
  }
  // The window's size in its coordinates: --size's pixels, or 1280x800 at
  // 1x, scaled (and kept on the screen when it is a user's window).
  const float scale = scale_override > 0 ? scale_override : display_scale(window);
  float fb_scale = framebuffer_scale(window);
  {
    auto coords = [&](float pixels) { return static_cast<int>(std::lround(pixels / fb_scale)); };
    int want_w = coords(win_w), want_h = coords(win_h);
    if (size_opt->empty()) {
      want_w = coords(kWidth1x * scale);
      want_h = coords(kHeight1x * scale);
      int ax = 0, ay = 0, aw = 0, ah = 0;
      if (GLFWmonitor* monitor = glfwGetPrimaryMonitor(); monitor && !headless)
        glfwGetMonitorWorkarea(monitor, &ax, &ay, &aw, &ah);
      if (aw > 0 && ah > 0) {
        want_w = std::min(want_w, aw);
        want_h = std::min(want_h, ah);
      }
    }
    int ww = 0, wh = 0;
    glfwGetWindowSize(window, &ww, &wh);
    if (ww != want_w || wh != want_h) glfwSetWindowSize(window, want_w, want_h);
  }
  glfwShowWindow(window);
  fb_scale = framebuffer_scale(window);
  glfwMakeContextCurrent(window);
  glfwSwapInterval(headless ? 0 : 1);

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGui::GetIO().IniFilename = nullptr;
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 130");
  glfwSetWindowContentScaleCallback(window, on_content_scale);
  glfwSetFramebufferSizeCallback(window, on_framebuffer_size);

  int rc = 0;
  {
    App app;
    app.set_scale(scale, fb_scale);  // the first NewFrame makes the font texture
    bool drawn = false;               // the renderer's font texture exists
    float script_scale = 0;           // the display's scale as a script's `scale` set it; 0: GLFW's
    app.model().set_diff_sync_limit(diff_sync_bytes);
    app.model().set_window_bytes(hex_window_bytes);
    app.model().set_view_limit(side_by_side_bytes);
    glfwSetWindowUserPointer(window, &app);
    glfwSetDropCallback(window, on_drop);

    if (!recording.empty()) {
      if (headless) {
        app.set_auto_accept_damaged(shot_mode);
        app.open_blocking(recording);
      } else {
        app.open_async(recording);
      }
    }
    // --page, --epoch, --diff-a and --diff-b, once the recording is open
    // (right away when it was opened on this thread, else when the
    // background open is done). False after a usage error.
    auto apply_start = [&]() -> bool {
      auto& m = app.model();
      if (!page.empty()) {
        const auto id = m.find_page(page);
        if (!id) {
          std::fprintf(stderr, "mmsb-inspector: no page '%s' in %s (%u pages)\n", page.c_str(), recording.c_str(),
                       m.page_count());
          return false;
        }
        m.select_page(*id);
      }
      if (!epoch_opt->empty()) {
        if (epoch < m.first_epoch() || epoch > m.last_epoch())
          std::fprintf(stderr, "mmsb-inspector: epoch %llu is outside %llu..%llu; showing the nearest\n",
                       static_cast<unsigned long long>(epoch), static_cast<unsigned long long>(m.first_epoch()),
                       static_cast<unsigned long long>(m.last_epoch()));
        m.seek(epoch);
        if (page.empty())  // no --page: the page the cursor's delta wrote
          if (const auto d = m.cursor_delta()) m.select_page(d->page);
      }
      const mmsb::Epoch want_a = a_opt->empty() ? m.first_epoch() : diff_a, want_b = b_opt->empty() ? m.cursor() : diff_b;
      m.set_diff(want_a, want_b);
      for (const auto& [flag, want, got] : {std::tuple{"--diff-a", want_a, m.diff_a()}, std::tuple{"--diff-b", want_b, m.diff_b()}})
        if (want != got)
          std::fprintf(stderr, "mmsb-inspector: %s %llu is outside %llu..%llu; using %llu\n", flag,
                       static_cast<unsigned long long>(want), static_cast<unsigned long long>(m.first_epoch()),
                       static_cast<unsigned long long>(m.last_epoch()), static_cast<unsigned long long>(got));
      if (!m.damage().ok()) std::fprintf(stderr, "mmsb-inspector: damaged recording: %s\n", m.damage().to_string().c_str());
      return true;
    };
    bool start_pending = !recording.empty();  // the starting state is not applied yet
    if (start_pending && !app.loading()) {
      start_pending = false;
      if (app.model().loaded()) {
        if (!apply_start()) rc = kExitUsage;
      } else if (shot_mode) {
        std::fprintf(stderr, "mmsb-inspector: %s\n", app.last_error().c_str());
        rc = kExitOpen;
      }
    }
    if (fade) app.model().set_fade(fade);
    if (!view_arg.empty()) app.show_view(*mmsb::inspector::parse_view(view_arg));

    const auto bg = Palette::kBackground;
    int frame = 0;
    auto last = Clock::now();
    while (rc != kExitUsage && !glfwWindowShouldClose(window)) {
      const auto t0 = Clock::now();
      if (start_pending && !app.loading()) {  // the background open is done
        start_pending = false;
        if (app.model().loaded() && !apply_start()) {
          rc = kExitUsage;
          break;
        }
      }
      if (headless || app.loading() || app.model().playing() || app.model().diff_pending()) glfwPollEvents();
      else glfwWaitEventsTimeout(0.25);
      const float dt = std::chrono::duration<float>(Clock::now() - last).count();
      last = Clock::now();

      // A new content scale (the window moved to another monitor) or
      // framebuffer scale: style, fonts and font texture are made again
      // here, between frames.
      if (std::exchange(g_rescale, false)) {
        const float s = scale_override > 0 ? scale_override
                        : script_scale > 0 ? script_scale
                                           : display_scale(window);
        const float fb = framebuffer_scale(window);
        if (s != app.scale() || fb != app.framebuffer_scale()) {
          if (drawn) ImGui_ImplOpenGL3_DestroyFontsTexture();
          app.set_scale(s, fb);
          if (drawn) ImGui_ImplOpenGL3_CreateFontsTexture();
        }
      }
      ImGui_ImplOpenGL3_NewFrame();
      drawn = true;
      ImGui_ImplGlfw_NewFrame();
      if (script) {
        script->before_frame(app);
      } else if (shot_mode) {  // the X server's pointer (the screen centre under Xvfb) must not hover
        ImGui::GetIO().MousePos = ImVec2(-std::numeric_limits<float>::max(), -std::numeric_limits<float>::max());
        for (bool& d : ImGui::GetIO().MouseDown) d = false;
      }
      const auto c0 = Clock::now();
      ImGui::NewFrame();
      app.draw(dt);
      ImGui::Render();
      const double cpu_ms = std::chrono::duration<double, std::milli>(Clock::now() - c0).count();

      int fb_w = 0, fb_h = 0;
      glfwGetFramebufferSize(window, &fb_w, &fb_h);
      glViewport(0, 0, fb_w, fb_h);
      glClearColor(((bg >> 16) & 255) / 255.f, ((bg >> 8) & 255) / 255.f, (bg & 255) / 255.f, 1.f);
      glClear(GL_COLOR_BUFFER_BIT);
      ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
      double gl_ms = 0;
      if (script && script->timing()) {  // split the frame time: drawing vs presenting
        glFinish();
        gl_ms = std::chrono::duration<double, std::milli>(Clock::now() - c0).count() - cpu_ms;
      }

      if (script) {
        script->after_render(app, [&](const std::string& path, std::string* err) { return write_png(window, path, err); });
      }
      // A diff computed in the background: wait for it, then draw the
      // frames before the capture again, so the PNG never shows "computing".
      bool waited = false;
      if (shot_mode && app.model().diff_pending()) {
        app.model().wait_diff();
        waited = true;
        frame = 0;
      }
      if (shot_mode && !waited && ++frame > frames) {
        std::string err;
        if (!write_png(window, screenshot, &err)) {
          std::fprintf(stderr, "mmsb-inspector: %s\n", err.c_str());
          rc = kExitScript;
        } else if (!layout_json.empty() && !app.write_layout_json(layout_json, &err)) {
          std::fprintf(stderr, "mmsb-inspector: %s\n", err.c_str());
          rc = kExitScript;
        }
        break;
      }
      glfwSwapBuffers(window);
      const double frame_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (script) {
        script->record_frame(cpu_ms, gl_ms, frame_ms);
        if (const float f = script->take_display_scale(); f > 0) {  // as if the window moved to another monitor
          script_scale = f;
          g_rescale = true;
        }
        if (script->finished()) {
          if (script->failed()) {
            std::fprintf(stderr, "mmsb-inspector: %s\n", script->error().c_str());
            rc = kExitScript;
          }
          break;
        }
      }
    }
    glfwSetWindowUserPointer(window, nullptr);
  }

  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
  return rc;
}
