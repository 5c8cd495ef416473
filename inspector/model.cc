#include "model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <iterator>
#include <mutex>
#include <new>
#include <thread>
#include <utility>

#include "mmsb/replay/text.h"

namespace mmsb::inspector {

namespace {

uint64_t count_nodes(const replay::CauseTree& t) {
  uint64_t n = 1;
  for (const auto& c : t.children) n += count_nodes(c);
  return n;
}

}  // namespace

// ---------------------------------------------------------------- Density

void Density::build(const replay::Index& index) {
  levels_.clear();
  first_ = index.first_epoch();
  count_ = index.delta_count();
  if (count_ == 0) return;
  std::vector<Bin> base((count_ + kBaseBin - 1) / kBaseBin);
  for (uint64_t i = 0; i < count_; ++i) {
    const auto d = index.delta(first_ + i);
    if (!d) continue;
    Bin& b = base[i / kBaseBin];
    b.bytes += d->bytes.size();
    b.derived += d->derived() ? 1 : 0;
    b.deltas += 1;
  }
  levels_.push_back(std::move(base));
  while (levels_.back().size() > 1) {
    const auto& prev = levels_.back();
    std::vector<Bin> next((prev.size() + 1) / 2);
    for (size_t i = 0; i < prev.size(); ++i) {
      Bin& b = next[i / 2];
      b.bytes += prev[i].bytes;
      b.derived += prev[i].derived;
      b.deltas += prev[i].deltas;
    }
    levels_.push_back(std::move(next));
  }
}

size_t Density::bins() const noexcept {
  size_t n = 0;
  for (const auto& l : levels_) n += l.size();
  return n;
}

void Density::query(const replay::Index& index, double lo, double hi, int columns,
                    std::vector<Column>* out) const {
  out->assign(columns > 0 ? static_cast<size_t>(columns) : 0, Column{});
  if (columns <= 0 || count_ == 0 || !(hi > lo)) return;
  const double w = (hi - lo) / columns;
  const double end = static_cast<double>(first_ + count_);  // one past the last epoch
  auto add_delta = [&](Column& c, Epoch e) {
    const auto d = index.delta(e);
    if (!d) return;
    c.bytes_per_epoch += static_cast<double>(d->bytes.size());
    c.derived_fraction += d->derived() ? 1 : 0;
    c.epochs += 1;
  };
  for (int c = 0; c < columns; ++c) {
    Column& col = (*out)[c];
    const double a = lo + c * w, b = a + w;
    if (w <= 1.0) {
      // Zoomed in: each column shows the epoch whose slot holds its centre.
      const double e = std::floor(a + w / 2 + 0.5);
      if (e >= static_cast<double>(first_) && e < end) add_delta(col, static_cast<Epoch>(e));
    } else {
      // Epochs whose centre lies in [a, b).
      const double eb = std::max(std::ceil(a), static_cast<double>(first_));
      const double ee = std::min(std::ceil(b), end);
      if (!(ee > eb)) continue;
      const Epoch e0 = static_cast<Epoch>(eb), e1 = static_cast<Epoch>(ee);
      if (w < static_cast<double>(kBaseBin) || levels_.empty()) {
        for (Epoch e = e0; e < e1; ++e) add_delta(col, e);
      } else {
        // The coarsest level whose bins are no wider than the column; a
        // column takes the bins that start inside it.
        size_t level = 0;
        while (level + 1 < levels_.size() && static_cast<double>(kBaseBin << (level + 1)) <= w) ++level;
        const uint64_t bs = kBaseBin << level;
        const auto& bins = levels_[level];
        const uint64_t i0 = (e0 - first_ + bs - 1) / bs, i1 = std::min<uint64_t>((e1 - first_ + bs - 1) / bs, bins.size());
        for (uint64_t i = i0; i < i1; ++i) {
          col.bytes_per_epoch += static_cast<double>(bins[i].bytes);
          col.derived_fraction += bins[i].derived;
          col.epochs += bins[i].deltas;
        }
      }
    }
    if (col.epochs > 0) {
      col.bytes_per_epoch /= static_cast<double>(col.epochs);
      col.derived_fraction /= static_cast<double>(col.epochs);
    }
  }
}

// ---------------------------------------------------------------- TimelineView

void TimelineView::clamp(Epoch first, Epoch last) {
  const double min_lo = static_cast<double>(first) - 0.5;
  const double max_hi = static_cast<double>(std::max(first, last)) + 0.5;
  const double full = max_hi - min_lo;
  double span = hi - lo;
  if (!(span > 0) || !std::isfinite(span)) span = full;
  span = std::clamp(span, std::min(kMinSpan, full), full);
  if (!std::isfinite(lo)) lo = min_lo;
  hi = lo + span;
  if (lo < min_lo) {
    lo = min_lo;
    hi = lo + span;
  }
  if (hi > max_hi) {
    hi = max_hi;
    lo = hi - span;
  }
}

void TimelineView::fit(Epoch first, Epoch last) {
  lo = static_cast<double>(first) - 0.5;
  hi = static_cast<double>(std::max(first, last)) + 0.5;
  clamp(first, last);
}

void TimelineView::zoom(double anchor, double factor, Epoch first, Epoch last) {
  if (!(factor > 0) || !std::isfinite(factor)) return;
  const double span = hi - lo;
  const double t = span > 0 ? (anchor - lo) / span : 0.5;
  const double min_lo = static_cast<double>(first) - 0.5;
  const double full = static_cast<double>(std::max(first, last)) + 0.5 - min_lo;
  const double ns = std::clamp(span * factor, std::min(kMinSpan, full), full);
  lo = anchor - t * ns;
  hi = lo + ns;
  clamp(first, last);
}

void TimelineView::pan(double epochs, Epoch first, Epoch last) {
  if (!std::isfinite(epochs)) return;
  lo += epochs;
  hi += epochs;
  clamp(first, last);
}

void TimelineView::follow(Epoch e, Epoch first, Epoch last) {
  const double c = static_cast<double>(e);
  const double span = hi - lo;
  if (c - 0.5 < lo) {
    lo = c - 0.5;
    hi = lo + span;
  } else if (c + 0.5 > hi) {
    hi = c + 0.5;
    lo = hi - span;
  }
  clamp(first, last);
}

double TimelineView::x_of(double epoch, double x0, double width) const noexcept {
  const double span = hi - lo;
  return span > 0 ? x0 + (epoch - lo) / span * width : x0;
}

Epoch TimelineView::epoch_at(double x, double x0, double width, Epoch first, Epoch last) const noexcept {
  if (last < first) last = first;
  const double t = width > 0 ? (x - x0) / width : 0;
  const double e = std::floor(lo + t * (hi - lo) + 0.5);
  if (!(e >= static_cast<double>(first))) return first;  // also NaN
  if (e >= static_cast<double>(last)) return last;
  return static_cast<Epoch>(e);
}

// ---------------------------------------------------------------- loading

Loaded::~Loaded() {
  index.reset();  // it refers to rec
  rec.reset();
}

Loaded& Loaded::operator=(Loaded&& o) noexcept {
  if (this == &o) return *this;
  index.reset();
  rec.reset();
  dir = std::move(o.dir);
  rec = std::move(o.rec);
  index = std::move(o.index);
  density = std::move(o.density);
  error = std::move(o.error);
  stage = std::move(o.stage);
  seconds = o.seconds;
  return *this;
}

const Status& Loaded::damage() const noexcept {
  static const Status kIntact;
  if (rec && !rec->damage().ok()) return rec->damage();
  if (index && !index->damage().ok()) return index->damage();
  return kIntact;
}

Loaded load_recording(const std::filesystem::path& dir, const std::function<void(uint64_t, uint64_t)>& progress,
                      const std::atomic<bool>* cancel) {
  Loaded l;
  l.dir = dir;
  const auto t0 = std::chrono::steady_clock::now();
  auto cancelled = [&] {
    if (!cancel || !cancel->load()) return false;
    l.index.reset();
    l.rec.reset();
    l.error = Status(Code::kFailedPrecondition, "opening " + dir.string() + " was cancelled");
    l.stage = "cancelled";
    return true;
  };
  try {
    if (cancelled()) return l;
    auto rec = replay::Recording::open(dir);
    if (cancelled()) return l;
    if (!rec.ok()) {
      l.error = rec.status();
      l.stage = "open";
    } else {
      l.rec = std::move(rec).value();
      replay::IndexOptions options;
      options.progress = progress;
      options.cancel = cancel;
      auto index = replay::Index::build(*l.rec, options);
      if (cancelled()) return l;
      if (!index.ok()) {
        l.error = index.status();
        l.stage = "index";
      } else {
        l.index = std::move(index).value();
        l.density.build(*l.index);
      }
    }
  } catch (const std::bad_alloc&) {
    l.index.reset();
    l.error = Status(Code::kResourceExhausted, "out of memory while reading " + dir.string() +
                                                   " -- the recording is larger than this machine can index");
    l.stage = l.rec ? "index" : "open";
  } catch (const std::exception& e) {
    l.index.reset();
    l.error = Status(Code::kIOError, std::string("cannot read ") + dir.string() + ": " + e.what());
    l.stage = l.rec ? "index" : "open";
  }
  l.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return l;
}

const char* view_name(View v) noexcept {
  switch (v) {
    case View::kHex: return "hex";
    case View::kDiff: return "diff";
    case View::kDeps: return "deps";
  }
  return "hex";
}

std::optional<View> parse_view(std::string_view s) noexcept {
  if (s == "hex") return View::kHex;
  if (s == "diff") return View::kDiff;
  if (s == "deps" || s == "propagation") return View::kDeps;
  return std::nullopt;
}

std::vector<int16_t> compute_highlight(const replay::Index& index, PageId page, Epoch epoch, uint64_t offset,
                                       uint64_t length, int fade) {
  std::vector<int16_t> ages(length, kAgeNone);
  const uint64_t end_off = offset + length;
  if (fade < 0) fade = 0;
  const auto epochs = index.page_epochs(page);
  const auto end = std::upper_bound(epochs.begin(), epochs.end(), epoch);
  if (end == epochs.begin()) return ages;
  const size_t n = static_cast<size_t>(end - epochs.begin());
  const int first_rank = *(end - 1) == epoch ? 0 : 1;
  // The writes that get a colour, oldest first so newer ones win.
  const size_t take = std::min<size_t>(n, static_cast<size_t>(fade + 1 - first_rank));
  for (size_t k = take; k-- > 0;) {
    const size_t j = n - 1 - k;  // k deltas newer than this one
    const int16_t age = static_cast<int16_t>(k + first_rank);
    const auto d = index.delta(epochs[j]);
    if (!d) continue;
    for (const Range& r : d->ranges) {
      const uint64_t b = std::clamp<uint64_t>(r.offset, offset, end_off);
      const uint64_t e = std::clamp<uint64_t>(r.end(), offset, end_off);
      std::fill(ages.begin() + static_cast<ptrdiff_t>(b - offset), ages.begin() + static_cast<ptrdiff_t>(e - offset),
                age);
    }
  }
  return ages;
}

std::string format_ranges(std::span<const Range> ranges, size_t max) {
  std::string s;
  for (size_t i = 0; i < ranges.size() && i < max; ++i) {
    if (i) s += ' ';
    s += '[' + std::to_string(ranges[i].offset) + ',' + std::to_string(ranges[i].end()) + ')';
  }
  if (ranges.size() > max) s += " +" + std::to_string(ranges.size() - max) + " more";
  return s;
}

std::string summarize_ranges(std::span<const Range> ranges, uint64_t bytes, size_t max) {
  if (ranges.empty()) return "nothing";
  if (ranges.size() == 1) return format_ranges(ranges, 1);
  std::string s = std::to_string(ranges.size()) + " ranges, " + std::to_string(bytes) + " B";
  if (max == 0) return s;
  s += ": " + format_ranges(ranges.first(std::min(max, ranges.size())), max);
  if (ranges.size() > max) s += " ...";
  return s;
}

std::string keep_end(std::string_view s, size_t n) {
  if (s.size() <= n) return std::string(s);
  if (n == 0) return std::string();
  return "~" + std::string(s.substr(s.size() - (n - 1)));
}

// ---------------------------------------------------------------- the diff job

// One thread that computes diffs for the UI thread, started on the first
// request and joined by stop() (close(), ~Model).
//
// Why Index::diff may run here while the UI thread keeps reading the same
// Index: an Index is immutable once built (index.h), and diff() / diff_page()
// / page_at() only read its in-memory vectors (deltas, ranges, bytes, page
// epochs, checkpoint images) and Recording::pages(); they keep no cache and
// never call Recording::read_frame, whose decompressor and scratch buffer
// are the Recording's only mutable state. The worker writes nothing but its
// own result. The Index outlives every job: the Model stops (joins) the
// worker before it drops or replaces its recording.
class Model::DiffWorker {
 public:
  ~DiffWorker() { stop(); }

  // Replaces any request not yet started; one already running finishes and
  // its answer is dropped (its generation is older).
  void request(const replay::Index* index, uint64_t generation, Epoch a, Epoch b) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      req_ = Request{index, generation, a, b};
      if (!thread_.joinable()) {
        stop_ = false;
        thread_ = std::thread([this] { run(); });
      }
    }
    wake_.notify_one();
  }

  // The answer for `generation` if it is here; an older answer is dropped.
  std::optional<DiffResult> take(uint64_t generation) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!done_) return std::nullopt;
    std::optional<DiffResult> r;
    if (done_->first == generation) r = std::move(done_->second);
    done_.reset();
    return r;
  }

  // Blocks until the answer for `generation` (which was requested) is here.
  DiffResult wait(uint64_t generation) {
    std::unique_lock<std::mutex> lock(mu_);
    answered_.wait(lock, [&] { return done_ && done_->first == generation; });
    DiffResult r = std::move(done_->second);
    done_.reset();
    return r;
  }

  // Drops what is queued and answered, lets a running diff finish, joins.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      req_.reset();
      done_.reset();
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Request {
    const replay::Index* index;
    uint64_t generation;
    Epoch a, b;
  };

  void run() {
    for (;;) {
      Request r;
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || req_.has_value(); });
        if (stop_) return;
        r = *req_;
        req_.reset();
      }
      DiffResult result = compute_diff(*r.index, r.a, r.b);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
        if (req_) continue;  // superseded while it ran: never shown
        done_.emplace(r.generation, std::move(result));
      }
      answered_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_, answered_;
  std::optional<Request> req_;
  std::optional<std::pair<uint64_t, DiffResult>> done_;
  bool stop_ = false;
  std::thread thread_;
};

// ---------------------------------------------------------------- Model

Model::Model() = default;
Model::~Model() {
  if (diff_worker_) diff_worker_->stop();  // before the Index it may be reading goes
}

void Model::adopt(Loaded&& l) {
  close();
  if (!l.index) return;
  loaded_ = std::move(l);
  index_ = loaded_.index.get();
  cursor_ = last_epoch();
  ++generation_;
  page_ = kNoPage;
  if (const auto d = cursor_delta()) page_ = d->page;
  else if (page_count() > 0) page_ = 0;
  timeline_.fit(first_epoch(), last_epoch());
  diff_a_ = first_epoch();
  diff_b_ = last_epoch();
  playing_ = false;
  play_carry_ = 0;
}

void Model::close() {
  if (diff_worker_) diff_worker_->stop();  // joined before the Index it may be reading goes
  index_ = nullptr;
  loaded_ = Loaded{};
  cursor_ = 0;
  ++generation_;
  page_ = kNoPage;
  byte_.reset();
  playing_ = false;
  invalidate_page();
  spare_at_ = {};
  spare_bytes_.clear();
  history_key_.reset();
  history_ = ByteHistory{};
  ++diff_generation_;
  diff_valid_ = false;
  diff_pending_ = false;
  diff_.clear();
  diff_bytes_ = 0;
  diff_error_.clear();
  prop_valid_ = false;
}


Epoch Model::first_epoch() const noexcept { return index_ ? index_->start_epoch() : 0; }
Epoch Model::last_epoch() const noexcept {
  if (!index_) return 0;
  return index_->delta_count() ? std::max(index_->last_epoch(), index_->start_epoch()) : index_->start_epoch();
}

void Model::seek(Epoch e) {
  if (!index_) return;
  e = std::clamp(e, first_epoch(), last_epoch());
  if (e == cursor_) return;
  cursor_ = e;
  ++generation_;
  invalidate_page();
  prop_valid_ = false;
}

void Model::step(int64_t delta) {
  if (delta >= 0) {
    const Epoch room = last_epoch() - std::min(cursor_, last_epoch());
    seek(cursor_ + std::min<uint64_t>(room, static_cast<uint64_t>(delta)));
  } else {
    const uint64_t back = static_cast<uint64_t>(-(delta + 1)) + 1;
    seek(cursor_ > back ? cursor_ - back : 0);
  }
}

std::optional<replay::DeltaInfo> Model::cursor_delta() const {
  if (!index_ || index_->delta_count() == 0) return std::nullopt;
  return index_->delta(cursor_);
}

void Model::set_playing(bool on) {
  playing_ = on && index_ != nullptr;
  play_carry_ = 0;
  if (playing_ && cursor_ >= last_epoch()) seek(first_epoch());  // play again from the start
}

void Model::set_rate(double r) {
  if (std::isfinite(r)) rate_ = std::clamp(r, 0.1, 1e9);
}

void Model::advance(double seconds) {
  if (!playing_ || !index_ || !(seconds > 0)) return;
  play_carry_ += rate_ * std::min(seconds, 1.0);
  const double whole = std::floor(play_carry_);
  play_carry_ -= whole;
  if (whole >= 1) step(static_cast<int64_t>(std::min(whole, 9e18)));
  if (cursor_ >= last_epoch()) playing_ = false;
}

uint32_t Model::page_count() const noexcept {
  return loaded_.rec ? static_cast<uint32_t>(loaded_.rec->pages().size()) : 0;
}

const replay::PageMeta* Model::page_meta(PageId id) const noexcept {
  if (!loaded_.rec) return nullptr;
  const auto& pages = loaded_.rec->pages();
  if (id < pages.size() && pages[id].id == id) return &pages[id];
  for (const auto& p : pages)
    if (p.id == id) return &p;
  return nullptr;
}

std::string Model::page_label(PageId id) const {
  const auto* m = page_meta(id);
  if (m && !m->name.empty()) {  // one line, unambiguous
    std::string s(1, '\'');
    s += replay::printable(m->name);
    s += '\'';
    return s;
  }
  return "#" + std::to_string(id);
}

std::optional<PageId> Model::find_page(std::string_view s) const {
  if (!loaded_.rec || s.empty()) return std::nullopt;
  if (std::optional<PageId> id = loaded_.rec->page_named(s)) return id;
  if (s.front() == '#') s.remove_prefix(1);
  if (s.empty() || s.size() > 10) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v >= page_count()) return std::nullopt;
  return static_cast<PageId>(v);
}

bool Model::page_exists_at(PageId id, Epoch e) const noexcept {
  return index_ && id != kNoPage && id < index_->page_count_at(e);
}

uint64_t Model::page_changes(PageId id) const noexcept { return index_ ? index_->page_epochs(id).size() : 0; }

Version Model::version_at(PageId id, Epoch e) const noexcept { return index_ ? index_->version_at(id, e) : 0; }

void Model::select_page(PageId id) {
  if (id != kNoPage && id >= page_count()) id = kNoPage;
  if (id == page_) return;
  page_ = id;
  byte_.reset();
  want_begin_ = 0;  // a new page opens at its start
  invalidate_page();
}

void Model::invalidate_page() {
  if (page_valid_ && page_error_.empty() && cached_at_.page != kNoPage) {
    spare_bytes_.swap(page_bytes_);
    spare_at_ = cached_at_;
  }
  page_valid_ = false;
  cached_at_ = {};
  page_bytes_.clear();
  before_bytes_.clear();
  highlight_.clear();
  page_error_.clear();
}

// The whole page when it fits the window; else window_bytes_ from a
// quarter window before want_begin_, 16-aligned as the hex rows are, kept
// inside the page (a window that ends the page takes its last bytes too:
// up to 15 more).
Model::WindowKey Model::window_at(Epoch e) const {
  const auto* m = page_meta(page_);
  const uint64_t size = m ? m->size : 0;
  if (size <= window_bytes_) return {page_, e, 0, size};
  const uint64_t len = window_bytes_;
  uint64_t start = want_begin_ > len / 4 ? (want_begin_ - len / 4) & ~uint64_t{15} : 0;
  if (start > size - len) start = (size - len) & ~uint64_t{15};
  return {page_, e, start, start + len + 15 >= size ? size - start : len};
}

uint64_t Model::window_offset() {
  (void)page_bytes();
  return cached_at_.offset;
}

void Model::show_bytes(uint64_t begin, uint64_t end) {
  const auto* m = page_meta(page_);
  if (!m || m->size <= window_bytes_) return;  // the window is the page
  // A window starts at most a quarter (and 15 bytes) before `begin`, so
  // half of it always fits after `begin`.
  begin = std::min(begin, m->size);
  end = std::clamp(end, begin, std::min(m->size, begin + window_bytes_ / 2));
  // The window moves only when it must: the hex view's scroll position is
  // relative to its start.
  if (const WindowKey w = window_at(cursor_); begin >= w.offset && end <= w.offset + w.length) return;
  want_begin_ = begin;
  invalidate_page();
}

void Model::set_window_bytes(uint64_t bytes) {
  window_bytes_ = std::max<uint64_t>(bytes, 16);
  invalidate_page();
}

std::span<const std::byte> Model::page_bytes() {
  if (page_valid_) return page_bytes_;
  page_valid_ = true;
  page_bytes_.clear();
  highlight_.clear();
  page_error_.clear();
  if (!index_) {
    page_error_ = "no recording open";
  } else if (page_ == kNoPage) {
    page_error_ = "no page selected";
  } else if (!page_exists_at(page_, cursor_)) {
    const auto* m = page_meta(page_);
    page_error_ = "page " + page_label(page_) + " does not exist at epoch " + std::to_string(cursor_) +
                  (m ? " (it is created at epoch " + std::to_string(m->created) + ")" : std::string());
  } else {
    try {
      const WindowKey w = window_at(cursor_);
      // The window at k: the last one computed when it holds the same
      // bytes at k's epoch or earlier (brought forward in place), else read.
      auto read = [&](const WindowKey& k, std::vector<std::byte>* out) {
        if (spare_at_.page == k.page && spare_at_.offset == k.offset && spare_at_.length == k.length &&
            spare_at_.epoch <= k.epoch) {
          const Epoch from = spare_at_.epoch;
          spare_at_ = {};
          out->swap(spare_bytes_);
          return index_->page_range_after(page_, from, *out, k.epoch, k.offset, out);
        }
        return index_->page_range(page_, k.epoch, k.offset, k.length, out);
      };
      // "Changed" needs the page before the cursor's delta: then the window
      // at the cursor is that one and the delta.
      const auto d = cursor_delta();
      const bool wrote = d && d->page == page_ && cursor_ > first_epoch() && page_exists_at(page_, cursor_ - 1);
      Status s;
      if (wrote) {
        s = read(WindowKey{page_, cursor_ - 1, w.offset, w.length}, &before_bytes_);
        if (s.ok()) s = index_->page_range_after(page_, cursor_ - 1, before_bytes_, cursor_, w.offset, &page_bytes_);
      } else {
        s = read(w, &page_bytes_);
      }
      if (!s.ok()) {
        page_error_ = s.to_string();
        page_bytes_.clear();
        before_bytes_.clear();
      } else {
        cached_at_ = w;
        highlight_ = compute_highlight(*index_, page_, cursor_, w.offset, page_bytes_.size(), fade_);
        const size_t n = std::min(before_bytes_.size(), page_bytes_.size());
        for (size_t i = 0; i < n; ++i)
          if (highlight_[i] == kAgeCurrent && before_bytes_[i] == page_bytes_[i]) highlight_[i] = kAgeUnchanged;
      }
    } catch (const std::exception& e) {
      page_error_ = std::string("cannot read the page: ") + e.what();
      page_bytes_.clear();
      before_bytes_.clear();
    }
  }
  return page_bytes_;
}

std::span<const std::byte> Model::page_bytes_before() {
  (void)page_bytes();
  return before_bytes_;
}

const std::string& Model::page_error() {
  (void)page_bytes();
  return page_error_;
}

std::span<const int16_t> Model::highlight() {
  (void)page_bytes();
  return highlight_;
}

void Model::set_fade(int k) {
  k = std::clamp(k, 1, kMaxFade);
  if (k == fade_) return;
  fade_ = k;
  invalidate_page();
}

void Model::select_byte(std::optional<uint64_t> offset) { byte_ = offset; }

// The walks stop after `max_deltas` of the page's deltas (Index::find_*_writer).
const ByteHistory& Model::byte_history(PageId page, uint64_t offset, Epoch epoch, size_t max, uint64_t max_deltas) {
  const HistoryKey key{page, offset, epoch, max, max_deltas};
  if (history_key_ == key) return history_;
  history_key_ = key;
  history_ = ByteHistory{};
  if (!index_) return history_;
  // Each write found starts the next search just before it, with what is
  // left of the bound.
  for (Epoch at = epoch; history_.writes.size() < max;) {
    const replay::WriterSearch s = index_->find_last_writer(page, offset, at, max_deltas - history_.looked);
    history_.looked += s.looked;
    if (s.looked > 0) history_.looked_back_to = s.last_looked;
    history_.stopped = s.stopped;
    if (!s.writer) break;
    const replay::DeltaInfo& d = *s.writer;
    history_.writes.push_back({d.epoch, d.version, d.byte_at(offset).value_or(std::byte{0})});
    at = d.epoch - 1;  // delta epochs start at 1
  }
  history_.next = next_byte_write(page, offset, epoch, max_deltas);
  history_examined_ += history_.looked;
  return history_;
}

WriteSearch Model::next_byte_write(PageId page, uint64_t offset, Epoch after, uint64_t max_deltas) const {
  if (!index_) return {};
  const replay::WriterSearch s = index_->find_next_writer(page, offset, after, max_deltas);
  return {s.writer ? std::optional<Epoch>(s.writer->epoch) : std::nullopt, s.stopped};
}

WriteSearch Model::prev_byte_write(PageId page, uint64_t offset, Epoch before, uint64_t max_deltas) const {
  if (!index_ || before == 0) return {};
  const replay::WriterSearch s = index_->find_last_writer(page, offset, before - 1, max_deltas);
  return {s.writer ? std::optional<Epoch>(s.writer->epoch) : std::nullopt, s.stopped};
}

std::optional<Epoch> Model::next_page_change() const {
  if (!index_ || page_ == kNoPage) return std::nullopt;
  return index_->next_change(page_, cursor_);
}

std::optional<Epoch> Model::prev_page_change() const {
  if (!index_ || page_ == kNoPage) return std::nullopt;
  return index_->prev_change(page_, cursor_);
}

void Model::set_diff(Epoch a, Epoch b) {
  if (!index_) return;
  a = std::clamp(a, first_epoch(), last_epoch());
  b = std::clamp(b, first_epoch(), last_epoch());
  if (a == diff_a_ && b == diff_b_) return;
  diff_a_ = a;
  diff_b_ = b;
  ++diff_generation_;
  diff_valid_ = false;
  diff_pending_ = false;
  diff_.clear();
  diff_bytes_ = 0;
  diff_error_.clear();
}

Model::DiffResult Model::compute_diff(const replay::Index& index, Epoch a, Epoch b) {
  DiffResult out;
  try {
    auto r = index.diff(a, b);
    if (r.ok()) out.pages = std::move(r).value();
    else out.error = r.status().to_string();
    for (const auto& pd : out.pages)
      for (const auto& range : pd.ranges) out.bytes += range.length;
  } catch (const std::exception& e) {
    out.pages.clear();
    out.error = std::string("cannot compute the diff: ") + e.what();
  }
  return out;
}

namespace {

// More than `limit` bytes in the pages Index::diff would compare (those
// created or written between the two epochs)? It rebuilds and compares each
// of them at both epochs, so this is what the diff costs.
bool diff_exceeds(const replay::Index& ix, Epoch a, Epoch b, uint64_t limit) {
  const Epoch lo = std::min(a, b), hi = std::max(a, b);
  const uint32_t n = ix.page_count_at(hi), existed = ix.page_count_at(lo);
  const auto& pages = ix.recording().pages();
  uint64_t bytes = 0;
  for (PageId p = 0; p < n && p < pages.size(); ++p) {
    if (p < existed && ix.count_between(p, lo, hi) == 0) continue;
    bytes += pages[p].size;
    if (bytes > limit) return true;
  }
  return false;
}

}  // namespace

void Model::take_diff(DiffResult&& r) {
  diff_ = std::move(r.pages);
  diff_bytes_ = r.bytes;
  diff_error_ = std::move(r.error);
  diff_valid_ = true;
  diff_pending_ = false;
}

void Model::poll_diff() {
  if (diff_valid_ || !index_) return;
  if (!diff_pending_) {
    if (!diff_exceeds(*index_, diff_a_, diff_b_, diff_sync_limit_)) {
      take_diff(compute_diff(*index_, diff_a_, diff_b_));
      return;
    }
    if (!diff_worker_) diff_worker_ = std::make_unique<DiffWorker>();
    diff_worker_->request(index_, diff_generation_, diff_a_, diff_b_);
    diff_pending_ = true;
    return;  // pending for at least this call, however fast the worker is
  }
  if (auto r = diff_worker_->take(diff_generation_)) take_diff(std::move(*r));
}

const std::vector<replay::PageDiff>& Model::diff() {
  poll_diff();
  return diff_;
}

void Model::wait_diff() {
  poll_diff();
  if (diff_pending_) take_diff(diff_worker_->wait(diff_generation_));
}

uint64_t Model::diff_bytes() {
  (void)diff();
  return diff_bytes_;
}

const std::string& Model::diff_error() {
  (void)diff();
  return diff_error_;
}

const replay::PageDiff* Model::selected_diff() {
  const auto& d = diff();
  auto it = std::lower_bound(d.begin(), d.end(), page_,
                             [](const replay::PageDiff& p, PageId id) { return p.page < id; });
  if (it != d.end() && it->page == page_) return &*it;
  for (const auto& p : d)  // in case the order is not by page
    if (p.page == page_) return &p;
  return nullptr;
}

void Model::set_deps_from_root(bool on) {
  if (on == from_root_) return;
  from_root_ = on;
  prop_valid_ = false;
}

const Propagation& Model::propagation() {
  if (prop_valid_) return prop_;
  prop_valid_ = true;
  prop_ = Propagation{};
  const auto d = cursor_delta();
  if (!d) return prop_;
  prop_.epoch = d->epoch;
  prop_.chain = index_->cause_chain(d->epoch);
  std::reverse(prop_.chain.begin(), prop_.chain.end());  // root first
  if (prop_.chain.empty() || prop_.chain.back() != d->epoch) prop_.chain.push_back(d->epoch);
  const Epoch top = from_root_ ? prop_.chain.front() : d->epoch;
  prop_.tree = index_->caused_tree(top);
  prop_.tree_nodes = count_nodes(prop_.tree);
  return prop_;
}

}  // namespace mmsb::inspector
