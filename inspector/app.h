// The inspector's UI: one App per window, drawn once per frame with Dear
// ImGui. It reads top to bottom like ImGui's examples: draw() lays out the
// fixed panels and calls one function per window (toolbar, timeline, pages,
// recording, the hex/diff/propagation views, deltas, modals). What to show
// comes from Model (model.h) and through it from mmsb::replay; the App only
// turns clicks and keys into Model calls and Model answers into widgets.
//
// Every frame also records where it drew things (FrameLayout): the script
// mode clicks there, and --layout-json writes it out so tests can sample the
// screenshot's pixels exactly at a hex cell.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "model.h"

namespace mmsb::inspector {

struct Rect {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  float cx() const noexcept { return (x0 + x1) / 2; }
  float cy() const noexcept { return (y0 + y1) / 2; }
  bool empty() const noexcept { return !(x1 > x0 && y1 > y0); }
};

// F5 (Reload) as ImGui 1.86's GLFW backend indexes io.KeysDown: by GLFW key
// code, GLFW_KEY_F5 (main.cc checks); its ImGuiKey enum has no F keys.
inline constexpr int kReloadKey = 294;

// Where the last frame drew what (window coordinates, origin top left: the
// screenshot's pixels where the framebuffer scale is 1, as on X11).
struct FrameLayout {
  int width = 0, height = 0;
  Rect timeline;        // the interactive strip (scrub, pan, zoom)
  std::vector<std::pair<uint64_t, Rect>> hex_cells, ascii_cells;  // byte offset -> cell
  std::vector<std::pair<uint64_t, Rect>> diff_old_cells, diff_new_cells;
  std::vector<std::pair<PageId, Rect>> page_rows, diff_rows;
  std::vector<std::pair<Epoch, Rect>> delta_rows, deps_nodes;
  std::map<std::string, Rect> tabs;     // "hex", "diff", "deps"
  std::map<std::string, Rect> buttons;  // by label (the part before "##")
  // The fixed windows: "banner", "toolbar", "timeline", "pages", "recording",
  // "page" (the views) and "deltas".
  std::map<std::string, Rect> panels;
  // The widths the page view keeps for its grids, padding and scrollbar
  // included: 16 bytes a row (and the diff), and 8.
  float grid_px = 0, grid8_px = 0;
  // Texts that must not be clipped: how far each reaches (x) and the edge
  // of the room it has ("recording:program", "diff:only rows that differ",
  // "timeline:page", "deltas:written": the widest row's "N ranges, M B").
  std::map<std::string, std::pair<float, float>> fits;
  std::map<PageId, std::string> page_names;  // the Pages table's name cells, as drawn
  bool live = false;                    // the Recording panel says a writer is running
  bool stacked = false;                 // one side column (a narrow window)
  bool banner = false;                  // the damaged-recording banner is shown
  std::string modal;                    // title of the open modal, "" if none
  std::string modal_text;

  void clear();
  const Rect* find(const std::vector<std::pair<uint64_t, Rect>>& v, uint64_t key) const;
};

// RGB colours the views paint with (opaque, so a screenshot holds them exactly).
struct Palette {
  static constexpr uint32_t kBackground = 0x1a1a1a;  // window background
  static constexpr uint32_t kCurrent = 0xff8c00;     // bytes the cursor's delta changed (filled) or rewrote (outlined)
  static constexpr uint32_t kRecent = 0x3c82e6;      // earlier writes, fading to the background
  static constexpr uint32_t kDiffOld = 0xb43c3c;     // differing bytes at A
  static constexpr uint32_t kDiffNew = 0x3caa50;     // ... at B
  static constexpr uint32_t kCursor = 0xffd200;      // the epoch cursor
  static constexpr uint32_t kDensity = 0x5a9be0;
  static constexpr uint32_t kDerived = 0xc070e0;
  static constexpr uint32_t kSnapshot = 0x7cd67c;
  // The recent colour for age k of `fade` (1 = newest), blended towards the background.
  static uint32_t recent(int age, int fade);
};

class App {
 public:
  App();
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  Model& model() noexcept { return model_; }
  const FrameLayout& layout() const noexcept { return layout_; }

  // Opening: in the background (the UI shows progress), or right now on
  // this thread (command line, scripts, screenshots). A damaged recording
  // asks first whether to open its readable part, unless auto_accept.
  void open_async(const std::filesystem::path& dir);
  void open_blocking(const std::filesystem::path& dir);
  // Opens the open recording again (in the background), keeping the cursor
  // (at the last epoch when it was at the last), the selected page and byte
  // and the diff's epochs where they still exist: a recording still being
  // written shows its newer epochs.
  void reload();
  bool loading() const noexcept { return job_ != nullptr; }
  // Stops waiting for the open in the background (the Opening modal's
  // Cancel): the load is told to stop, and is left to finish on its own if
  // it cannot (a read that blocks); its result is dropped.
  void cancel_load();
  void set_auto_accept_damaged(bool on) noexcept { auto_accept_ = on; }
  // The message of the last failed open ("" after a successful one).
  const std::string& last_error() const noexcept { return last_error_; }

  // Shows a view's tab (also selects it on the next frame).
  void show_view(View v);
  // Sets the pages filter text.
  void set_page_filter(const std::string& text);

  // One frame: call between ImGui::NewFrame() and ImGui::Render().
  // `dt` is the time since the previous frame (playback).
  void draw(float dt);

  // The layout of the last frame as JSON (tests sample pixels with it).
  bool write_layout_json(const std::filesystem::path& path, std::string* error) const;

  // Sizes the UI for a display of `scale` physical pixels per 1x pixel (1 at
  // 96 dpi, 2 on a "2x" display), `framebuffer_scale` of them per window
  // coordinate (2 where the system scales windows itself, as Wayland and
  // macOS do; 1 on X11): ImGui's style is made again (the inspector's
  // colours, then ScaleAllSizes), the font atlas holds ProggyClean at
  // 13 * scale pixels, and every fixed size of the windows is scaled. So the
  // layout, in window coordinates, is the 1x one times scale /
  // framebuffer_scale. Call between frames, never inside one; the renderer's
  // font texture must be made again after (main.cc does).
  void set_scale(float scale, float framebuffer_scale = 1);
  float scale() const noexcept { return scale_; }
  float framebuffer_scale() const noexcept { return framebuffer_scale_; }

 private:
  // Windows, top to bottom.
  float draw_banner(float y);
  float draw_toolbar(float y);
  float draw_timeline(float y);
  void draw_pages(float x, float y, float w, float h);
  void draw_recording(float x, float y, float w, float h);
  void draw_views(float x, float y, float w, float h);
  void draw_hex();
  void draw_diff();
  void draw_deps();
  void draw_deltas(float x, float y, float w, float h);
  void draw_modals();
  // Pieces.
  void handle_keys();
  void poll_loader();
  void take(Loaded&& l);
  void draw_hex_window(uint64_t size);
  void draw_hex_grid(uint64_t base, std::span<const std::byte> bytes, std::span<const int16_t> ages);
  void draw_diff_grid();
  void draw_cause_tree(const replay::CauseTree& t, uint64_t* budget);
  bool button(const char* label, float width = 0);
  bool small_button(const char* label);
  void field(const char* key, const std::string& value);
  void note_fit(const std::string& name, float right, float limit);
  void note_panel(const char* name);  // the current window, into layout_.panels
  // A size given at 1x, in window coordinates at the current scale.
  float px(float v) const noexcept { return v * ui_scale_; }
  void go_to(Epoch e, bool select_page = false);
  void rebuild_page_rows();
  void after_adopt();

  Model model_;
  FrameLayout layout_;
  float scale_ = 1, framebuffer_scale_ = 1;
  float ui_scale_ = 1;  // scale_ / framebuffer_scale_: what px() multiplies by

  // Loading.
  // Shared with the loader thread, which may outlive the App (an open
  // that blocks is abandoned, not waited for).
  struct LoadJob {
    std::filesystem::path dir;
    std::atomic<uint64_t> done{0}, total{0};
    std::atomic<bool> cancel{false}, finished{false};
    std::mutex mu;
    std::optional<Loaded> result;
  };
  std::shared_ptr<LoadJob> job_;  // null when nothing is loading
  std::thread loader_;
  std::filesystem::path loading_dir_;
  std::optional<Loaded> pending_;  // a damaged recording waiting for "open the readable part"
  struct Kept {                    // what reload() restores once the recording is open again
    std::filesystem::path dir;
    Epoch cursor = 0, last = 0, diff_a = 0, diff_b = 0;
    PageId page = kNoPage;
    std::optional<uint64_t> byte;
  };
  std::optional<Kept> reload_;
  bool auto_accept_ = false;
  std::string last_error_;
  std::string error_title_, error_text_;  // the error modal; "" when none
  bool offer_recover_ = false;
  std::filesystem::path error_dir_;
  // One line in the toolbar ("no earlier write of byte 12"), shown until the
  // cursor, the selected page or the selected byte changes.
  std::string notice_;
  std::tuple<uint64_t, PageId, std::optional<uint64_t>> notice_at_;  // notice_key() when set
  std::tuple<uint64_t, PageId, std::optional<uint64_t>> notice_key() const;
  void set_notice(std::string text);

  // Toolbar.
  char path_buf_[1024] = {};
  uint64_t goto_epoch_ = 0;

  // Timeline.
  bool scrubbing_ = false;
  Epoch followed_cursor_ = ~Epoch{0};
  std::vector<Density::Column> columns_;
  double columns_lo_ = 0, columns_hi_ = 0;
  int columns_n_ = 0;
  const replay::Index* columns_index_ = nullptr;

  // Pages table.
  char filter_buf_[256] = {};
  std::vector<PageId> page_rows_;
  bool page_rows_dirty_ = true;
  uint64_t page_rows_generation_ = 0;
  int sort_column_ = 0;
  bool sort_descending_ = false;
  PageId scrolled_to_page_ = kNoPage;

  // Views.
  View shown_view_ = View::kHex;
  std::optional<View> want_tab_ = View::kHex;  // selected by code, shown once ImGui has switched
  bool diff_only_rows_ = true;
  uint64_t diff_a_edit_ = 0, diff_b_edit_ = 0;
  // Side by side bytes of the selected page at A and B.
  struct DiffSides {
    PageId page = kNoPage;
    Epoch a = 0, b = 0;
    const replay::Index* index = nullptr;
    std::vector<std::byte> old_bytes, new_bytes;
    bool old_exists = false, new_exists = false;
    std::vector<uint8_t> mask;  // 1 where A and B differ
    std::vector<uint64_t> rows;  // rows (of 8 bytes) to show
    bool only_diff = true;
    std::string error;
  } sides_;
  std::pair<PageId, Epoch> hex_scrolled_{kNoPage, ~Epoch{0}};
  int hex_per_row_ = 16;  // bytes a row of the hex view: 16, or 8 in a narrow window
  std::optional<uint64_t> hex_goto_;  // a page byte to scroll to after the window moved
  uint64_t hex_visible_bytes_ = 0;    // bytes the hex grid showed in the last frame
  char goto_buf_[32] = {};
  float toolbar_h_ = 0;   // the toolbar's height, from the rows the last frame drew

  // Deltas list.
  bool deltas_page_only_ = false;
  float deltas_written_w_ = 0;  // the widest "N ranges, M B" the last frame drew
  Epoch deltas_scrolled_ = ~Epoch{0};
};

}  // namespace mmsb::inspector
