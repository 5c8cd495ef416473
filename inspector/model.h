// The inspector's view-model: what the UI shows, without the UI.
//
// Everything here is plain C++ over mmsb::replay (no ImGui, no OpenGL), so it
// is unit-tested without an X server. The answers come from replay::Index;
// this file only keeps the viewer's state (cursor epoch, selected page and
// byte, the epochs of a diff, the visible part of the timeline) and caches
// what a frame asks for again and again (the selected page's bytes at the
// cursor, its highlight, the diff of two epochs, the propagation tree), so a
// frame that changes nothing recomputes nothing and a frame that moves the
// cursor redoes only the selected page.
//
// Nothing here asserts on recorded data: every query on a damaged or empty
// recording answers "nothing" and the UI shows a message.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mmsb/replay/index.h"
#include "mmsb/replay/recording.h"
#include "mmsb/status.h"
#include "mmsb/types.h"

namespace mmsb::inspector {

// ---- the density strip behind the timeline ----
//
// Every epoch holds exactly one delta, so "deltas per epoch" is flat; what
// varies is how much each delta wrote and whether it was derived. Density
// keeps, per bin of epochs, the changed bytes and the derived deltas, in a
// pyramid of bin sizes kBaseBin << level, built once per recording, so a
// timeline of any zoom is drawn from at most a few bins per pixel column.
// Zoomed in closer than kBaseBin epochs per column it reads the deltas
// themselves (at most kBaseBin per column).
class Density {
 public:
  static constexpr uint64_t kBaseBin = 16;

  struct Column {
    double bytes_per_epoch = 0;    // mean changed bytes per delta in the column
    double derived_fraction = 0;   // derived deltas / deltas in the column
    uint64_t epochs = 0;           // deltas covered (0: outside the history)
  };

  Density() = default;
  // Reads every delta once (index.delta(e) for each epoch).
  void build(const replay::Index& index);
  bool empty() const noexcept { return levels_.empty(); }

  // `columns` columns covering epochs [lo, hi) (fractional ends allowed);
  // column c covers [lo + c*w, lo + (c+1)*w) with w = (hi - lo) / columns.
  void query(const replay::Index& index, double lo, double hi, int columns, std::vector<Column>* out) const;
  // How many bins of the pyramid (all levels).
  size_t bins() const noexcept;

 private:
  struct Bin {
    uint64_t bytes = 0;
    uint32_t derived = 0;
    uint32_t deltas = 0;
  };
  Epoch first_ = 1;                      // first delta epoch
  uint64_t count_ = 0;                   // deltas
  std::vector<std::vector<Bin>> levels_;  // level L: bins of kBaseBin << L epochs
};

// ---- the timeline's visible range ----
//
// [lo, hi) in epochs (doubles, so zoom is smooth); epoch e sits at the
// centre of its slot [e - 0.5, e + 0.5). Zooming keeps the epoch under the
// anchor where it is on screen; the view never gets narrower than kMinSpan
// epochs nor wider than the whole history.
struct TimelineView {
  static constexpr double kMinSpan = 8.0;
  double lo = 0, hi = 1;

  void fit(Epoch first, Epoch last);
  // factor < 1 zooms in; `anchor` is the epoch (fractional) kept in place.
  void zoom(double anchor, double factor, Epoch first, Epoch last);
  void pan(double epochs, Epoch first, Epoch last);
  // Makes `e` visible, moving the view as little as possible.
  void follow(Epoch e, Epoch first, Epoch last);
  double span() const noexcept { return hi - lo; }
  // Screen mapping for a strip starting at x0 with `width` pixels.
  double x_of(double epoch, double x0, double width) const noexcept;
  Epoch epoch_at(double x, double x0, double width, Epoch first, Epoch last) const noexcept;

 private:
  void clamp(Epoch first, Epoch last);
};

// What the loader hands over: a recording and its index, or why there is
// none. Built off the UI thread; the Index refers to the Recording.
struct Loaded {
  std::filesystem::path dir;
  std::unique_ptr<replay::Recording> rec;
  std::unique_ptr<replay::Index> index;  // destroyed before rec (declared after)
  Density density;
  Status error;        // the open or the index build failed
  std::string stage;   // "open", "index" or "cancelled" when error is set
  double seconds = 0;  // how long opening and indexing took
  ~Loaded();
  Loaded() = default;
  Loaded(Loaded&&) = default;
  Loaded& operator=(Loaded&& o) noexcept;  // drops the old index before its recording
  // What is wrong with a loaded recording: the first problem Recording::open
  // met (a torn or bad frame ends its segment), else why Index::build ended
  // the history early (a delta payload that failed its checks); OK if intact.
  const Status& damage() const noexcept;
};
// Opens `dir` and builds its index; never throws (std::bad_alloc and other
// exceptions become the error). progress(done, total) is called now and
// then from the calling thread. Setting *cancel (from any thread) ends the
// load at its next progress report with stage "cancelled"; a read that
// blocks inside Recording::open (a FIFO for a segment) does not see it.
Loaded load_recording(const std::filesystem::path& dir,
                      const std::function<void(uint64_t, uint64_t)>& progress = {},
                      const std::atomic<bool>* cancel = nullptr);

enum class View { kHex, kDiff, kDeps };
const char* view_name(View v) noexcept;                 // "hex", "diff", "deps"
std::optional<View> parse_view(std::string_view s) noexcept;

// How each byte of the selected page is highlighted: kCurrent = written by
// the delta at the cursor; 1..K = last written by the page's k-th most recent
// delta before the cursor (fading with k); kNone = not written by those.
// Model::highlight() also splits kCurrent: kUnchanged = written by the delta
// at the cursor with the value the byte already had.
inline constexpr int16_t kAgeCurrent = 0;
inline constexpr int16_t kAgeNone = -1;
inline constexpr int16_t kAgeUnchanged = -2;
// Computes the ages for page bytes [offset, offset + length) of `page` at
// `epoch` over the page's last `fade` writes before the cursor (plus the one
// at the cursor): element i is byte offset + i's.
std::vector<int16_t> compute_highlight(const replay::Index& index, PageId page, Epoch epoch, uint64_t offset,
                                       uint64_t length, int fade);

// One line of "who wrote this byte": newest first.
struct ByteWrite {
  Epoch epoch = 0;
  Version version = 0;
  std::byte value{};
};

// Where a search for a byte's previous or next write ended.
struct WriteSearch {
  std::optional<Epoch> epoch;  // the write found
  bool stopped = false;        // none within the limit; one may exist further away
};

// The writes of one byte at or before an epoch, found by walking the page's
// deltas backwards, at most a given number of them (a hot page has millions),
// and the byte's next write after the epoch, within as many.
struct ByteHistory {
  std::vector<ByteWrite> writes;  // newest first
  bool stopped = false;           // the walk hit its limit: earlier writes may exist
  uint64_t looked = 0;            // page deltas examined backwards
  Epoch looked_back_to = 0;       // the oldest delta examined (if looked > 0)
  WriteSearch next;
};

// Page deltas a search looks at: per hover (once per byte and cursor, then
// cached) and per click of a byte-write button.
inline constexpr uint64_t kHoverScan = 1u << 16;
inline constexpr uint64_t kButtonScan = 1u << 20;

// The propagation around one delta.
struct Propagation {
  Epoch epoch = 0;              // the delta at the cursor (0: none)
  std::vector<Epoch> chain;     // root cause first, ..., epoch last
  replay::CauseTree tree;       // what the root (or `epoch`, unless from_root) caused
  uint64_t tree_nodes = 0;
};

class Model {
 public:
  Model();
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // ---- the recording ----
  // Takes over a successful load (l.error OK); the cursor goes to the last
  // epoch, the first page is selected, the timeline shows everything.
  void adopt(Loaded&& l);
  void close();
  bool loaded() const noexcept { return index_ != nullptr; }
  const replay::Recording* recording() const noexcept { return loaded_.rec.get(); }
  const replay::Index* index() const noexcept { return index_; }
  const Density& density() const noexcept { return loaded_.density; }
  const std::filesystem::path& dir() const noexcept { return loaded_.dir; }
  double load_seconds() const noexcept { return loaded_.seconds; }
  // OK for an intact recording; otherwise Loaded::damage() (the model then
  // holds the readable prefix).
  const Status& damage() const noexcept { return loaded_.damage(); }

  // ---- the cursor ----
  Epoch first_epoch() const noexcept;  // the first epoch whose state is known
  Epoch last_epoch() const noexcept;
  Epoch cursor() const noexcept { return cursor_; }
  void seek(Epoch e);                   // clamped into [first_epoch, last_epoch]
  void step(int64_t delta);             // seek(cursor + delta), saturating
  // The delta that produced the cursor's state (none at the start epoch).
  std::optional<replay::DeltaInfo> cursor_delta() const;

  // Playback: advance(dt) moves the cursor by rate * dt epochs (fractions
  // carried over) and stops at the end.
  bool playing() const noexcept { return playing_; }
  void set_playing(bool on);
  double rate() const noexcept { return rate_; }
  void set_rate(double epochs_per_second);
  void advance(double seconds);

  // ---- pages ----
  uint32_t page_count() const noexcept;  // in the whole recording
  const replay::PageMeta* page_meta(PageId id) const noexcept;
  std::string page_label(PageId id) const;   // "'name'" or "#id"
  // A page by name, or by decimal id (also "#12").
  std::optional<PageId> find_page(std::string_view name_or_id) const;
  bool page_exists_at(PageId id, Epoch e) const noexcept;
  uint64_t page_changes(PageId id) const noexcept;  // deltas in the recording
  Version version_at(PageId id, Epoch e) const noexcept;

  PageId selected_page() const noexcept { return page_; }
  void select_page(PageId id);  // kNoPage clears

  // The selected page at the cursor, through a *window*: the whole page
  // when it holds at most window_bytes(), else window_bytes() of it around
  // the bytes show_bytes() asked for last (the page's start at first).
  // page_bytes()[i] is page byte window_offset() + i. The window's bytes
  // and a 2-byte age each are built on every cursor move, so a page of any
  // size costs the same; a step forward brings the last window forward
  // (Index::page_range_after), so it costs the deltas stepped over. Empty if
  // there is no selection or the page does not exist at the cursor;
  // page_error() says why.
  std::span<const std::byte> page_bytes();
  uint64_t window_offset();
  // Asks that the window hold page bytes [begin, end) (clamped to the page
  // and to half of window_bytes()): a window that holds them stays where it
  // is, else it moves to start a quarter of its size before `begin`.
  void show_bytes(uint64_t begin, uint64_t end);
  static constexpr uint64_t kWindowBytes = uint64_t{1} << 20;  // 65,536 rows of 16
  uint64_t window_bytes() const noexcept { return window_bytes_; }
  void set_window_bytes(uint64_t bytes);  // at least 16
  const std::string& page_error();
  // Per-byte ages (kAgeCurrent, kAgeUnchanged, 1..fade, kAgeNone) for page_bytes().
  std::span<const int16_t> highlight();
  // The window of the selected page just before the cursor's delta, when
  // that delta wrote it (what "changed" is measured against); empty
  // otherwise.
  std::span<const std::byte> page_bytes_before();
  // The side-by-side diff builds both sides of a page whole: pages up to
  // this many bytes; larger ones are refused with a pointer to
  // `mmsb-replay diff --page`.
  static constexpr uint64_t kViewLimit = uint64_t{256} << 20;
  uint64_t view_limit() const noexcept { return view_limit_; }
  void set_view_limit(uint64_t bytes) noexcept { view_limit_ = bytes; }
  int fade() const noexcept { return fade_; }
  static constexpr int kMaxFade = 64;
  void set_fade(int k);  // 1..kMaxFade

  // ---- the selected byte ----
  std::optional<uint64_t> selected_byte() const noexcept { return byte_; }
  void select_byte(std::optional<uint64_t> offset);
  // Up to `max` writes of that byte at or before `epoch`, newest first, and
  // its next write after `epoch`, each looking at no more than `max_deltas`
  // of the page's deltas. The answer is kept: asking again for the same
  // arguments (a tooltip, every frame) costs nothing.
  const ByteHistory& byte_history(PageId page, uint64_t offset, Epoch epoch, size_t max,
                                  uint64_t max_deltas = kHoverScan);
  // The next delta after `after` / the last one before `before` that wrote
  // the byte, looking at no more than `max_deltas` of the page's deltas.
  WriteSearch next_byte_write(PageId page, uint64_t offset, Epoch after, uint64_t max_deltas = kButtonScan) const;
  WriteSearch prev_byte_write(PageId page, uint64_t offset, Epoch before, uint64_t max_deltas = kButtonScan) const;
  // Page deltas examined by byte_history() since the recording was opened
  // (tests check that a repeated question is not recomputed).
  uint64_t history_deltas_examined() const noexcept { return history_examined_; }
  std::optional<Epoch> next_page_change() const;  // of the selected page, after the cursor
  std::optional<Epoch> prev_page_change() const;

  // ---- diff ----
  // The diff of A and B is computed once per pair: right away when the pages
  // touched between A and B hold at most diff_sync_limit() bytes, otherwise
  // on a background thread (a 64 MiB state takes most of a second), so the
  // UI keeps drawing. While it runs, diff() is empty and diff_pending() is
  // true; a newer pair replaces the request and the older answer is dropped.
  Epoch diff_a() const noexcept { return diff_a_; }
  Epoch diff_b() const noexcept { return diff_b_; }
  void set_diff(Epoch a, Epoch b);  // clamped
  // The pages that differ between A and B (empty while pending). The first
  // call for a pair starts the work; later calls pick up its answer.
  const std::vector<replay::PageDiff>& diff();
  // True from the diff() call that handed (A, B) to the background thread
  // until a diff() call takes its answer (at least one call later).
  bool diff_pending() const noexcept { return diff_pending_; }
  // Blocks until the answer for (A, B) is here (scripts, screenshots, tests).
  void wait_diff();
  const std::string& diff_error();
  uint64_t diff_bytes();  // differing bytes over all pages
  // The selected page's diff entry, if it differs.
  const replay::PageDiff* selected_diff();
  static constexpr uint64_t kDiffSyncBytes = uint64_t{1} << 20;
  uint64_t diff_sync_limit() const noexcept { return diff_sync_limit_; }
  void set_diff_sync_limit(uint64_t bytes) noexcept { diff_sync_limit_ = bytes; }  // 0: always in the background

  // ---- propagation ----
  // The tree shown is the whole propagation from the root cause (default),
  // or only what the delta at the cursor caused.
  bool deps_from_root() const noexcept { return from_root_; }
  void set_deps_from_root(bool on);
  const Propagation& propagation();  // for the delta at the cursor

  // ---- the view ----
  View view() const noexcept { return view_; }
  void set_view(View v) noexcept { view_ = v; }
  TimelineView& timeline() noexcept { return timeline_; }
  const TimelineView& timeline() const noexcept { return timeline_; }

  // Bumped whenever the cursor moves (for UI caches such as sorted tables).
  uint64_t cursor_generation() const noexcept { return generation_; }

 private:
  void invalidate_page();

  Loaded loaded_;
  const replay::Index* index_ = nullptr;
  Epoch cursor_ = 0;
  uint64_t generation_ = 0;
  PageId page_ = kNoPage;
  std::optional<uint64_t> byte_;
  bool playing_ = false;
  double rate_ = 30.0, play_carry_ = 0;
  int fade_ = 8;
  View view_ = View::kHex;
  TimelineView timeline_;

  // Cache: the window of the selected page at the cursor, and before the
  // cursor's delta.
  struct WindowKey {
    PageId page = kNoPage;
    Epoch epoch = 0;
    uint64_t offset = 0, length = 0;
  };
  bool page_valid_ = false;
  std::vector<std::byte> page_bytes_, before_bytes_;
  std::vector<int16_t> highlight_;
  std::string page_error_;
  uint64_t window_bytes_ = kWindowBytes;
  uint64_t want_begin_ = 0;  // where show_bytes() asked the window to be
  // The last window computed, kept when the cursor moves: one step forward
  // finds the window before the new delta here, without another read.
  WindowKey cached_at_, spare_at_;
  std::vector<std::byte> spare_bytes_;
  WindowKey window_at(Epoch e) const;  // the window of the selected page at e

  // Cache: the last byte_history() answer and its question.
  struct HistoryKey {
    PageId page = kNoPage;
    uint64_t offset = 0;
    Epoch epoch = 0;
    size_t max = 0;
    uint64_t max_deltas = 0;
    bool operator==(const HistoryKey&) const = default;
  };
  std::optional<HistoryKey> history_key_;
  ByteHistory history_;
  uint64_t history_examined_ = 0;

  // Cache: the diff of (diff_a_, diff_b_), and the background job.
  struct DiffResult {
    std::vector<replay::PageDiff> pages;
    uint64_t bytes = 0;
    std::string error;
  };
  static DiffResult compute_diff(const replay::Index& index, Epoch a, Epoch b);
  class DiffWorker;  // model.cc
  void poll_diff();
  void take_diff(DiffResult&& r);
  Epoch diff_a_ = 0, diff_b_ = 0;
  uint64_t diff_generation_ = 0;  // bumped with every new pair (and recording)
  bool diff_valid_ = false;
  bool diff_pending_ = false;     // the pair's job has been handed to the worker
  uint64_t diff_sync_limit_ = kDiffSyncBytes;
  uint64_t view_limit_ = kViewLimit;
  std::vector<replay::PageDiff> diff_;
  uint64_t diff_bytes_ = 0;
  std::string diff_error_;
  // Declared after loaded_, so destroyed first; ~Model and close() also stop
  // it (joining its thread) before the Index it reads goes away.
  std::unique_ptr<DiffWorker> diff_worker_;

  // Cache: propagation at prop_epoch_.
  bool from_root_ = true;
  bool prop_valid_ = false;
  Propagation prop_;
};

// "[8,9) [36,37) +3 more" (at most `max` ranges).
std::string format_ranges(std::span<const Range> ranges, size_t max = 3);
// For a narrow column, the totals first so that clipping the end loses no
// count: "[0,24)" for one range, else "190 ranges, 952 B: [0,1) [4,5) ..."
// (at most `max` ranges listed). `bytes`: the bytes the ranges hold.
std::string summarize_ranges(std::span<const Range> ranges, uint64_t bytes, size_t max = 2);
// `s` in at most `n` characters, keeping its end: "'heat/band-006'" in 10
// is "~band-006'" (names tell pages apart at the end: a band's number).
std::string keep_end(std::string_view s, size_t n);

}  // namespace mmsb::inspector
