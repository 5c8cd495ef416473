#include "app.h"

#include <imgui.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <chrono>
#include <thread>
#include <fstream>

#include "mmsb/json.h"
#include "mmsb/replay/text.h"
#include "mmsb/replay/tools.h"

namespace mmsb::inspector {

namespace {

using ull = unsigned long long;

constexpr ImGuiWindowFlags kPanel = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize |
                                    ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoSavedSettings |
                                    ImGuiWindowFlags_NoBringToFrontOnFocus;
constexpr ImGuiWindowFlags kBar = kPanel | ImGuiWindowFlags_NoTitleBar | ImGuiWindowFlags_NoScrollbar |
                                  ImGuiWindowFlags_NoScrollWithMouse;
constexpr int kHexPerRow = 16;
constexpr int kDiffPerRow = 8;
constexpr uint64_t kDeltaWindow = 2000;  // rows of the deltas list on each side of the cursor
constexpr uint64_t kTreeBudget = 2000;   // propagation nodes drawn at most
constexpr size_t kTooltipRanges = 1000;  // ranges a tooltip lists at most

ImU32 col(uint32_t rgb, int a = 255) { return IM_COL32((rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255, a); }
ImVec4 colv(uint32_t rgb, float a = 1.f) {
  return ImVec4(((rgb >> 16) & 255) / 255.f, ((rgb >> 8) & 255) / 255.f, (rgb & 255) / 255.f, a);
}
float snap(float v) { return std::floor(v + 0.5f); }
// The right edge of the current window's content region, in screen pixels.
float content_right() { return ImGui::GetWindowPos().x + ImGui::GetWindowContentRegionMax().x; }
// The width of a button (or small button) labelled `label`.
float button_width(const char* label) {
  return ImGui::CalcTextSize(label).x + 2 * ImGui::GetStyle().FramePadding.x;
}

// Widths of the grids in character cells: the hex view's offset, `per_row`
// hex cells with a gap after the eighth, and the ASCII column; the diff's
// offset and its two sides of kDiffPerRow bytes, hex and ASCII each.
float hex_grid_chars(int per_row) { return 10 + 3.f * per_row + 1 + 1 + per_row + 1; }
float diff_grid_chars() { return 8 + (3.f * kDiffPerRow + 1 + kDiffPerRow) * 2 + 3 + 1; }

std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

std::string visible_label(const char* label) {
  std::string s(label);
  const auto p = s.find("##");
  return p == std::string::npos ? s : s.substr(0, p);
}

std::string human_bytes(uint64_t n) {
  if (n < 10 * 1024) return fmt("%llu B", static_cast<ull>(n));
  if (n < 10ull * 1024 * 1024) return fmt("%.1f KiB", n / 1024.0);
  if (n < 10ull * 1024 * 1024 * 1024) return fmt("%.1f MiB", n / (1024.0 * 1024));
  return fmt("%.1f GiB", n / (1024.0 * 1024 * 1024));
}

Rect item_rect() {
  const ImVec2 a = ImGui::GetItemRectMin(), b = ImGui::GetItemRectMax();
  return {a.x, a.y, b.x, b.y};
}

bool contains(const Rect& r, ImVec2 p) { return p.x >= r.x0 && p.x < r.x1 && p.y >= r.y0 && p.y < r.y1; }

// 1, 2 or 5 times a power of ten, at least `raw` (and at least 1).
double nice_step(double raw) {
  if (!(raw > 1)) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

bool lower_contains(const std::string& hay, const std::string& needle_lower) {
  if (needle_lower.empty()) return true;
  std::string h(hay);
  for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return h.find(needle_lower) != std::string::npos;
}

// `s` shortened from the front (keep_end) until it is at most `room` wide:
// the end of a name tells bands, tiles and the like apart.
std::string fit_end(const std::string& s, float room) {
  std::string shown = s;
  for (size_t n = s.size(); n > 0 && ImGui::CalcTextSize(shown.c_str()).x > room; --n) shown = keep_end(s, n - 1);
  return shown;
}

char printable(std::byte b) {
  const int c = std::to_integer<int>(b);
  return c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.';
}

// A square of the text's height in `rgb`, then `text`; `s` is the UI scale.
void legend_box(float s, uint32_t rgb, const char* text, bool outline = false) {
  const float h = ImGui::GetTextLineHeight();
  const ImVec2 p = ImGui::GetCursorScreenPos();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  if (outline) dl->AddRect(ImVec2(p.x + s, p.y + 2 * s), ImVec2(p.x + h - s, p.y + h - 2 * s), col(rgb), 0, 0, 2 * s);
  else dl->AddRectFilled(ImVec2(p.x, p.y + s), ImVec2(p.x + h, p.y + h - s), col(rgb));
  ImGui::Dummy(ImVec2(h, h));
  ImGui::SameLine();
  ImGui::TextUnformatted(text);
}

}  // namespace

// ---------------------------------------------------------------- layout

void FrameLayout::clear() {
  timeline = {};
  hex_cells.clear();
  ascii_cells.clear();
  diff_old_cells.clear();
  diff_new_cells.clear();
  page_rows.clear();
  diff_rows.clear();
  delta_rows.clear();
  deps_nodes.clear();
  tabs.clear();
  buttons.clear();
  panels.clear();
  grid_px = grid8_px = 0;
  fits.clear();
  page_names.clear();
  live = false;
  stacked = false;
  banner = false;
  modal.clear();
  modal_text.clear();
}

const Rect* FrameLayout::find(const std::vector<std::pair<uint64_t, Rect>>& v, uint64_t key) const {
  for (const auto& [k, r] : v)
    if (k == key) return &r;
  return nullptr;
}

uint32_t Palette::recent(int age, int fade) {
  // Exponential: the newest earlier write at full strength, the oldest at a fifth.
  const double t = fade > 1 ? std::clamp((age - 1) / static_cast<double>(fade - 1), 0.0, 1.0) : 0.0;
  const double s = std::pow(0.2, t);
  uint32_t out = 0;
  for (int shift : {16, 8, 0}) {
    const double bg = (kBackground >> shift) & 255, fg = (kRecent >> shift) & 255;
    out |= static_cast<uint32_t>(std::lround(bg + (fg - bg) * s)) << shift;
  }
  return out;
}

// ---------------------------------------------------------------- App

App::App() = default;

App::~App() {
  // Closing the window while opening: give the load a moment to see the
  // cancel flag and end, then leave it (a blocked read would never return).
  if (!job_) return;
  job_->cancel = true;
  for (int i = 0; i < 50 && !job_->finished; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (job_->finished) loader_.join();
  else loader_.detach();
}

void App::set_scale(float scale, float framebuffer_scale) {
  scale_ = scale;
  framebuffer_scale_ = framebuffer_scale > 0 ? framebuffer_scale : 1;
  ui_scale_ = scale_ / framebuffer_scale_;
  // ScaleAllSizes() multiplies the sizes there are: start from the defaults.
  ImGuiStyle& st = ImGui::GetStyle();
  st = ImGuiStyle();
  ImGui::StyleColorsDark(&st);
  st.WindowRounding = 0;
  st.FrameRounding = 2;
  st.Colors[ImGuiCol_WindowBg] = colv(Palette::kBackground);
  st.Colors[ImGuiCol_ChildBg] = ImVec4(0, 0, 0, 0);
  st.Colors[ImGuiCol_PopupBg] = colv(0x242424);
  st.ScaleAllSizes(ui_scale_);
  // ProggyClean, rasterized for the display's pixels and drawn at
  // 1 / framebuffer_scale, so that it measures 13 * ui_scale_ window
  // coordinates. At scale 1 the same font as AddFontDefault() with no config
  // (which sets oversampling and snapping only when it is given none).
  ImGuiIO& io = ImGui::GetIO();
  io.Fonts->Clear();
  ImFontConfig cfg;
  cfg.OversampleH = cfg.OversampleV = 1;
  cfg.PixelSnapH = true;
  cfg.SizePixels = 13.f * scale_;
  io.Fonts->AddFontDefault(&cfg);
  io.FontGlobalScale = 1.f / framebuffer_scale_;
  // What the last frame measured at the old scale; the lists that follow
  // the cursor and the selected page centre them again.
  toolbar_h_ = 0;
  deltas_written_w_ = 0;
  deltas_scrolled_ = ~Epoch{0};
  scrolled_to_page_ = kNoPage;
}

void App::open_async(const std::filesystem::path& dir) {
  if (loading()) {
    set_notice("still opening " + loading_dir_.string());
    return;
  }
  loading_dir_ = dir;
  job_ = std::make_shared<LoadJob>();
  job_->dir = dir;
  // The thread holds the job, never the App.
  loader_ = std::thread([job = job_] {
    Loaded l = load_recording(
        job->dir,
        [&job](uint64_t done, uint64_t total) {
          job->done = done;
          job->total = total;
        },
        &job->cancel);
    {
      std::lock_guard<std::mutex> lock(job->mu);
      job->result = std::move(l);
    }
    job->finished = true;
  });
}

void App::reload() {
  if (!model_.loaded()) return;
  if (loading()) {
    set_notice("still opening " + loading_dir_.string());
    return;
  }
  reload_ = Kept{model_.dir(),    model_.cursor(),        model_.last_epoch(), model_.diff_a(),
                 model_.diff_b(), model_.selected_page(), model_.selected_byte()};
  open_async(model_.dir());
}

void App::cancel_load() {
  if (!job_) return;
  job_->cancel = true;
  if (job_->finished) loader_.join();
  else loader_.detach();  // it drops its result when it ends
  job_.reset();
  set_notice("cancelled opening " + loading_dir_.string());
}

void App::open_blocking(const std::filesystem::path& dir) {
  poll_loader();
  cancel_load();
  take(load_recording(dir));
}

void App::poll_loader() {
  if (!job_ || !job_->finished) return;
  loader_.join();
  std::optional<Loaded> l;
  {
    std::lock_guard<std::mutex> lock(job_->mu);
    l.swap(job_->result);
  }
  job_.reset();
  if (l && l->stage != "cancelled") take(std::move(*l));
}

std::tuple<uint64_t, PageId, std::optional<uint64_t>> App::notice_key() const {
  return {model_.cursor_generation(), model_.selected_page(), model_.selected_byte()};
}

void App::set_notice(std::string text) {
  notice_ = std::move(text);
  notice_at_ = notice_key();
}

void App::take(Loaded&& l) {
  last_error_.clear();
  notice_.clear();
  const std::optional<Kept> kept = std::exchange(reload_, std::nullopt);
  if (!l.error.ok()) {
    // Keep the path that failed in the field, so that a typo is fixed, not retyped.
    std::snprintf(path_buf_, sizeof path_buf_, "%s", l.dir.string().c_str());
    last_error_ = l.error.to_string();
    error_title_ = l.stage == "open" ? "Cannot open the recording" : "Cannot read the recording";
    error_text_ = l.dir.string() + "\n\n" + l.error.to_string();
    if (l.rec && !l.rec->damage().ok()) error_text_ += "\n\nOpening it found: " + l.rec->damage().to_string();
    // The index could not be built (a delta in a good frame is invalid for
    // its page): recover() cuts the segment there, and what remains opens.
    offer_recover_ = l.stage == "index";
    error_dir_ = l.dir;
    if (model_.loaded()) error_text_ += "\n\nThe recording that was open stays open.";
    return;
  }
  // Damage in a recording reopened by reload() was accepted the first time
  // (or is a live writer's frame in flight): the banner says so.
  if (!l.damage().ok() && !auto_accept_ && !kept) {
    pending_ = std::move(l);
    return;
  }
  model_.adopt(std::move(l));
  after_adopt();
  if (kept && kept->dir == model_.dir()) {
    // At the end before: at the end now, as tail -f follows a growing file.
    model_.seek(kept->cursor == kept->last ? model_.last_epoch() : kept->cursor);
    model_.set_diff(kept->diff_a, kept->diff_b);
    if (kept->page != kNoPage && kept->page < model_.page_count()) model_.select_page(kept->page);
    if (kept->byte) model_.select_byte(kept->byte);
    set_notice(fmt("reloaded: epochs %llu..%llu (%llu new)", static_cast<ull>(model_.first_epoch()),
                   static_cast<ull>(model_.last_epoch()),
                   static_cast<ull>(model_.last_epoch() > kept->last ? model_.last_epoch() - kept->last : 0)));
  }
}

void App::after_adopt() {
  const std::string d = model_.dir().string();
  std::snprintf(path_buf_, sizeof path_buf_, "%s", d.c_str());
  page_rows_dirty_ = true;
  scrolled_to_page_ = kNoPage;
  followed_cursor_ = ~Epoch{0};
  columns_index_ = nullptr;
  sides_ = DiffSides{};
  deltas_scrolled_ = ~Epoch{0};
  hex_scrolled_ = {kNoPage, ~Epoch{0}};
  want_tab_ = shown_view_;
}

void App::show_view(View v) {
  shown_view_ = v;
  want_tab_ = v;
  model_.set_view(v);
}

void App::set_page_filter(const std::string& text) {
  std::snprintf(filter_buf_, sizeof filter_buf_, "%s", text.c_str());
  page_rows_dirty_ = true;
}

bool App::button(const char* label, float width) {
  const bool pressed = ImGui::Button(label, ImVec2(width, 0));
  layout_.buttons[visible_label(label)] = item_rect();
  return pressed;
}

bool App::small_button(const char* label) {
  const bool pressed = ImGui::SmallButton(label);
  layout_.buttons[visible_label(label)] = item_rect();
  return pressed;
}

// "key       value" with the value wrapped at the window's edge, its lines
// indented under its first.
void App::field(const char* key, const std::string& value) {
  ImGui::TextUnformatted(key);
  ImGui::SameLine(ImGui::CalcTextSize("snapshots ").x + ImGui::GetStyle().WindowPadding.x, 0);
  ImGui::PushTextWrapPos(0);
  ImGui::TextUnformatted(value.c_str());
  ImGui::PopTextWrapPos();
  note_fit(std::string("recording:") + key, ImGui::GetItemRectMax().x, content_right());
}

void App::note_panel(const char* name) {
  const ImVec2 p = ImGui::GetWindowPos(), s = ImGui::GetWindowSize();
  layout_.panels[name] = {p.x, p.y, p.x + s.x, p.y + s.y};
}

void App::note_fit(const std::string& name, float right, float limit) {
  auto& f = layout_.fits[name];
  if (f.first == 0 && f.second == 0) f = {right, limit};
  else if (right - limit > f.first - f.second) f = {right, limit};  // keep the worst
}

void App::go_to(Epoch e, bool select_page) {
  model_.seek(e);
  if (select_page && model_.index())
    if (const auto d = model_.index()->delta(e)) model_.select_page(d->page);
}

// ---------------------------------------------------------------- the frame

void App::draw(float dt) {
  layout_.clear();
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  layout_.width = static_cast<int>(vp->Size.x);
  layout_.height = static_cast<int>(vp->Size.y);
  poll_loader();
  handle_keys();
  model_.advance(dt);

  float y = vp->WorkPos.y;
  y += draw_banner(y);
  y += draw_toolbar(y);
  y += draw_timeline(y);

  const float x = vp->WorkPos.x, w = vp->WorkSize.x;
  const float h = std::max(px(100), vp->WorkPos.y + vp->WorkSize.y - y);
  // The side panels give way first: the page view keeps room for a whole
  // row of its grids (a vertical scrollbar included). Where two side
  // columns would be narrower than side_min, their tables cannot show a
  // name and "written" side by side: one column of side_min or more holds
  // pages, deltas and the recording, one above the other. Every width here
  // scales with the UI, so the breakpoints (stacked below about 1200 px at
  // 1x) do too.
  const ImGuiStyle& style = ImGui::GetStyle();
  // A grid of `chars` characters a row in the page view, padding and scrollbar included.
  auto grid_px = [&](float chars) {
    return chars * ImGui::CalcTextSize("0").x + 2 * style.WindowPadding.x + style.ScrollbarSize + px(2);
  };
  const float grid_w = grid_px(std::max(hex_grid_chars(kHexPerRow), diff_grid_chars()));
  const float hex8_w = grid_px(hex_grid_chars(kHexPerRow / 2));
  layout_.grid_px = grid_w;
  layout_.grid8_px = hex8_w;
  const float side_min = px(300), side_max = px(420);
  const float two = std::floor(std::min({w * 0.26f, (w - grid_w) / 2, side_max}));
  layout_.stacked = two < side_min;
  if (!layout_.stacked) {
    const float center = w - 2 * two;
    const float pages_h = std::floor(h * 0.6f);
    draw_pages(x, y, two, pages_h);
    draw_recording(x, y + pages_h, two, h - pages_h);
    draw_views(x + two, y, center, h);
    draw_deltas(x + two + center, y, two, h);
  } else {
    // Wide enough for 16 bytes a row next to side_min, or else for 8 (the
    // side-by-side diff then scrolls sideways).
    const float side =
        std::floor(std::clamp(w - grid_w >= side_min ? w - grid_w : w - hex8_w, side_min, side_max));
    const float pages_h = std::floor(h * 0.35f), deltas_h = std::floor(h * 0.4f);
    draw_pages(x, y, side, pages_h);
    draw_deltas(x, y + pages_h, side, deltas_h);
    draw_recording(x, y + pages_h + deltas_h, side, h - pages_h - deltas_h);
    draw_views(x + side, y, std::max(px(200), w - side), h);
  }
  draw_modals();
}

void App::handle_keys() {
  const ImGuiIO& io = ImGui::GetIO();
  if (!model_.loaded() || io.WantTextInput || ImGui::IsPopupOpen(nullptr, ImGuiPopupFlags_AnyPopupId)) return;
  auto pressed = [](ImGuiKey k) { return ImGui::IsKeyPressed(ImGui::GetKeyIndex(k), true); };
  const int64_t n = io.KeyCtrl ? 100 : io.KeyShift ? 10 : 1;
  if (pressed(ImGuiKey_RightArrow)) model_.step(n);
  if (pressed(ImGuiKey_LeftArrow)) model_.step(-n);
  if (pressed(ImGuiKey_Home)) model_.seek(model_.first_epoch());
  if (pressed(ImGuiKey_End)) model_.seek(model_.last_epoch());
  if (pressed(ImGuiKey_PageDown)) model_.step(1000);
  if (pressed(ImGuiKey_PageUp)) model_.step(-1000);
  if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Space), false)) model_.set_playing(!model_.playing());
  if (ImGui::IsKeyPressed(kReloadKey, false)) reload();
}

// A red strip over everything while the open recording is damaged.
float App::draw_banner(float y) {
  if (!model_.loaded() || model_.damage().ok()) return 0;
  layout_.banner = true;
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  const float h = std::floor(ImGui::GetTextLineHeightWithSpacing() * 2 + ImGui::GetStyle().WindowPadding.y * 2);
  ImGui::SetNextWindowPos(ImVec2(vp->WorkPos.x, y));
  ImGui::SetNextWindowSize(ImVec2(vp->WorkSize.x, h));
  ImGui::PushStyleColor(ImGuiCol_WindowBg, colv(0x6e1e1e));
  ImGui::Begin("##banner", nullptr, kBar);
  note_panel("banner");
  const auto* ix = model_.index();
  ImGui::Text("Damaged recording: showing its readable part, epochs %llu..%llu (%llu deltas). "
              "Nothing after the damage is shown.",
              static_cast<ull>(model_.first_epoch()), static_cast<ull>(model_.last_epoch()),
              static_cast<ull>(ix->delta_count()));
  ImGui::TextUnformatted(model_.damage().to_string().c_str());
  ImGui::End();
  ImGui::PopStyleColor();
  return h;
}

// The toolbar: groups of controls on one row, or on as many as a narrow
// window needs (its height follows the rows the last frame drew).
float App::draw_toolbar(float y) {
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  const ImGuiStyle& style = ImGui::GetStyle();
  const float row_h = std::floor(ImGui::GetFrameHeight() + style.WindowPadding.y * 2);
  const float h = std::max(row_h, toolbar_h_);
  ImGui::SetNextWindowPos(ImVec2(vp->WorkPos.x, y));
  ImGui::SetNextWindowSize(ImVec2(vp->WorkSize.x, h));
  ImGui::Begin("##toolbar", nullptr, kBar);
  note_panel("toolbar");
  const float edge = content_right();
  float reach = 0;  // the right end of the widest row
  // The next group of `w` pixels on this row if it fits, else on the next.
  auto next_group = [&](float w, float gap) {
    reach = std::max(reach, ImGui::GetItemRectMax().x);
    ImGui::SameLine(0, gap);
    if (ImGui::GetContentRegionAvail().x < w) ImGui::NewLine();
  };

  const char* hint = "recording directory (or drop one here)";
  ImGui::SetNextItemWidth(std::floor(ImGui::CalcTextSize(hint).x + 2 * style.FramePadding.x + px(4)));
  const bool enter = ImGui::InputTextWithHint("##path", hint, path_buf_, sizeof path_buf_,
                                              ImGuiInputTextFlags_EnterReturnsTrue);
  layout_.buttons["field:path"] = item_rect();
  ImGui::SameLine();
  if ((button("Open") || enter) && path_buf_[0]) open_async(path_buf_);

  if (model_.loaded()) {
    const float sp = style.ItemSpacing.x;
    next_group(button_width("|<") + button_width("<") + button_width(">") + button_width(">|") + px(100) + px(48) +
                   5 * sp,
               px(16));
    if (button("|<")) model_.seek(model_.first_epoch());
    ImGui::SameLine();
    if (button("<")) model_.step(-1);
    ImGui::SameLine();
    if (button(">")) model_.step(1);
    ImGui::SameLine();
    if (button(">|")) model_.seek(model_.last_epoch());
    ImGui::SameLine();
    ImGui::SetNextItemWidth(px(100));
    uint64_t target = model_.cursor();
    if (ImGui::InputScalar("##goto", ImGuiDataType_U64, &target, nullptr, nullptr, nullptr,
                           ImGuiInputTextFlags_EnterReturnsTrue))
      model_.seek(target);
    layout_.buttons["field:epoch"] = item_rect();
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("Type an epoch and press Enter to jump there");
    ImGui::SameLine();
    if (button(model_.playing() ? "Pause" : "Play", px(48))) model_.set_playing(!model_.playing());
    next_group(px(120) + sp + ImGui::CalcTextSize("epochs/s").x + style.ItemInnerSpacing.x + button_width("Fit"), sp);
    ImGui::SetNextItemWidth(px(120));
    float rate = static_cast<float>(model_.rate());
    if (ImGui::SliderFloat("epochs/s", &rate, 1.f, 1e6f, "%.0f", ImGuiSliderFlags_Logarithmic))
      model_.set_rate(rate);
    ImGui::SameLine();
    if (button("Fit")) model_.timeline().fit(model_.first_epoch(), model_.last_epoch());
    const std::string where = fmt("epoch %llu  [%llu..%llu]", static_cast<ull>(model_.cursor()),
                                  static_cast<ull>(model_.first_epoch()), static_cast<ull>(model_.last_epoch()));
    next_group(ImGui::CalcTextSize(where.c_str()).x + sp + ImGui::CalcTextSize("(?)").x, px(16));
    ImGui::TextUnformatted(where.c_str());
    ImGui::SameLine();
    ImGui::TextDisabled("(?)");
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip(
          "Timeline: click or drag to scrub, right- or middle-drag to pan, wheel to zoom at the pointer.\n"
          "Keys: Left/Right step one epoch (Shift x10, Ctrl x100), PageUp/PageDown 1000,\n"
          "Home/End first/last epoch, Space play/pause.");
  }
  if (!notice_.empty() && notice_at_ != notice_key()) notice_.clear();  // the user has moved on
  if (!notice_.empty()) {
    next_group(ImGui::CalcTextSize(notice_.c_str()).x, px(16));
    ImGui::PushTextWrapPos(0);  // longer than a row: wrapped
    ImGui::TextColored(colv(0xffcc66), "%s", notice_.c_str());
    ImGui::PopTextWrapPos();
  }
  reach = std::max(reach, ImGui::GetItemRectMax().x);
  note_fit("toolbar", reach, edge);
  toolbar_h_ = std::floor(ImGui::GetItemRectMax().y - ImGui::GetWindowPos().y + style.WindowPadding.y);
  ImGui::End();
  return h;
}

// The epoch axis: ticks, the bytes-per-delta and derived strips, the
// selected page's writes, snapshots, and the cursor.
float App::draw_timeline(float y) {
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  const float axis_h = px(16), bytes_h = px(30), derived_h = px(8), page_h = px(16), snap_h = px(10), gap = px(3);
  const float content_h = axis_h + bytes_h + derived_h + page_h + snap_h + 4 * gap;
  const float h = std::floor(content_h + ImGui::GetStyle().WindowPadding.y * 2);
  ImGui::SetNextWindowPos(ImVec2(vp->WorkPos.x, y));
  ImGui::SetNextWindowSize(ImVec2(vp->WorkSize.x, h));
  ImGui::Begin("##timeline", nullptr, kBar);
  note_panel("timeline");
  if (!model_.loaded()) {
    ImGui::TextDisabled(loading() ? "Opening %s ..." : "%s",
                        loading() ? loading_dir_.string().c_str()
                                  : "Open a recording: mmsb-inspector DIR, the path field above, or drop a "
                                    "recording directory on this window.");
    ImGui::End();
    return h;
  }
  const replay::Index& ix = *model_.index();
  TimelineView& view = model_.timeline();
  const Epoch first = model_.first_epoch(), last = model_.last_epoch();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImGuiIO& io = ImGui::GetIO();
  const ImVec2 p = ImGui::GetCursorScreenPos();
  const float label_w = px(92);
  const float x0 = std::floor(p.x + label_w);
  const float w = std::max(px(10), std::floor(ImGui::GetContentRegionAvail().x - label_w));
  const float y_axis = p.y, y_bytes = y_axis + axis_h + gap, y_der = y_bytes + bytes_h + gap,
              y_page = y_der + derived_h + gap, y_snap = y_page + page_h + gap, y_end = y_snap + snap_h;

  // Interaction.
  ImGui::SetCursorScreenPos(ImVec2(x0, y_axis));
  ImGui::InvisibleButton("##strip", ImVec2(w, y_end - y_axis),
                         ImGuiButtonFlags_MouseButtonLeft | ImGuiButtonFlags_MouseButtonRight |
                             ImGuiButtonFlags_MouseButtonMiddle);
  layout_.timeline = item_rect();
  const bool hovered = ImGui::IsItemHovered(), active = ImGui::IsItemActive();
  if (active && ImGui::IsMouseDown(ImGuiMouseButton_Left)) {
    scrubbing_ = true;
    model_.seek(view.epoch_at(io.MousePos.x, x0, w, first, last));
  } else {
    scrubbing_ = false;
  }
  if (active && (ImGui::IsMouseDragging(ImGuiMouseButton_Right, 0) || ImGui::IsMouseDragging(ImGuiMouseButton_Middle, 0)))
    view.pan(-io.MouseDelta.x * view.span() / w, first, last);
  if (hovered && io.MouseWheel != 0) {
    const double anchor = view.lo + (io.MousePos.x - x0) / w * view.span();
    view.zoom(anchor, std::pow(0.8, io.MouseWheel), first, last);
  }
  if (!scrubbing_ && model_.cursor() != followed_cursor_) view.follow(model_.cursor(), first, last);
  followed_cursor_ = model_.cursor();

  // Labels.
  const ImU32 dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  dl->AddText(ImVec2(p.x, y_axis), dim, "epoch");
  dl->AddText(ImVec2(p.x, y_bytes + px(8)), dim, "bytes/delta");
  dl->AddText(ImVec2(p.x, y_der - px(4)), dim, "derived");
  const PageId page = model_.selected_page();
  const std::string page_label = page == kNoPage ? std::string("(no page)") : model_.page_label(page);
  {
    const float room = label_w - px(4);
    const std::string s = fit_end(page_label, room);
    dl->AddText(ImVec2(p.x, y_page + px(1)), dim, s.c_str());
    note_fit("timeline:page", p.x + ImGui::CalcTextSize(s.c_str()).x, p.x + room);
  }
  dl->AddText(ImVec2(p.x, y_snap - px(2)), dim, "snapshots");

  // Strip backgrounds.
  const ImU32 strip_bg = col(0x262626);
  dl->AddRectFilled(ImVec2(x0, y_bytes), ImVec2(x0 + w, y_bytes + bytes_h), strip_bg);
  dl->AddRectFilled(ImVec2(x0, y_der), ImVec2(x0 + w, y_der + derived_h), strip_bg);
  dl->AddRectFilled(ImVec2(x0, y_page), ImVec2(x0 + w, y_page + page_h), strip_bg);
  dl->PushClipRect(ImVec2(x0, y_axis), ImVec2(x0 + w, y_end), true);

  // Ticks, about 90 px (at 1x) apart; lines of one pixel at any scale, as ImGui's borders.
  const double step = nice_step(view.span() * px(90) / w);
  for (double t = std::ceil(view.lo / step) * step; t <= view.hi; t += step) {
    if (t < 0) continue;
    const float tx = snap(static_cast<float>(view.x_of(t, x0, w)));
    dl->AddLine(ImVec2(tx, y_axis + axis_h - px(4)), ImVec2(tx, y_end), col(0x333333));
    dl->AddText(ImVec2(tx + px(2), y_axis), dim, fmt("%llu", static_cast<ull>(t)).c_str());
  }

  // Density: bytes per delta (sqrt scale, so small writes still show) and
  // the share of derived deltas, per pixel column (a bar is at least one
  // pixel high: any bytes at all).
  const int ncols = static_cast<int>(w);
  if (columns_index_ != &ix || columns_lo_ != view.lo || columns_hi_ != view.hi || columns_n_ != ncols) {
    model_.density().query(ix, view.lo, view.hi, ncols, &columns_);
    columns_index_ = &ix;
    columns_lo_ = view.lo;
    columns_hi_ = view.hi;
    columns_n_ = ncols;
  }
  double max_bytes = 0;
  for (const auto& c : columns_) max_bytes = std::max(max_bytes, c.bytes_per_epoch);
  for (int c = 0; c < ncols && c < static_cast<int>(columns_.size()); ++c) {
    const auto& column = columns_[c];
    if (column.epochs == 0) continue;
    const float cx = x0 + c;
    if (max_bytes > 0 && column.bytes_per_epoch > 0) {
      const float bh = std::max(1.f, snap(static_cast<float>(std::sqrt(column.bytes_per_epoch / max_bytes) * bytes_h)));
      dl->AddRectFilled(ImVec2(cx, y_bytes + bytes_h - bh), ImVec2(cx + 1, y_bytes + bytes_h), col(Palette::kDensity));
    }
    if (column.derived_fraction > 0)
      dl->AddRectFilled(ImVec2(cx, y_der), ImVec2(cx + 1, y_der + derived_h),
                        col(Palette::kDerived, static_cast<int>(60 + 195 * column.derived_fraction)));
  }

  // The selected page's deltas per column.
  if (page != kNoPage) {
    const double cw = view.span() / w;
    uint64_t max_count = 0;
    std::vector<uint64_t> counts(static_cast<size_t>(std::max(ncols, 0)));
    for (int c = 0; c < ncols; ++c) {
      const double a = view.lo + c * cw, b = a + cw;
      Epoch e0, e1;  // epochs whose centre is in the column: e0 .. e1-1
      if (cw <= 1) {
        e0 = static_cast<Epoch>(std::max(0.0, std::floor(a + cw / 2 + 0.5)));
        e1 = e0 + 1;
      } else {
        e0 = static_cast<Epoch>(std::max(0.0, std::ceil(a)));
        e1 = static_cast<Epoch>(std::max(0.0, std::ceil(b)));
      }
      if (e1 <= e0 || e1 == 0) continue;
      counts[c] = e0 == 0 ? ix.count_between(page, 0, e1 - 1) : ix.count_between(page, e0 - 1, e1 - 1);
      max_count = std::max(max_count, counts[c]);
    }
    for (int c = 0; c < ncols; ++c) {
      if (!counts[c]) continue;
      const float bh = std::max(px(3), snap(static_cast<float>(counts[c]) / max_count * page_h));
      dl->AddRectFilled(ImVec2(x0 + c, y_page + page_h - bh), ImVec2(x0 + c + 1, y_page + page_h),
                        col(Palette::kCurrent));
    }
  }

  // Snapshots: a triangle at each snapshot's last epoch.
  for (const auto& s : model_.recording()->snapshots()) {
    const double e = static_cast<double>(s.last_epoch);
    if (e < view.lo || e > view.hi) continue;
    const float sx = snap(static_cast<float>(view.x_of(e, x0, w)));
    dl->AddTriangleFilled(ImVec2(sx - px(4), y_snap + snap_h), ImVec2(sx + px(4), y_snap + snap_h), ImVec2(sx, y_snap),
                          s.complete ? col(Palette::kSnapshot) : col(0x707070));
  }

  // Hover: the epoch under the pointer.
  if (hovered && !active) {
    const Epoch he = view.epoch_at(io.MousePos.x, x0, w, first, last);
    dl->AddLine(ImVec2(io.MousePos.x, y_axis), ImVec2(io.MousePos.x, y_end), col(0xffffff, 70));
    if (const auto d = ix.delta(he)) {
      ImGui::SetTooltip("epoch %llu: %s v%llu, %llu byte(s) %s%s", static_cast<ull>(he),
                        model_.page_label(d->page).c_str(), static_cast<ull>(d->version),
                        static_cast<ull>(d->changed_bytes()), format_ranges(d->ranges).c_str(),
                        d->derived() ? fmt(", derived from epoch %llu", static_cast<ull>(d->cause)).c_str() : "");
    } else {
      ImGui::SetTooltip("epoch %llu (the start state)", static_cast<ull>(he));
    }
  }

  // The cursor.
  const double ce = static_cast<double>(model_.cursor());
  if (ce >= view.lo && ce <= view.hi) {
    const float cx = snap(static_cast<float>(view.x_of(ce, x0, w)));
    const float slot = std::max(px(2), static_cast<float>(w / view.span()));
    if (slot > px(4) && slot < w / 4)
      dl->AddRectFilled(ImVec2(cx - slot / 2, y_bytes), ImVec2(cx + slot / 2, y_end), col(Palette::kCursor, 40));
    dl->AddLine(ImVec2(cx, y_axis), ImVec2(cx, y_end), col(Palette::kCursor), px(2));
    const std::string s = fmt("%llu", static_cast<ull>(model_.cursor()));
    const ImVec2 ts = ImGui::CalcTextSize(s.c_str());
    const float lx = std::min(cx + px(3), x0 + w - ts.x - px(4));
    dl->AddRectFilled(ImVec2(lx - px(2), y_axis), ImVec2(lx + ts.x + px(2), y_axis + ts.y), col(Palette::kCursor));
    dl->AddText(ImVec2(lx, y_axis), col(0x000000), s.c_str());
  }
  dl->PopClipRect();
  ImGui::End();
  return h;
}

// ---------------------------------------------------------------- pages

void App::rebuild_page_rows() {
  page_rows_dirty_ = false;
  page_rows_generation_ = model_.cursor_generation();
  page_rows_.clear();
  const auto* rec = model_.recording();
  if (!rec) return;
  std::string needle(filter_buf_);
  for (char& c : needle) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!needle.empty() && needle.back() == ' ') needle.pop_back();
  for (const auto& p : rec->pages())
    if (needle.empty() || lower_contains(p.name, needle) || std::to_string(p.id) == needle ||
        ("#" + std::to_string(p.id)) == needle)
      page_rows_.push_back(p.id);
  if (sort_column_ == 1) {  // by name, then id
    auto name = [&](PageId id) -> const std::string& {
      static const std::string none;
      const auto* m = model_.page_meta(id);
      return m ? m->name : none;
    };
    std::sort(page_rows_.begin(), page_rows_.end(), [&](PageId a, PageId b) {
      const int c = name(a).compare(name(b));
      if (c != 0) return sort_descending_ ? c > 0 : c < 0;
      return a < b;
    });
    return;
  }
  // Numeric columns: a flat (key, id) sort; this runs every frame while the
  // cursor moves and the table is sorted by version, so it stays cheap.
  const Epoch at = model_.cursor();
  const uint32_t existing = model_.index() ? model_.index()->page_count_at(at) : 0;
  std::vector<std::pair<uint64_t, PageId>> keyed;
  keyed.reserve(page_rows_.size());
  for (const PageId id : page_rows_) {
    uint64_t key = id;
    if (sort_column_ == 2) {
      const auto* m = model_.page_meta(id);
      key = m ? m->size : 0;
    } else if (sort_column_ == 3) {
      key = id < existing ? model_.version_at(id, at) + 1 : 0;  // pages not created yet first
    } else if (sort_column_ == 4) {
      key = model_.page_changes(id);
    }
    keyed.push_back({key, id});
  }
  if (sort_descending_)
    std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
  else
    std::sort(keyed.begin(), keyed.end());
  for (size_t i = 0; i < keyed.size(); ++i) page_rows_[i] = keyed[i].second;
}

void App::draw_pages(float x, float y, float w, float h) {
  ImGui::SetNextWindowPos(ImVec2(x, y));
  ImGui::SetNextWindowSize(ImVec2(w, h));
  ImGui::Begin("Pages", nullptr, kPanel);
  note_panel("pages");
  if (!model_.loaded()) {
    ImGui::TextDisabled("No recording open.");
    ImGui::End();
    return;
  }
  ImGui::SetNextItemWidth(-1);
  if (ImGui::InputTextWithHint("##filter", "filter by name or id", filter_buf_, sizeof filter_buf_))
    page_rows_dirty_ = true;
  layout_.buttons["field:filter"] = item_rect();
  const ImGuiTableFlags flags = ImGuiTableFlags_Sortable | ImGuiTableFlags_ScrollY | ImGuiTableFlags_RowBg |
                                ImGuiTableFlags_BordersOuter | ImGuiTableFlags_BordersV | ImGuiTableFlags_Resizable |
                                ImGuiTableFlags_SizingFixedFit;
  if (ImGui::BeginTable("pages", 5, flags)) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("id", ImGuiTableColumnFlags_DefaultSort, 0, 0);
    ImGui::TableSetupColumn("name", ImGuiTableColumnFlags_WidthStretch, 0, 1);
    ImGui::TableSetupColumn("size", ImGuiTableColumnFlags_PreferSortDescending, 0, 2);
    ImGui::TableSetupColumn("ver", ImGuiTableColumnFlags_PreferSortDescending, 0, 3);
    ImGui::TableSetupColumn("changes", ImGuiTableColumnFlags_PreferSortDescending, 0, 4);
    // TableHeadersRow(), spelled out to record each header (a script clicks "sort:ver").
    ImGui::TableNextRow(ImGuiTableRowFlags_Headers);
    for (int c = 0; c < 5; ++c) {
      if (!ImGui::TableSetColumnIndex(c)) continue;
      const char* name = ImGui::TableGetColumnName(c);
      ImGui::PushID(c);
      ImGui::TableHeader(name);
      layout_.buttons[std::string("sort:") + name] = item_rect();
      ImGui::PopID();
    }
    if (ImGuiTableSortSpecs* specs = ImGui::TableGetSortSpecs(); specs && specs->SpecsDirty) {
      if (specs->SpecsCount > 0) {
        sort_column_ = static_cast<int>(specs->Specs[0].ColumnUserID);
        sort_descending_ = specs->Specs[0].SortDirection == ImGuiSortDirection_Descending;
      }
      specs->SpecsDirty = false;
      page_rows_dirty_ = true;
    }
    if (sort_column_ == 3 && page_rows_generation_ != model_.cursor_generation()) page_rows_dirty_ = true;
    if (page_rows_dirty_) rebuild_page_rows();

    const PageId sel = model_.selected_page();
    const float row_h = ImGui::GetTextLineHeight() + ImGui::GetStyle().CellPadding.y * 2;
    if (sel != scrolled_to_page_) {  // selected elsewhere: bring its row into view
      const auto it = std::find(page_rows_.begin(), page_rows_.end(), sel);
      if (it != page_rows_.end()) {
        const float ry = static_cast<float>(it - page_rows_.begin()) * row_h;
        const float view_h = ImGui::GetWindowHeight() - row_h * 2;
        if (ry < ImGui::GetScrollY() || ry > ImGui::GetScrollY() + view_h)
          ImGui::SetScrollY(std::max(0.f, ry - view_h / 2));
      }
      scrolled_to_page_ = sel;
    }
    const Epoch at = model_.cursor();
    ImGuiListClipper clipper;
    clipper.Begin(static_cast<int>(page_rows_.size()), row_h);
    while (clipper.Step()) {
      for (int i = clipper.DisplayStart; i < clipper.DisplayEnd; ++i) {
        const PageId id = page_rows_[static_cast<size_t>(i)];
        const auto* m = model_.page_meta(id);
        const bool exists = model_.page_exists_at(id, at);
        ImGui::TableNextRow(0, row_h);
        ImGui::TableSetColumnIndex(0);
        if (!exists) ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
        ImGui::PushID(static_cast<int>(id));
        if (ImGui::Selectable(fmt("%u", id).c_str(), id == sel,
                              ImGuiSelectableFlags_SpanAllColumns | ImGuiSelectableFlags_AllowItemOverlap)) {
          model_.select_page(id);
          scrolled_to_page_ = id;
        }
        layout_.page_rows.push_back({id, item_rect()});
        ImGui::PopID();
        ImGui::TableSetColumnIndex(1);
        {
          // Escaped (one line, unambiguous) and shortened from the front.
          const std::string name = m ? replay::printable(m->name, '\0') : std::string();
          const std::string shown = fit_end(name, ImGui::GetContentRegionAvail().x);
          ImGui::TextUnformatted(shown.c_str());
          if (shown != name && ImGui::IsItemHovered()) ImGui::SetTooltip("%s", name.c_str());
          layout_.page_names[id] = shown;
        }
        ImGui::TableSetColumnIndex(2);
        ImGui::Text("%llu", static_cast<ull>(m ? m->size : 0));
        ImGui::TableSetColumnIndex(3);
        if (exists) ImGui::Text("%llu", static_cast<ull>(model_.version_at(id, at)));
        else ImGui::TextUnformatted("-");
        ImGui::TableSetColumnIndex(4);
        ImGui::Text("%llu", static_cast<ull>(model_.page_changes(id)));
        if (!exists) ImGui::PopStyleColor();
      }
    }
    ImGui::EndTable();
  }
  ImGui::End();
}

// ---------------------------------------------------------------- recording

void App::draw_recording(float x, float y, float w, float h) {
  ImGui::SetNextWindowPos(ImVec2(x, y));
  ImGui::SetNextWindowSize(ImVec2(w, h));
  ImGui::Begin("Recording", nullptr, kPanel);
  note_panel("recording");
  if (!model_.loaded()) {
    ImGui::TextDisabled("%s", loading() ? "Opening ..." : "No recording open.");
    ImGui::End();
    return;
  }
  const auto& rec = *model_.recording();
  const auto& m = rec.meta();
  const auto& ix = *model_.index();
  ImGui::PushTextWrapPos(0);
  ImGui::TextUnformatted(rec.dir().string().c_str());
  ImGui::PopTextWrapPos();
  ImGui::BeginDisabled(loading());
  if (small_button("Reload")) reload();
  ImGui::EndDisabled();
  // Each value wraps at the panel's edge (a long program name, a narrow window).
  field("program", fmt("%s (pid %u)", m.program.empty() ? "?" : m.program.c_str(), m.pid));
  field("host", m.host.empty() ? "?" : m.host);
  // As when it was opened (Recording::live()): a writer that runs on adds
  // epochs that Reload (F5) shows.
  layout_.live = rec.live();
  field("writer", rec.live() ? "running when opened: Reload (F5) shows newer epochs" : "ended");
  {
    const std::time_t t = static_cast<std::time_t>(m.start_time_ns / 1000000000ull);
    std::tm tm{};
    char buf[64] = "?";
    if (m.start_time_ns && gmtime_r(&t, &tm)) std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
    field("started", buf);
  }
  field("format", fmt("%u.%u", m.format_major, m.format_minor));
  field("epochs", fmt("%llu..%llu, %llu deltas", static_cast<ull>(model_.first_epoch()),
                      static_cast<ull>(model_.last_epoch()), static_cast<ull>(ix.delta_count())));
  field("pages", fmt("%zu", rec.pages().size()));
  size_t closed = 0;
  uint64_t bytes = 0;
  for (const auto& s : rec.segments()) {
    closed += s.closed ? 1 : 0;
    bytes += s.file_bytes;
  }
  field("segments", fmt("%zu (%zu closed), %s", rec.segments().size(), closed, human_bytes(bytes).c_str()));
  size_t complete = 0;
  for (const auto& s : rec.snapshots()) complete += s.complete ? 1 : 0;
  field("snapshots", fmt("%zu (%zu complete)", rec.snapshots().size(), complete));
  field("index", fmt("%s, %zu checkpoints, %.2f s", human_bytes(ix.memory_bytes()).c_str(), ix.checkpoint_count(),
                     model_.load_seconds()));
  if (!model_.damage().ok()) {
    ImGui::PushTextWrapPos(0);
    ImGui::TextColored(colv(0xff7070), "damaged: %s", model_.damage().to_string().c_str());
    ImGui::PopTextWrapPos();
  }
  for (const auto& [k, v] : m.labels) {
    ImGui::Bullet();
    ImGui::PushTextWrapPos(0);
    ImGui::Text("%s = %s", k.c_str(), v.c_str());
    ImGui::PopTextWrapPos();
  }
  ImGui::End();
}

// ---------------------------------------------------------------- views

void App::draw_views(float x, float y, float w, float h) {
  ImGui::SetNextWindowPos(ImVec2(x, y));
  ImGui::SetNextWindowSize(ImVec2(w, h));
  ImGui::Begin("Page", nullptr, kPanel);
  note_panel("page");
  if (!model_.loaded()) {
    ImGui::TextDisabled("No recording open.");
    ImGui::End();
    return;
  }
  if (ImGui::BeginTabBar("views")) {
    struct Tab {
      View view;
      const char* label;
    };
    for (const Tab& t : {Tab{View::kHex, "Hex"}, Tab{View::kDiff, "Diff"}, Tab{View::kDeps, "Propagation"}}) {
      const ImGuiTabItemFlags f = want_tab_ && *want_tab_ == t.view ? ImGuiTabItemFlags_SetSelected : 0;
      const bool open = ImGui::BeginTabItem(t.label, nullptr, f);
      layout_.tabs[view_name(t.view)] = item_rect();
      if (!open) continue;
      if (want_tab_) {
        if (*want_tab_ == t.view) want_tab_.reset();
      } else {
        shown_view_ = t.view;
      }
      switch (t.view) {
        case View::kHex: draw_hex(); break;
        case View::kDiff: draw_diff(); break;
        case View::kDeps: draw_deps(); break;
      }
      ImGui::EndTabItem();
    }
    ImGui::EndTabBar();
  }
  model_.set_view(shown_view_);
  ImGui::End();
}

void App::draw_hex() {
  const PageId page = model_.selected_page();
  if (page == kNoPage) {
    ImGui::TextDisabled("Select a page in the Pages list.");
    return;
  }
  const auto* ix = model_.index();
  const Epoch at = model_.cursor();
  const auto* meta = model_.page_meta(page);
  ImGui::Text("%s  #%u  %llu bytes  v%llu at epoch %llu", model_.page_label(page).c_str(), page,
              static_cast<ull>(meta ? meta->size : 0), static_cast<ull>(model_.version_at(page, at)),
              static_cast<ull>(at));
  const auto d = model_.cursor_delta();
  if (d && d->page == page) {
    ImGui::PushTextWrapPos(0);  // a narrow view wraps the ranges rather than cutting them
    ImGui::TextColored(colv(Palette::kCurrent), "written at this epoch: %s%s", format_ranges(d->ranges, 5).c_str(),
                       d->derived() ? fmt(" (derived from epoch %llu)", static_cast<ull>(d->cause)).c_str() : "");
    ImGui::PopTextWrapPos();
  } else if (const auto last = ix->prev_change(page, at + 1)) {
    ImGui::TextDisabled("not written at epoch %llu; last written at epoch %llu", static_cast<ull>(at),
                        static_cast<ull>(*last));
  } else {
    ImGui::TextDisabled("not written up to epoch %llu", static_cast<ull>(at));
  }

  // Navigation: the page's previous/next delta, and the selected byte's.
  const auto prev = model_.prev_page_change(), next = model_.next_page_change();
  ImGui::BeginDisabled(!prev);
  if (button("< page change")) go_to(*prev);
  ImGui::EndDisabled();
  ImGui::SameLine();
  ImGui::BeginDisabled(!next);
  if (button("page change >")) go_to(*next);
  ImGui::EndDisabled();
  // The byte's buttons (or the hint) on this line if they fit, else below.
  const ImGuiStyle& style = ImGui::GetStyle();
  const auto sb = model_.selected_byte();
  const float byte_w = sb ? button_width("< byte write") + button_width("byte write >") +
                                ImGui::CalcTextSize("byte 0000000 (0x000000)").x + 2 * style.ItemSpacing.x
                          : ImGui::CalcTextSize("click a byte to follow its writes").x;
  ImGui::SameLine(0, px(16));
  if (ImGui::GetContentRegionAvail().x < byte_w) ImGui::NewLine();
  if (sb) {
    if (button("< byte write")) {
      const WriteSearch w = model_.prev_byte_write(page, *sb, at);
      if (w.epoch) go_to(*w.epoch);
      else if (w.stopped)
        set_notice(fmt("no write of byte %llu in the page's previous %llu changes; step back and search again",
                       static_cast<ull>(*sb), static_cast<ull>(kButtonScan)));
      else set_notice(fmt("no earlier write of byte %llu", static_cast<ull>(*sb)));
    }
    ImGui::SameLine();
    if (button("byte write >")) {
      const WriteSearch w = model_.next_byte_write(page, *sb, at);
      if (w.epoch) go_to(*w.epoch);
      else if (w.stopped)
        set_notice(fmt("no write of byte %llu in the page's next %llu changes; step on and search again",
                       static_cast<ull>(*sb), static_cast<ull>(kButtonScan)));
      else set_notice(fmt("no later write of byte %llu", static_cast<ull>(*sb)));
    }
    ImGui::SameLine();
    ImGui::Text("byte %llu (0x%llx)", static_cast<ull>(*sb), static_cast<ull>(*sb));  // the grid's offsets are hex
  } else {
    ImGui::TextDisabled("click a byte to follow its writes");
  }
  note_fit("hex:byte", ImGui::GetItemRectMax().x, content_right());
  legend_box(ui_scale_, Palette::kCurrent, "changed here");
  ImGui::SameLine(0, px(12));
  legend_box(ui_scale_, Palette::kCurrent, "rewritten, same value", /*outline=*/true);
  const char* fading = "earlier writes, fading over the last";
  const float fading_w = ImGui::CalcTextSize(fading).x + ImGui::GetTextLineHeight() * 2 + px(150);
  ImGui::SameLine(0, px(12));
  if (ImGui::GetContentRegionAvail().x < fading_w) ImGui::NewLine();  // a narrow window: on a line of its own
  legend_box(ui_scale_, Palette::recent(1, model_.fade()), fading);
  ImGui::SameLine();
  if (ImGui::GetContentRegionAvail().x < px(70) + style.ItemInnerSpacing.x + ImGui::CalcTextSize("writes").x)
    ImGui::NewLine();  // narrower still: the slider below
  ImGui::SetNextItemWidth(px(70));
  int fade = model_.fade();
  if (ImGui::SliderInt("writes##fade", &fade, 1, Model::kMaxFade)) model_.set_fade(fade);
  note_fit("hex:legend", ImGui::GetItemRectMax().x, content_right());
  ImGui::Separator();
  // A page larger than the model's window is shown a window at a time (the
  // scroll position is relative to the window's start). When the cursor
  // moves, the view brings a byte into sight (moving the window if it must,
  // and scrolling below): the selected byte, which anchors the view while
  // its writes are followed, or else the first byte the cursor's delta wrote;
  // a page just shown whose last write came earlier opens at that write.
  std::optional<uint64_t> focus;
  if (hex_scrolled_ != std::make_pair(page, at)) {
    if (sb) focus = *sb;
    else if (d && d->page == page && !d->ranges.empty()) focus = d->ranges.front().offset;
    else if (hex_scrolled_.first != page)
      if (const auto last = ix->prev_change(page, at + 1))
        if (const auto w = ix->delta(*last); w && !w->ranges.empty()) focus = w->ranges.front().offset;
  }
  if (focus) model_.show_bytes(*focus, *focus + 1);
  if (meta && meta->size > model_.window_bytes() && model_.page_error().empty()) draw_hex_window(meta->size);
  if (!model_.page_error().empty()) {
    ImGui::PushTextWrapPos(0);
    ImGui::TextColored(colv(0xffcc66), "%s", model_.page_error().c_str());
    ImGui::PopTextWrapPos();
    return;
  }
  // Only now: a button above may have moved the cursor or the window, which drops the cached page.
  const auto bytes = model_.page_bytes();
  const auto ages = model_.highlight();
  const uint64_t base = model_.window_offset();
  // 16 bytes a row where they fit beside a vertical scrollbar, else 8.
  const float cw = ImGui::CalcTextSize("0").x;
  const float room = ImGui::GetContentRegionAvail().x - ImGui::GetStyle().ScrollbarSize;
  hex_per_row_ = hex_grid_chars(kHexPerRow) * cw <= room ? kHexPerRow : kHexPerRow / 2;
  ImGui::BeginChild("hexgrid", ImVec2(0, 0), false, ImGuiWindowFlags_HorizontalScrollbar);
  // Bring the focus byte into view when the cursor moved, or the byte a
  // window move asked for.
  std::optional<uint64_t> show = focus;
  if (hex_goto_) show = std::exchange(hex_goto_, std::nullopt);
  if (show && *show >= base && *show - base < bytes.size()) {
    const float row_h = std::floor(ImGui::GetTextLineHeight() + px(4));  // as draw_hex_grid's
    const float ry = static_cast<float>((*show - base) / hex_per_row_) * row_h;
    const float view_h = ImGui::GetWindowHeight();
    if (ry < ImGui::GetScrollY() || ry + row_h > ImGui::GetScrollY() + view_h)
      ImGui::SetScrollY(std::max(0.f, ry - 2 * row_h));
  }
  hex_scrolled_ = {page, at};
  draw_hex_grid(base, bytes, ages);
  ImGui::EndChild();
}

// The window of a large page the hex view shows, and ways to move it: the
// part before or after, or an offset typed in (decimal or 0x hex).
void App::draw_hex_window(uint64_t size) {
  const uint64_t base = model_.window_offset(), len = model_.page_bytes().size();
  // The same notation as the grid's offsets: hex, the end exclusive.
  const std::string shown = fmt("bytes 0x%llx..0x%llx of 0x%llx", static_cast<ull>(base), static_cast<ull>(base + len),
                                static_cast<ull>(size));
  const ImGuiStyle& style = ImGui::GetStyle();
  const char* hint = "go to 0x.. or decimal";
  const float field_w = ImGui::CalcTextSize(hint).x + 2 * style.FramePadding.x;
  ImGui::AlignTextToFramePadding();
  ImGui::TextUnformatted(shown.c_str());
  // Then the buttons and the field, each on this line while it fits.
  auto next_to = [&](float w) {
    ImGui::SameLine();
    if (ImGui::GetContentRegionAvail().x < w) ImGui::NewLine();
  };
  next_to(button_width("< earlier"));
  ImGui::BeginDisabled(base == 0);
  if (button("< earlier")) {  // the new window ends a quarter into this one
    const uint64_t to = base > len / 2 ? base - len / 2 : 0;
    model_.show_bytes(to, to + 1);
    // Scrolled so that the bytes just before the old window are at the bottom.
    hex_goto_ = base > hex_visible_bytes_ ? base - hex_visible_bytes_ : 0;
  }
  ImGui::EndDisabled();
  next_to(button_width("later >"));
  ImGui::BeginDisabled(base + len >= size);
  if (button("later >")) {  // ... starts a quarter before this one's end
    model_.show_bytes(base + len, base + len + 1);
    hex_goto_ = base + len;
  }
  ImGui::EndDisabled();
  next_to(field_w);
  ImGui::SetNextItemWidth(field_w);
  if (ImGui::InputTextWithHint("##goto", hint, goto_buf_, sizeof goto_buf_,
                               ImGuiInputTextFlags_EnterReturnsTrue | ImGuiInputTextFlags_AutoSelectAll)) {
    const std::optional<uint64_t> off = replay::parse_offset(goto_buf_);
    if (!off || *off >= size) {
      set_notice(fmt("'%s' is not an offset in this page: 0x0 to 0x%llx (0 to %llu in decimal); write hex with 0x",
                     goto_buf_, static_cast<ull>(size - 1), static_cast<ull>(size - 1)));
    } else {
      model_.show_bytes(*off, *off + 1);
      model_.select_byte(*off);
      hex_goto_ = *off;
    }
  }
  layout_.buttons["field:goto"] = item_rect();
  note_fit("hex:window", ImGui::GetItemRectMax().x, content_right());
}

// bytes[i] and ages[i] are page byte base + i's.
void App::draw_hex_grid(uint64_t base, std::span<const std::byte> bytes, std::span<const int16_t> ages) {
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImGuiIO& io = ImGui::GetIO();
  ImGui::PushStyleVar(ImGuiStyleVar_ItemSpacing, ImVec2(ImGui::GetStyle().ItemSpacing.x, 0));
  const float cw = ImGui::CalcTextSize("0").x;
  const float row_h = std::floor(ImGui::GetTextLineHeight() + px(4));
  const float text_dy = px(2);  // the glyphs' offset in a row
  const int per_row = hex_per_row_;
  const float hex_x = 10 * cw, cell_w = 3 * cw, gap8 = cw;
  const float ascii_x = hex_x + per_row * cell_w + gap8 + cw;
  const float total_w = hex_grid_chars(per_row) * cw;
  const uint64_t n = bytes.size();
  const uint64_t rows = (n + per_row - 1) / per_row;
  const PageId page = model_.selected_page();
  const auto sel = model_.selected_byte();
  const int fade = model_.fade();
  const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text), dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  const bool window_hovered = ImGui::IsWindowHovered();
  std::optional<uint64_t> hovered;
  Rect hovered_rect;

  ImGuiListClipper clipper;
  hex_visible_bytes_ = static_cast<uint64_t>(std::max(1.f, ImGui::GetWindowHeight() / row_h)) * per_row;
  clipper.Begin(static_cast<int>(std::min<uint64_t>(rows, INT32_MAX)), row_h);
  while (clipper.Step()) {
    for (int row = clipper.DisplayStart; row < clipper.DisplayEnd; ++row) {
      ImVec2 p = ImGui::GetCursorScreenPos();
      p.x = snap(p.x);
      p.y = snap(p.y);
      const uint64_t first = static_cast<uint64_t>(row) * per_row;  // in the window
      dl->AddText(ImVec2(p.x, p.y + text_dy), dim, fmt("%08llx", static_cast<ull>(base + first)).c_str());
      for (int i = 0; i < per_row; ++i) {
        const uint64_t k = first + i;  // in the window
        if (k >= n) break;
        const uint64_t off = base + k;  // in the page
        const float hx = p.x + hex_x + i * cell_w + (i >= per_row / 2 ? gap8 : 0);
        const Rect hr{snap(hx - cw / 2), p.y, snap(hx + 2.5f * cw), p.y + row_h};
        const Rect ar{snap(p.x + ascii_x + i * cw), p.y, snap(p.x + ascii_x + (i + 1) * cw), p.y + row_h};
        const int age = k < ages.size() ? ages[k] : kAgeNone;
        const bool current = age == kAgeCurrent;
        if (age == kAgeUnchanged) {  // written with the value it had: an outline, not a fill
          const float in = px(1);
          dl->AddRect(ImVec2(hr.x0 + in, hr.y0 + in), ImVec2(hr.x1 - in, hr.y1 - in), col(Palette::kCurrent), 0, 0, px(2));
          dl->AddRectFilled(ImVec2(ar.x0, ar.y1 - px(3)), ImVec2(ar.x1, ar.y1 - in), col(Palette::kCurrent));  // underline
        } else if (age != kAgeNone) {
          const ImU32 fill = current ? col(Palette::kCurrent) : col(Palette::recent(age, fade));
          dl->AddRectFilled(ImVec2(hr.x0, hr.y0), ImVec2(hr.x1, hr.y1), fill);
          dl->AddRectFilled(ImVec2(ar.x0, ar.y0), ImVec2(ar.x1, ar.y1), fill);
        }
        const int v = std::to_integer<int>(bytes[k]);
        const char hex[3] = {"0123456789abcdef"[v >> 4], "0123456789abcdef"[v & 15], 0};
        const ImU32 tc = current ? col(0x000000) : text;
        dl->AddText(ImVec2(snap(hx), p.y + text_dy), tc, hex);
        const char ch[2] = {printable(bytes[k]), 0};
        // '.' (not printable) is dimmed only on the plain background: grey on blue would vanish.
        dl->AddText(ImVec2(ar.x0, p.y + text_dy), current ? tc : (ch[0] == '.' && (age == kAgeNone || age == kAgeUnchanged) ? dim : text), ch);
        if (sel && *sel == off) {  // yellow, lined inside with black: visible on the orange fill too
          for (const Rect& r : {hr, ar}) {
            dl->AddRect(ImVec2(r.x0, r.y0), ImVec2(r.x1, r.y1), col(Palette::kCursor), 0, 0, px(2));
            dl->AddRect(ImVec2(r.x0 + px(2), r.y0 + px(2)), ImVec2(r.x1 - px(2), r.y1 - px(2)), col(0x000000), 0, 0, px(1));
          }
        }
        layout_.hex_cells.push_back({off, hr});
        layout_.ascii_cells.push_back({off, ar});
        if (window_hovered && (contains(hr, io.MousePos) || contains(ar, io.MousePos))) {
          hovered = off;
          hovered_rect = hr;
        }
      }
      ImGui::Dummy(ImVec2(total_w, row_h));
    }
  }
  ImGui::PopStyleVar();
  note_fit("hex:grid", ImGui::GetItemRectMin().x + total_w, content_right());

  if (hovered) {
    const uint64_t off = *hovered;
    const Epoch at = model_.cursor();
    dl->AddRect(ImVec2(hovered_rect.x0, hovered_rect.y0), ImVec2(hovered_rect.x1, hovered_rect.y1), col(0xffffff));
    ImGui::BeginTooltip();
    const uint64_t i = off - base;  // in the window
    ImGui::Text("byte %llu (0x%llx) = 0x%02x at epoch %llu", static_cast<ull>(off), static_cast<ull>(off),
                std::to_integer<int>(bytes[i]), static_cast<ull>(at));
    const int age = i < ages.size() ? ages[i] : kAgeNone;
    if (const auto before = model_.page_bytes_before(); i < before.size() && (age == kAgeCurrent || age == kAgeUnchanged))
      ImGui::TextColored(colv(Palette::kCurrent), age == kAgeCurrent ? "changed at this epoch: was 0x%02x"
                                                                     : "written at this epoch with the value it had (0x%02x)",
                         std::to_integer<int>(before[i]));
    // Both searches are bounded; the history is kept until the byte or the cursor changes.
    const ByteHistory& hist = model_.byte_history(page, off, at, 10);
    if (!hist.writes.empty()) {
      ImGui::TextUnformatted("written at (newest first):");
      for (const auto& wr : hist.writes)
        ImGui::Text("  epoch %-10llu v%-6llu = 0x%02x", static_cast<ull>(wr.epoch), static_cast<ull>(wr.version),
                    std::to_integer<int>(wr.value));
      if (hist.writes.size() == 10) ImGui::TextDisabled("  ...");
    }
    if (hist.stopped)
      ImGui::TextDisabled("%s in the page's last %llu changes (back to epoch %llu); \"< byte write\" looks further",
                          hist.writes.empty() ? "not written" : "no earlier write", static_cast<ull>(hist.looked),
                          static_cast<ull>(hist.looked_back_to));
    else if (hist.writes.empty())
      ImGui::TextDisabled("never written up to this epoch (still its start value)");
    const WriteSearch& nx = hist.next;
    if (nx.epoch) ImGui::Text("next write: epoch %llu", static_cast<ull>(*nx.epoch));
    else if (nx.stopped) ImGui::TextDisabled("no later write in the page's next %llu changes", static_cast<ull>(kHoverScan));
    else ImGui::TextDisabled("no later write");
    ImGui::TextDisabled("click: select this byte for the byte-write buttons");
    ImGui::EndTooltip();
    if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) model_.select_byte(off);
  }
}

void App::draw_diff() {
  uint64_t a = model_.diff_a(), b = model_.diff_b();
  ImGui::AlignTextToFramePadding();
  ImGui::TextUnformatted("A");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(px(100));
  if (ImGui::InputScalar("##diffa", ImGuiDataType_U64, &a, nullptr, nullptr, nullptr,
                         ImGuiInputTextFlags_EnterReturnsTrue))
    model_.set_diff(a, model_.diff_b());
  ImGui::SameLine();
  if (button("A = cursor")) model_.set_diff(model_.cursor(), model_.diff_b());
  ImGui::SameLine(0, px(16));
  ImGui::TextUnformatted("B");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(px(100));
  if (ImGui::InputScalar("##diffb", ImGuiDataType_U64, &b, nullptr, nullptr, nullptr,
                         ImGuiInputTextFlags_EnterReturnsTrue))
    model_.set_diff(model_.diff_a(), b);
  ImGui::SameLine();
  if (button("B = cursor")) model_.set_diff(model_.diff_a(), model_.cursor());
  ImGui::SameLine();
  if (button("Swap")) model_.set_diff(model_.diff_b(), model_.diff_a());

  const auto& diffs = model_.diff();
  if (model_.diff_pending()) {  // in the background; the answer shows in a later frame
    ImGui::TextDisabled("computing the diff of epochs %llu..%llu ...", static_cast<ull>(model_.diff_a()),
                        static_cast<ull>(model_.diff_b()));
    return;
  }
  if (!model_.diff_error().empty()) {
    ImGui::TextColored(colv(0xffcc66), "%s", model_.diff_error().c_str());
    return;
  }
  const uint64_t total = model_.diff_bytes();
  ImGui::Text("%zu page(s) differ between epoch %llu and epoch %llu, %llu byte(s) in all", diffs.size(),
              static_cast<ull>(model_.diff_a()), static_cast<ull>(model_.diff_b()), static_cast<ull>(total));

  const float row_h = ImGui::GetTextLineHeight() + ImGui::GetStyle().CellPadding.y * 2;
  const float table_h = row_h * (std::min<float>(static_cast<float>(diffs.size()), 6.f) + 1) + px(4);
  const PageId sel = model_.selected_page();
  if (!diffs.empty() &&
      ImGui::BeginTable("diffpages", 5,
                        ImGuiTableFlags_ScrollY | ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersV |
                            ImGuiTableFlags_BordersOuter | ImGuiTableFlags_SizingFixedFit,
                        ImVec2(0, table_h))) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("id");
    ImGui::TableSetupColumn("page", ImGuiTableColumnFlags_WidthStretch);
    ImGui::TableSetupColumn("versions");
    ImGui::TableSetupColumn("ranges");
    ImGui::TableSetupColumn("bytes");
    ImGui::TableHeadersRow();
    ImGuiListClipper clipper;
    clipper.Begin(static_cast<int>(diffs.size()), row_h);
    while (clipper.Step()) {
      for (int i = clipper.DisplayStart; i < clipper.DisplayEnd; ++i) {
        const auto& pd = diffs[static_cast<size_t>(i)];
        uint64_t n = 0;
        for (const auto& r : pd.ranges) n += r.length;
        ImGui::TableNextRow(0, row_h);
        ImGui::TableSetColumnIndex(0);
        ImGui::PushID(static_cast<int>(pd.page));
        if (ImGui::Selectable(fmt("%u", pd.page).c_str(), pd.page == sel,
                              ImGuiSelectableFlags_SpanAllColumns | ImGuiSelectableFlags_AllowItemOverlap))
          model_.select_page(pd.page);
        layout_.diff_rows.push_back({pd.page, item_rect()});
        ImGui::PopID();
        ImGui::TableSetColumnIndex(1);
        const auto* m = model_.page_meta(pd.page);
        ImGui::TextUnformatted(m ? replay::printable(m->name, '\0').c_str() : "");
        ImGui::TableSetColumnIndex(2);
        if (pd.created) ImGui::Text("new -> v%llu", static_cast<ull>(pd.new_version));
        else ImGui::Text("v%llu -> v%llu", static_cast<ull>(pd.old_version), static_cast<ull>(pd.new_version));
        ImGui::TableSetColumnIndex(3);
        ImGui::Text("%zu", pd.ranges.size());
        ImGui::TableSetColumnIndex(4);
        ImGui::Text("%llu", static_cast<ull>(n));
      }
    }
    ImGui::EndTable();
  }
  ImGui::Separator();
  if (sel == kNoPage) {
    ImGui::TextDisabled("Select a page to compare its bytes.");
    return;
  }
  const replay::PageDiff* pd = model_.selected_diff();
  if (!pd) {
    ImGui::Text("%s is the same at epochs %llu and %llu.", model_.page_label(sel).c_str(),
                static_cast<ull>(model_.diff_a()), static_cast<ull>(model_.diff_b()));
    return;
  }
  uint64_t n = 0;
  for (const auto& r : pd->ranges) n += r.length;
  ImGui::PushTextWrapPos(0);
  ImGui::Text("%s: %s -> v%llu, %llu byte(s) differ in %zu range(s)", model_.page_label(sel).c_str(),
              pd->created ? "not yet created" : fmt("v%llu", static_cast<ull>(pd->old_version)).c_str(),
              static_cast<ull>(pd->new_version), static_cast<ull>(n), pd->ranges.size());
  ImGui::PopTextWrapPos();
  {
    // Beside the summary where it fits, else on a line of its own.
    const char* label = "only rows that differ";
    const ImGuiStyle& st = ImGui::GetStyle();
    const float box_w = ImGui::GetFrameHeight() + st.ItemInnerSpacing.x + ImGui::CalcTextSize(label).x;
    const float right = content_right();
    if (ImGui::GetItemRectMax().x + px(16) + box_w <= right) ImGui::SameLine(0, px(16));
    ImGui::Checkbox(label, &diff_only_rows_);
    layout_.buttons[label] = item_rect();
    note_fit(std::string("diff:") + label, ImGui::GetItemRectMax().x, right);
  }
  draw_diff_grid();
}

void App::draw_diff_grid() {
  const PageId page = model_.selected_page();
  const auto* ix = model_.index();
  const Epoch a = model_.diff_a(), b = model_.diff_b();
  if (sides_.page != page || sides_.a != a || sides_.b != b || sides_.index != ix || sides_.only_diff != diff_only_rows_) {
    sides_ = DiffSides{};
    sides_.page = page;
    sides_.a = a;
    sides_.b = b;
    sides_.index = ix;
    sides_.only_diff = diff_only_rows_;
    sides_.old_exists = model_.page_exists_at(page, a);
    sides_.new_exists = model_.page_exists_at(page, b);
    // Both sides are built whole: a page past the hex view's limit is refused
    // here too (the table above still lists its differing bytes).
    if (const auto* meta = model_.page_meta(page); meta && meta->size > model_.view_limit()) {
      sides_.error = "page " + model_.page_label(page) + " has " + std::to_string(meta->size) +
                     " bytes, more than the side-by-side view shows (" + std::to_string(model_.view_limit()) +
                     "); 'mmsb-replay diff " + model_.dir().string() + " " + std::to_string(a) + " " +
                     std::to_string(b) + " --page " + std::to_string(page) + "' prints its differing bytes";
      sides_.old_exists = sides_.new_exists = false;
    }
    if (sides_.old_exists) {
      const Status s = ix->page_at(page, a, &sides_.old_bytes);
      if (!s.ok()) sides_.error = s.to_string();
    }
    if (sides_.new_exists) {
      const Status s = ix->page_at(page, b, &sides_.new_bytes);
      if (!s.ok()) sides_.error = s.to_string();
    }
    const uint64_t size = std::max(sides_.old_bytes.size(), sides_.new_bytes.size());
    sides_.mask.assign(size, 0);
    if (const auto* pd = model_.selected_diff())
      for (const auto& r : pd->ranges)
        for (uint64_t i = r.offset; i < r.end() && i < size; ++i) sides_.mask[i] = 1;
    const uint64_t rows = (size + kDiffPerRow - 1) / kDiffPerRow;
    for (uint64_t r = 0; r < rows; ++r) {
      bool any = !diff_only_rows_;
      for (uint64_t i = r * kDiffPerRow; !any && i < std::min<uint64_t>(size, (r + 1) * kDiffPerRow); ++i)
        any = sides_.mask[i] != 0;
      if (any) sides_.rows.push_back(r);
    }
  }
  if (!sides_.error.empty()) {
    ImGui::PushTextWrapPos(0);
    ImGui::TextColored(colv(0xffcc66), "%s", sides_.error.c_str());
    ImGui::PopTextWrapPos();
    return;
  }
  const float cw = ImGui::CalcTextSize("0").x;
  const float row_h = std::floor(ImGui::GetTextLineHeight() + px(4));  // as the hex grid's
  const float text_dy = px(2);
  const float cell_w = 3 * cw;
  const float old_x = 8 * cw, old_ascii = old_x + kDiffPerRow * cell_w + cw;
  const float new_x = old_ascii + kDiffPerRow * cw + 3 * cw, new_ascii = new_x + kDiffPerRow * cell_w + cw;
  const float total_w = diff_grid_chars() * cw;
  {
    const ImVec2 p = ImGui::GetCursorScreenPos();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddText(ImVec2(p.x + old_x, p.y), col(Palette::kDiffOld),
                fmt("A: epoch %llu%s", static_cast<ull>(a), sides_.old_exists ? "" : " (no page)").c_str());
    dl->AddText(ImVec2(p.x + new_x, p.y), col(Palette::kDiffNew),
                fmt("B: epoch %llu%s", static_cast<ull>(b), sides_.new_exists ? "" : " (no page)").c_str());
    ImGui::Dummy(ImVec2(total_w, ImGui::GetTextLineHeightWithSpacing()));
  }
  ImGui::BeginChild("diffgrid", ImVec2(0, 0), false, ImGuiWindowFlags_HorizontalScrollbar);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  ImGui::PushStyleVar(ImGuiStyleVar_ItemSpacing, ImVec2(ImGui::GetStyle().ItemSpacing.x, 0));
  const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text), dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  ImGuiListClipper clipper;
  clipper.Begin(static_cast<int>(std::min<size_t>(sides_.rows.size(), INT32_MAX)), row_h);
  while (clipper.Step()) {
    for (int ri = clipper.DisplayStart; ri < clipper.DisplayEnd; ++ri) {
      const uint64_t row = sides_.rows[static_cast<size_t>(ri)];
      ImVec2 p = ImGui::GetCursorScreenPos();
      p.x = snap(p.x);
      p.y = snap(p.y);
      if (ri > 0 && sides_.rows[static_cast<size_t>(ri) - 1] + 1 != row)  // rows left out above
        dl->AddLine(ImVec2(p.x, p.y), ImVec2(p.x + total_w, p.y), col(0x444444));
      dl->AddText(ImVec2(p.x, p.y + text_dy), dim, fmt("%06llx", static_cast<ull>(row * kDiffPerRow)).c_str());
      for (int side = 0; side < 2; ++side) {
        const auto& bytes = side == 0 ? sides_.old_bytes : sides_.new_bytes;
        const float hx0 = p.x + (side == 0 ? old_x : new_x), ax0 = p.x + (side == 0 ? old_ascii : new_ascii);
        const uint32_t mark = side == 0 ? Palette::kDiffOld : Palette::kDiffNew;
        for (int i = 0; i < kDiffPerRow; ++i) {
          const uint64_t off = row * kDiffPerRow + i;
          if (off >= sides_.mask.size()) break;
          const float hx = hx0 + i * cell_w;
          const Rect hr{snap(hx - cw / 2), p.y, snap(hx + 2.5f * cw), p.y + row_h};
          const Rect ar{snap(ax0 + i * cw), p.y, snap(ax0 + (i + 1) * cw), p.y + row_h};
          if (off >= bytes.size()) {
            dl->AddText(ImVec2(snap(hx), p.y + text_dy), dim, "--");
            continue;
          }
          const bool differs = sides_.mask[off] != 0;
          if (differs) {
            dl->AddRectFilled(ImVec2(hr.x0, hr.y0), ImVec2(hr.x1, hr.y1), col(mark));
            dl->AddRectFilled(ImVec2(ar.x0, ar.y0), ImVec2(ar.x1, ar.y1), col(mark));
          }
          const int v = std::to_integer<int>(bytes[off]);
          const char hex[3] = {"0123456789abcdef"[v >> 4], "0123456789abcdef"[v & 15], 0};
          dl->AddText(ImVec2(snap(hx), p.y + text_dy), text, hex);
          const char ch[2] = {printable(bytes[off]), 0};
          dl->AddText(ImVec2(ar.x0, p.y + text_dy), ch[0] == '.' && !differs ? dim : text, ch);
          (side == 0 ? layout_.diff_old_cells : layout_.diff_new_cells).push_back({off, hr});
        }
      }
      ImGui::Dummy(ImVec2(total_w, row_h));
    }
  }
  ImGui::PopStyleVar();
  note_fit("diff:grid", ImGui::GetItemRectMin().x + total_w, content_right());
  ImGui::EndChild();
}

void App::draw_deps() {
  const Propagation& prop = model_.propagation();
  const auto* ix = model_.index();
  if (prop.epoch == 0) {
    ImGui::TextDisabled("No delta at epoch %llu (the start state): move the cursor onto a delta.",
                        static_cast<ull>(model_.cursor()));
    return;
  }
  const auto d = ix->delta(prop.epoch);
  if (!d) return;
  ImGui::Text("delta at epoch %llu: %s v%llu, %llu byte(s) %s", static_cast<ull>(d->epoch),
              model_.page_label(d->page).c_str(), static_cast<ull>(d->version),
              static_cast<ull>(d->changed_bytes()), format_ranges(d->ranges).c_str());
  if (d->derived())
    ImGui::Text("derived: written by an update function, caused by epoch %llu", static_cast<ull>(d->cause));
  else
    ImGui::TextUnformatted("written by the application: a root cause");

  ImGui::Spacing();
  ImGui::TextUnformatted("Cause chain, root first:");
  for (size_t i = 0; i < prop.chain.size(); ++i) {
    const Epoch e = prop.chain[i];
    const auto cd = ix->delta(e);
    const std::string label =
        fmt("epoch %llu %s##chain%zu", static_cast<ull>(e), cd ? model_.page_label(cd->page).c_str() : "?", i);
    const float bw = button_width(visible_label(label.c_str()).c_str());
    if (i > 0) {
      ImGui::SameLine();
      if (ImGui::GetContentRegionAvail().x < bw + px(30)) ImGui::NewLine();
      else {
        ImGui::TextDisabled("->");
        ImGui::SameLine();
      }
    }
    const bool here = e == model_.cursor();
    if (here) ImGui::PushStyleColor(ImGuiCol_Button, colv(Palette::kCursor, 0.45f));
    if (small_button(label.c_str())) go_to(e, true);
    if (here) ImGui::PopStyleColor();
  }
  ImGui::Spacing();
  bool from_root = model_.deps_from_root();
  if (ImGui::Checkbox("show the whole propagation from the root cause", &from_root)) model_.set_deps_from_root(from_root);
  const Epoch top = prop.tree.epoch;
  ImGui::Text("epoch %llu caused %llu delta(s)%s:", static_cast<ull>(top),
              static_cast<ull>(prop.tree_nodes ? prop.tree_nodes - 1 : 0),
              top == prop.epoch ? "" : fmt("; epoch %llu is highlighted", static_cast<ull>(prop.epoch)).c_str());
  ImGui::BeginChild("tree", ImVec2(0, 0), true);
  uint64_t budget = kTreeBudget;
  draw_cause_tree(prop.tree, &budget);
  if (prop.tree_nodes > kTreeBudget)
    ImGui::TextDisabled("... and %llu more", static_cast<ull>(prop.tree_nodes - kTreeBudget));
  ImGui::EndChild();
}

void App::draw_cause_tree(const replay::CauseTree& t, uint64_t* budget) {
  if (*budget == 0) return;
  --*budget;
  const auto d = model_.index()->delta(t.epoch);
  const bool leaf = t.children.empty();
  ImGuiTreeNodeFlags flags = ImGuiTreeNodeFlags_OpenOnArrow | ImGuiTreeNodeFlags_DefaultOpen |
                             ImGuiTreeNodeFlags_SpanAvailWidth;
  if (leaf) flags |= ImGuiTreeNodeFlags_Leaf | ImGuiTreeNodeFlags_NoTreePushOnOpen;
  if (t.epoch == model_.cursor()) flags |= ImGuiTreeNodeFlags_Selected;
  const std::string label =
      d ? fmt("epoch %llu  %s  v%llu  %s", static_cast<ull>(t.epoch), model_.page_label(t.page).c_str(),
              static_cast<ull>(d->version), format_ranges(d->ranges, 2).c_str())
        : fmt("epoch %llu  %s", static_cast<ull>(t.epoch), model_.page_label(t.page).c_str());
  ImGui::PushID(static_cast<int>(t.epoch ^ (t.epoch >> 32)));
  const bool open = ImGui::TreeNodeEx("node", flags, "%s", label.c_str());
  layout_.deps_nodes.push_back({t.epoch, item_rect()});
  if (ImGui::IsItemClicked() && !ImGui::IsItemToggledOpen()) go_to(t.epoch, true);
  if (open && !leaf) {
    for (const auto& c : t.children) draw_cause_tree(c, budget);
    ImGui::TreePop();
  }
  ImGui::PopID();
}

// ---------------------------------------------------------------- deltas

void App::draw_deltas(float x, float y, float w, float h) {
  ImGui::SetNextWindowPos(ImVec2(x, y));
  ImGui::SetNextWindowSize(ImVec2(w, h));
  ImGui::Begin("Deltas", nullptr, kPanel);
  note_panel("deltas");
  if (!model_.loaded()) {
    ImGui::TextDisabled("No recording open.");
    ImGui::End();
    return;
  }
  const auto& ix = *model_.index();
  const Epoch at = model_.cursor();
  const PageId page = model_.selected_page();
  ImGui::Checkbox("only the selected page", &deltas_page_only_);
  if (ix.delta_count() == 0) {
    ImGui::TextDisabled("The recording holds no deltas.");
    ImGui::End();
    return;
  }
  // The rows: a window of epochs around the cursor.
  std::span<const Epoch> page_epochs;
  uint64_t begin = 0, count = 0;
  uint64_t anchor_row = 0;  // the cursor's row, or the first row after it (no delta at the cursor)
  const bool page_only = deltas_page_only_ && page != kNoPage;
  if (page_only) {
    page_epochs = ix.page_epochs(page);
    const uint64_t c = static_cast<uint64_t>(std::lower_bound(page_epochs.begin(), page_epochs.end(), at) - page_epochs.begin());
    begin = c > kDeltaWindow ? c - kDeltaWindow : 0;
    count = std::min<uint64_t>(page_epochs.size(), c + kDeltaWindow) - begin;
    anchor_row = c - begin;
  } else {
    const Epoch lo = std::max(ix.first_epoch(), at > kDeltaWindow ? at - kDeltaWindow : 0);
    const Epoch hi = std::min(ix.last_epoch(), at + kDeltaWindow);
    begin = lo;
    count = hi >= lo ? hi - lo + 1 : 0;
    anchor_row = at < lo ? 0 : std::min(at - lo, count ? count - 1 : 0);  // the start state: the top
  }
  auto epoch_of = [&](uint64_t i) { return page_only ? page_epochs[begin + i] : begin + i; };

  // Room for "written": the panel is narrow (a quarter of the window), so
  // cells are padded less, and the page names are shortened (keeping their
  // end) so that the widest "N ranges, M B" of the last frame fits -- down
  // to 10 characters, which tell pages apart; past that (the long offsets
  // of a big page) "written" is cut. What is cut off shows in the tooltips.
  const ImGuiStyle& st = ImGui::GetStyle();
  const float pad = px(2);
  const std::string widest_epoch = std::to_string(ix.last_epoch());
  auto text_w = [](const char* t) { return ImGui::CalcTextSize(t).x; };
  const float num_w = text_w(widest_epoch.c_str());
  const float fixed_w = std::max(text_w("epoch"), num_w) + std::max(text_w("ver"), num_w) +
                        std::max(text_w("cause"), num_w) + 5 * (2 * pad + 1) + 2;  // borders: 1 px at any scale
  const float page_room = std::max(text_w("~00000000'"), ImGui::GetContentRegionAvail().x - st.ScrollbarSize - fixed_w -
                                                             std::max(deltas_written_w_, text_w("written")));
  deltas_written_w_ = 0;
  ImGui::PushStyleVar(ImGuiStyleVar_CellPadding, ImVec2(pad, st.CellPadding.y));
  const bool table = ImGui::BeginTable("deltas", 5,
                                       ImGuiTableFlags_ScrollY | ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersV |
                                           ImGuiTableFlags_BordersOuter | ImGuiTableFlags_SizingFixedFit);
  ImGui::PopStyleVar();
  if (table) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("epoch");
    ImGui::TableSetupColumn("page");
    ImGui::TableSetupColumn("ver");
    ImGui::TableSetupColumn("written", ImGuiTableColumnFlags_WidthStretch);
    ImGui::TableSetupColumn("cause");
    ImGui::TableHeadersRow();
    const float row_h = ImGui::GetTextLineHeight() + ImGui::GetStyle().CellPadding.y * 2;
    if (deltas_scrolled_ != at) {  // keep the cursor's row (or where it would be) in the middle
      const float view_h = ImGui::GetWindowHeight() - row_h;
      ImGui::SetScrollY(std::max(0.f, static_cast<float>(anchor_row) * row_h - view_h / 2 + row_h));
      deltas_scrolled_ = at;
    }
    const ImVec4 derived_col = colv(Palette::kDerived);
    ImGuiListClipper clipper;
    clipper.Begin(static_cast<int>(count), row_h);
    while (clipper.Step()) {
      for (int i = clipper.DisplayStart; i < clipper.DisplayEnd; ++i) {
        const Epoch e = epoch_of(static_cast<uint64_t>(i));
        const auto d = ix.delta(e);
        if (!d) continue;
        ImGui::TableNextRow(0, row_h);
        ImGui::TableSetColumnIndex(0);
        if (d->derived()) ImGui::PushStyleColor(ImGuiCol_Text, derived_col);
        ImGui::PushID(static_cast<int>(e ^ (e >> 32)));
        if (ImGui::Selectable(fmt("%llu", static_cast<ull>(e)).c_str(), e == at,
                              ImGuiSelectableFlags_SpanAllColumns | ImGuiSelectableFlags_AllowItemOverlap)) {
          go_to(e, true);
          deltas_scrolled_ = e;  // it is in view already
        }
        layout_.delta_rows.push_back({e, item_rect()});
        ImGui::PopID();
        ImGui::TableSetColumnIndex(1);
        {
          const std::string label = model_.page_label(d->page);
          const std::string shown = fit_end(label, page_room);
          ImGui::TextUnformatted(shown.c_str());
          if (shown != label && ImGui::IsItemHovered()) ImGui::SetTooltip("%s", label.c_str());
        }
        ImGui::TableSetColumnIndex(2);
        ImGui::Text("%llu", static_cast<ull>(d->version));
        ImGui::TableSetColumnIndex(3);
        {
          const float cell_x = ImGui::GetCursorScreenPos().x;
          const float cell_right = ImGui::GetWindowPos().x + ImGui::GetContentRegionMax().x;
          const float core_w = text_w(summarize_ranges(d->ranges, d->changed_bytes(), 0).c_str());
          deltas_written_w_ = std::max(deltas_written_w_, core_w);
          note_fit("deltas:written", cell_x + core_w, cell_right);
        }
        ImGui::TextUnformatted(summarize_ranges(d->ranges, d->changed_bytes()).c_str());
        if (ImGui::IsItemHovered()) {  // the whole list
          ImGui::BeginTooltip();
          ImGui::PushTextWrapPos(ImGui::GetFontSize() * 40);
          ImGui::Text("epoch %llu wrote %llu byte(s) of %s in %zu range(s):", static_cast<ull>(e),
                      static_cast<ull>(d->changed_bytes()), model_.page_label(d->page).c_str(), d->ranges.size());
          ImGui::TextWrapped("%s", format_ranges(d->ranges, kTooltipRanges).c_str());
          ImGui::PopTextWrapPos();
          ImGui::EndTooltip();
        }
        ImGui::TableSetColumnIndex(4);
        if (d->derived()) ImGui::Text("%llu", static_cast<ull>(d->cause));
        else ImGui::TextUnformatted("-");
        if (d->derived()) ImGui::PopStyleColor();
      }
    }
    ImGui::EndTable();
  }
  ImGui::End();
}

// ---------------------------------------------------------------- modals

void App::draw_modals() {
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  const ImVec2 center(vp->WorkPos.x + vp->WorkSize.x / 2, vp->WorkPos.y + vp->WorkSize.y / 2);
  auto open = [](const char* id) {
    if (!ImGui::IsPopupOpen(id)) ImGui::OpenPopup(id);
  };
  auto place = [&] {
    ImGui::SetNextWindowPos(center, ImGuiCond_Always, ImVec2(0.5f, 0.5f));
    ImGui::SetNextWindowSize(ImVec2(std::min(px(600), vp->WorkSize.x - px(40)), 0));
  };

  if (loading()) open("Opening");
  place();
  if (ImGui::BeginPopupModal("Opening", nullptr, ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoMove)) {
    layout_.modal = "Opening";
    ImGui::TextWrapped("Reading %s", loading_dir_.string().c_str());
    const uint64_t done = job_ ? job_->done.load() : 0, total = job_ ? job_->total.load() : 0;
    const float f = total ? static_cast<float>(static_cast<double>(done) / total) : 0.f;
    ImGui::ProgressBar(f, ImVec2(-1, 0),
                       total ? fmt("%llu / %llu deltas", static_cast<ull>(done), static_cast<ull>(total)).c_str()
                             : "opening segments");
    if (button("Cancel##opening")) cancel_load();
    if (!loading()) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
  }

  if (pending_) open("Damaged recording");
  place();
  if (ImGui::BeginPopupModal("Damaged recording", nullptr, ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoMove)) {
    if (pending_) {
      const auto& ix = *pending_->index;
      const std::string text =
          pending_->dir.string() + " is damaged:\n" + pending_->damage().to_string() +
          fmt("\n\nIts readable part holds epochs %llu..%llu (%llu deltas); what follows the damage cannot be shown.",
              static_cast<ull>(ix.start_epoch()),
              static_cast<ull>(ix.delta_count() ? ix.last_epoch() : ix.start_epoch()),
              static_cast<ull>(ix.delta_count()));
      layout_.modal = "Damaged recording";
      layout_.modal_text = text;
      ImGui::TextWrapped("%s", text.c_str());
      ImGui::Spacing();
      if (button("Open the readable part")) {
        model_.adopt(std::move(*pending_));
        pending_.reset();
        after_adopt();
        ImGui::CloseCurrentPopup();
      }
      ImGui::SameLine();
      if (button("Cancel")) {
        pending_.reset();
        ImGui::CloseCurrentPopup();
      }
    } else {
      ImGui::CloseCurrentPopup();
    }
    ImGui::EndPopup();
  }

  if (!error_title_.empty()) {
    open(error_title_.c_str());
    place();
    if (ImGui::BeginPopupModal(error_title_.c_str(), nullptr, ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoMove)) {
      layout_.modal = error_title_;
      layout_.modal_text = error_text_;
      ImGui::TextWrapped("%s", error_text_.c_str());
      bool close = false;
      if (offer_recover_) {
        ImGui::Spacing();
        ImGui::TextWrapped(
            "The part before the damage can still be read: \"Cut and open\" cuts each segment after its last good "
            "frame (the cut bytes are kept beside it as <segment>.damaged, nothing is deleted), the same as "
            "`mmsb-replay recover DIR`, and opens what remains.");
        if (button("Cut and open the readable part")) {
          auto r = replay::recover(error_dir_, /*dry_run=*/false);
          if (r.ok()) {
            set_notice(r->summary);
            close = true;
            open_async(error_dir_);
          } else {
            error_text_ += "\n\nRecovery failed: " + r.status().to_string();
            offer_recover_ = false;
          }
        }
        ImGui::SameLine();
      }
      if (button("Close")) close = true;
      if (close) {
        error_title_.clear();
        error_text_.clear();
        ImGui::CloseCurrentPopup();
      }
      ImGui::EndPopup();
    }
  }
}

// ---------------------------------------------------------------- layout JSON

bool App::write_layout_json(const std::filesystem::path& path, std::string* error) const {
  errno = 0;
  std::ofstream out(path);
  if (!out) {
    if (error) *error = "cannot write " + path.string() + (errno ? std::string(": ") + std::strerror(errno) : "");
    return false;
  }
  auto rect = [](const Rect& r) {
    return fmt("[%d, %d, %d, %d]", static_cast<int>(std::floor(r.x0)), static_cast<int>(std::floor(r.y0)),
               static_cast<int>(std::floor(r.x1)), static_cast<int>(std::floor(r.y1)));
  };
  auto rgb = [](uint32_t c) { return fmt("[%u, %u, %u]", (c >> 16) & 255, (c >> 8) & 255, c & 255); };
  auto cells = [&](const char* name, const auto& v) {
    out << "  \"" << name << "\": [";
    bool first = true;
    for (const auto& [k, r] : v) {
      const std::string rr = rect(r);
      out << (first ? "" : ",") << "\n    [" << static_cast<ull>(k) << ", " << rr.substr(1);
      first = false;
    }
    out << (first ? "" : "\n  ") << "],\n";
  };
  const Model& m = model_;
  out << "{\n";
  out << "  \"window\": [" << layout_.width << ", " << layout_.height << "],\n";
  // The layout's sizes are the 1x ones times scale / framebuffer_scale.
  out << "  \"scale\": " << fmt("%g", scale_) << ",\n";
  out << "  \"framebuffer_scale\": " << fmt("%g", framebuffer_scale_) << ",\n";
  out << "  \"loaded\": " << (m.loaded() ? "true" : "false") << ",\n";
  out << "  \"epoch\": " << static_cast<ull>(m.cursor()) << ",\n";
  out << "  \"page\": " << (m.selected_page() == kNoPage ? -1 : static_cast<long long>(m.selected_page())) << ",\n";
  out << "  \"view\": \"" << view_name(m.view()) << "\",\n";
  out << "  \"diff\": [" << static_cast<ull>(m.diff_a()) << ", " << static_cast<ull>(m.diff_b()) << "],\n";
  out << "  \"fade\": " << m.fade() << ",\n";
  out << "  \"colors\": {\"background\": " << rgb(Palette::kBackground) << ", \"current\": " << rgb(Palette::kCurrent)
      << ", \"recent\": " << rgb(Palette::kRecent) << ", \"diff_old\": " << rgb(Palette::kDiffOld)
      << ", \"diff_new\": " << rgb(Palette::kDiffNew) << ", \"cursor\": " << rgb(Palette::kCursor) << "},\n";
  out << "  \"timeline\": " << rect(layout_.timeline) << ",\n";
  auto rects = [&](const char* key, const std::map<std::string, Rect>& by_name) {
    out << "  \"" << key << "\": {";
    bool first = true;
    for (const auto& [k, r] : by_name) {
      out << (first ? "" : ", ") << "\"" << k << "\": " << rect(r);
      first = false;
    }
    out << "},\n";
  };
  rects("tabs", layout_.tabs);
  rects("panels", layout_.panels);
  out << "  \"grid_px\": [" << std::lround(layout_.grid_px) << ", " << std::lround(layout_.grid8_px) << "],\n";
  cells("hex_cells", layout_.hex_cells);
  cells("ascii_cells", layout_.ascii_cells);
  cells("diff_old_cells", layout_.diff_old_cells);
  cells("diff_new_cells", layout_.diff_new_cells);
  cells("page_rows", layout_.page_rows);
  cells("diff_rows", layout_.diff_rows);
  cells("delta_rows", layout_.delta_rows);
  cells("deps_nodes", layout_.deps_nodes);
  out << "  \"fits\": {";
  bool first = true;
  for (const auto& [k, f] : layout_.fits) {
    out << (first ? "" : ", ") << json_string(k) << ": [" << static_cast<int>(std::ceil(f.first)) << ", "
        << static_cast<int>(std::floor(f.second)) << "]";
    first = false;
  }
  out << "},\n";
  out << "  \"page_names\": {";
  first = true;
  for (const auto& [id, name] : layout_.page_names) {
    out << (first ? "" : ", ") << "\"" << id << "\": " << json_string(name);
    first = false;
  }
  out << "},\n";
  out << "  \"live\": " << (layout_.live ? "true" : "false") << ",\n";
  out << "  \"stacked\": " << (layout_.stacked ? "true" : "false") << ",\n";
  out << "  \"banner\": " << (layout_.banner ? "true" : "false") << ",\n";
  out << "  \"notice\": " << json_string(notice_) << ",\n";
  out << "  \"side_by_side_error\": " << json_string(sides_.error) << ",\n";
  out << "  \"modal\": " << json_string(layout_.modal) << ",\n";
  out << "  \"modal_text\": " << json_string(layout_.modal_text) << ",\n";
  out << "  \"path\": " << json_string(path_buf_) << ",\n";
  out << "  \"error\": " << json_string(last_error_) << "\n";
  out << "}\n";
  if (!out) {
    if (error) *error = "cannot write " + path.string();
    return false;
  }
  return true;
}

}  // namespace mmsb::inspector
