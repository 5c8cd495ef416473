// Scripted mode (--script FILE): drives the inspector one command per frame,
// through ImGui's input (mouse position and buttons, keys, wheel) where a
// user would click, or through the App's model where a user would type.
// Used by the tests and to make the README's screenshots.
//
//   # a comment
//   open DIR                     open a recording (as the Open button does)
//   seek EPOCH                   move the cursor
//   select-page NAME|ID          select a page
//   select-byte OFFSET           select a byte of the selected page
//   view hex|diff|deps           show a view
//   diff A B                     compare epochs A and B
//   filter-pages TEXT            type into the pages filter
//   fade K                       fade the highlight over the last K writes
//   play RATE | pause            playback at RATE epochs per second
//   scale F                      the display's scale becomes F (0.5 to 4), as when the
//                                window moves to another monitor: the UI is scaled
//                                again before the next frame (not with --scale)
//   key NAME [COUNT]             press Left, Right, Up, Down, Home, End, PageUp,
//                                PageDown, Space, Enter, Escape, A or F5 (Shift+Right, Ctrl+A ...)
//   drag-timeline F0 F1 [FRAMES] left-drag across the timeline, from F0 to F1
//                                (fractions of its width), over FRAMES frames
//   pan-timeline F0 F1 [FRAMES]  the same with the right button
//   wheel-timeline F TICKS       mouse wheel at F (positive zooms in)
//   click-tab hex|diff|deps      click a view's tab
//   click-page NAME|ID           click a page's row in the pages table
//   click-diff-page NAME|ID      click a page's row in the diff view
//   click-delta EPOCH            click a row of the deltas list
//   click-deps EPOCH             click a node of the propagation tree
//   click-byte OFFSET            click a hex cell
//   hover-byte OFFSET            move the pointer over a hex cell (tooltip)
//   click-button LABEL           click a button by its label (the pages table's
//                                column headers are sort:id, sort:name, ...; the
//                                text fields field:path, field:epoch, field:filter,
//                                field:goto: the hex view's offset of a large page)
//   type TEXT                    type characters (into the focused text field)
//   wait FRAMES
//   wait-file FILE               wait (up to a minute) until FILE exists: a signal
//                                from another process (a test that grows a recording)
//   wait-loaded                  wait (up to 10 minutes) until an open in the background is done
//   wait-diff                    draw frames (up to 10 minutes) until a diff computed in the
//                                background is shown
//   screenshot FILE.png          write the next frame as a PNG (after a pending diff is done)
//   layout-json FILE             write where the last frame drew things
//   stats-begin                  start timing frames
//   stats-end [MAX_CPU_MS]       print frame times since stats-begin; fail if
//                                the 95th percentile of the CPU time exceeds MAX
//   expect-epoch N | expect-page NAME|ID | expect-view V | expect-byte OFFSET
//   expect-highlight OFFSET current|unchanged|recent|none  (a byte in the hex view's window)
//                                (current: changed by the cursor's delta; unchanged:
//                                written by it with the value the byte had)
//   expect-diff-pages N          pages that differ between A and B (waits for the diff)
//   expect-loaded yes|no
//   expect-error TEXT            the last open failed with a message holding TEXT
//   expect-modal TEXT            a modal is open whose title or text holds TEXT
//   expect-banner yes|no         the damaged-recording banner is shown
//   expect-zoomed yes|no         the timeline shows less than the whole history
//   print TEXT
//   quit
//
// Clicks wait up to 10 frames for their target to appear, and the
// expectations on what is drawn (expect-modal, expect-banner) up to 10
// frames to hold: a click takes effect in the frame after it.
// A failed expectation or a command that cannot run ends the program with
// exit code 1 and "script FILE:LINE: ..." on stderr.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace mmsb::inspector {

class App;

class Script {
 public:
  // Reads FILE; false with *error set if it cannot be read or has an unknown command.
  bool load(const std::string& path, std::string* error);

  // Before ImGui::NewFrame(), after the platform backend's NewFrame():
  // runs this frame's part of the current command.
  void before_frame(App& app);
  // After rendering, before the swap: takes a pending screenshot.
  using Shooter = std::function<bool(const std::string& path, std::string* error)>;
  void after_render(App& app, const Shooter& shoot);
  // Frame times (milliseconds) of the frame just finished.
  void record_frame(double cpu_ms, double gl_ms, double frame_ms);
  bool timing() const noexcept { return timing_; }
  // The display scale a `scale` command set since the last call, else 0.
  float take_display_scale() noexcept { return std::exchange(display_scale_, 0.f); }

  bool finished() const noexcept { return done_; }
  bool failed() const noexcept { return !error_.empty(); }
  const std::string& error() const noexcept { return error_; }

 private:
  struct Cmd {
    int line = 0;
    std::string name;
    std::vector<std::string> args;
    std::string rest;  // everything after the name, trimmed
  };
  bool step(App& app, const Cmd& c);  // true when the command is complete
  void fail(const Cmd& c, const std::string& message);
  void next();

  std::string path_;
  std::vector<Cmd> cmds_;
  size_t pc_ = 0;
  int sub_ = 0;    // frames spent on the current command
  int retry_ = 0;  // frames waited for a target to appear / a layout expectation to hold
  int warmup_ = 2;  // frames drawn before the first command (the layout exists then)
  bool done_ = false;
  std::string error_;
  // Synthetic input, applied every frame while the script runs.
  float mouse_x_ = -1e9f, mouse_y_ = -1e9f;
  bool down_[3] = {false, false, false};
  float wheel_ = 0;
  int key_ = -1;  // io.KeysDown index pressed this frame
  bool shift_ = false, ctrl_ = false;
  std::string pending_shot_;
  float display_scale_ = 0;
  // Frame statistics.
  bool timing_ = false;
  std::vector<double> cpu_ms_, gl_ms_, frame_ms_;
};

}  // namespace mmsb::inspector
