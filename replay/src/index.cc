#include "mmsb/replay/index.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "mmsb/diff.h"
#include "mmsb/fb/mmsb_tlog_generated.h"
#include "mmsb/hash.h"
#include "mmsb/replay/state.h"
#include "index_builder.h"

namespace mmsb::replay {

namespace {

std::string epoch_range(const Index& ix) {
  return "epochs " + std::to_string(ix.start_epoch()) + ".." + std::to_string(ix.last_epoch());
}

}  // namespace

std::optional<std::byte> DeltaInfo::byte_at(uint64_t offset) const noexcept {
  // Ranges are sorted and disjoint: the last one starting at or before offset.
  auto it = std::upper_bound(ranges.begin(), ranges.end(), offset,
                             [](uint64_t off, const Range& r) { return off < r.offset; });
  if (it == ranges.begin() || offset >= (it - 1)->end()) return std::nullopt;
  --it;
  uint64_t at = offset - it->offset;  // its bytes follow those of the ranges before it
  for (auto r = ranges.begin(); r != it; ++r) at += r->length;
  if (at >= bytes.size()) return std::nullopt;  // bytes shorter than the ranges: not an Index's delta
  return bytes[at];
}

Index::~Index() = default;

Result<std::unique_ptr<Index>> Index::build(const Recording& rec, IndexOptions options) {
  IndexBuilder builder(rec, std::move(options));
  if (Status s = builder.start(); !s.ok()) return s;
  std::vector<std::byte> raw;
  format::BatchReader batch;
  Status damage;
  for (size_t fi : rec.delta_frames()) {
    // A frame that fails its checks ends the history, as in Recording::open
    // (which trusts a closed segment's index and reads payloads lazily); so
    // does a good frame holding a delta invalid for its page (recover cuts
    // it whole): every delta of the frame is checked before any is used.
    Status s = rec.read_deltas(fi, &raw, &batch);
    if (s.ok()) s = rec.check_deltas(fi, batch);
    if (!s.ok()) {
      damage = Status(s.code(), s.message() + "; the history ends at epoch " +
                                    std::to_string(rec.frames()[fi].header.first_epoch - 1));
      break;
    }
    if (Status s = builder.add(batch); !s.ok()) return s;
  }
  return builder.finish(std::move(damage));
}

// ---- IndexBuilder: one pass over the delta frames, each delta appended to
// the flat arrays and applied to a running image, which is copied out at
// each checkpoint. ----

IndexBuilder::IndexBuilder(const Recording& rec, IndexOptions options)
    : rec_(rec), options_(std::move(options)), ix_(new Index(rec)) {}

IndexBuilder::~IndexBuilder() = default;

Status IndexBuilder::start() {
  Index& ix = *ix_;
  const auto& pages = rec_.pages();
  ix.start_epoch_ = rec_.start_epoch();
  ix.first_epoch_ = rec_.delta_count() ? rec_.first_delta_epoch() : ix.start_epoch_ + 1;
  ix.page_offset_.resize(pages.size());
  for (size_t p = 0; p < pages.size(); ++p) {
    ix.page_offset_[p] = ix.state_bytes_;
    ix.state_bytes_ += pages[p].size;
  }
  page_counts_.assign(pages.size(), 0);
  ix.deltas_.reserve(rec_.delta_count());
  // Upper bounds, so the arrays are filled without regrowing: every delta has
  // a range, and its bytes are part of its frame's decompressed size.
  uint64_t raw_bytes = 0;
  for (size_t fi : rec_.delta_frames()) raw_bytes += rec_.frames()[fi].header.raw_bytes;
  ix.ranges_.reserve(rec_.delta_count());
  ix.bytes_.reserve(raw_bytes);

  // Checkpoints: at most checkpoint_bytes of images. One is taken after
  // interval_ deltas, or earlier once the deltas since the last one carry
  // interval_bytes_ (their share of the log's bytes, and at least a state's
  // worth): large deltas (W3) make an interval costly long before it has
  // many deltas. Never closer than min_checkpoint_interval deltas unless
  // the bytes say so. Checkpoint 0 is the start state.
  const uint64_t after_start =
      rec_.delta_count() ? rec_.last_epoch() - std::max(ix.start_epoch_, ix.first_epoch_ - 1) : 0;
  slots_ = std::max<uint64_t>(1, options_.checkpoint_bytes / std::max<uint64_t>(1, ix.state_bytes_));
  ix.interval_ = std::max<uint64_t>({options_.min_checkpoint_interval, 1, (after_start + slots_ - 1) / slots_});
  interval_bytes_ = std::max<uint64_t>(ix.state_bytes_, (raw_bytes + slots_ - 1) / slots_);

  Result<std::byte*> running = ix.arena_.allocate(std::max<uint64_t>(1, ix.state_bytes_));
  if (!running.ok()) return running.status();
  image_ = *running;  // zero-filled (Arena), and left untouched where no page is written
  ix.base_version_.assign(pages.size(), 0);
  if (Status s = load_start_state(); !s.ok()) return s;
  if (slots_ == 1) {
    // Room for no checkpoint but the start state's: the image becomes
    // checkpoint 0 and nothing is applied while adding (image_ null).
    ix.checkpoints_.push_back(Index::Checkpoint{ix.start_epoch_, image_});
    ix.running_image_ = false;
    image_ = nullptr;
    return Status::OK();
  }
  return add_checkpoint(ix.start_epoch_);
}

// The state at start_epoch(): zeros, or for a recording that began on a
// running bus its first complete snapshot, fixed up by the streaming State.
Status IndexBuilder::load_start_state() {
  Index& ix = *ix_;
  if (ix.start_epoch_ == 0) return Status::OK();
  State st(rec_);
  if (Status s = st.seek(ix.start_epoch_); !s.ok()) return s;
  for (PageId p = 0; p < st.page_count(); ++p) {
    std::span<const std::byte> b = st.page(p);
    std::memcpy(image_ + ix.page_offset_[p], b.data(), b.size());
    // Versions from start_epoch() on count the deltas after it.
    ix.base_version_[p] = st.version(p);
  }
  return Status::OK();
}

Status IndexBuilder::add_checkpoint(Epoch epoch) {
  Index& ix = *ix_;
  Result<std::byte*> mem = ix.arena_.allocate(std::max<uint64_t>(1, ix.state_bytes_));
  if (!mem.ok()) return mem.status();
  std::memcpy(*mem, image_, ix.state_bytes_);
  ix.checkpoints_.push_back(Index::Checkpoint{epoch, *mem});
  since_checkpoint_ = 0;
  bytes_since_ = 0;
  return Status::OK();
}

Status IndexBuilder::add(const format::BatchReader& batch) {
  Index& ix = *ix_;
  const Epoch last = rec_.last_epoch();
  for (uint32_t i = 0; i < batch.count(); ++i) {
    const DeltaView d = batch.delta(i);
    if (d.epoch > last) break;
    ix.deltas_.push_back(
        Index::Rec{d.page, static_cast<uint32_t>(d.ranges.size()), ix.ranges_.size(), ix.bytes_.size(), d.cause});
    ix.ranges_.insert(ix.ranges_.end(), d.ranges.begin(), d.ranges.end());
    ix.bytes_.insert(ix.bytes_.end(), d.bytes.begin(), d.bytes.end());
    ++page_counts_[d.page];
    if (d.epoch <= ix.start_epoch_ || !image_) continue;  // in the start state, or no checkpoints to take
    apply_unchecked(image_ + ix.page_offset_[d.page], d);
    bytes_since_ += d.bytes.size();
    if ((++since_checkpoint_ == ix.interval_ || bytes_since_ >= interval_bytes_) && ix.checkpoints_.size() < slots_ &&
        d.epoch < last)
      if (Status s = add_checkpoint(d.epoch); !s.ok()) return s;
  }
  if (options_.progress) options_.progress(ix.deltas_.size(), rec_.delta_count());
  if (options_.cancel && options_.cancel->load(std::memory_order_relaxed))
    return Status(Code::kFailedPrecondition, "reading " + rec_.dir().string() + " was cancelled");
  return Status::OK();
}

Result<std::unique_ptr<Index>> IndexBuilder::finish(Status damage) {
  Index& ix = *ix_;
  const auto& pages = rec_.pages();
  if (damage.ok() && ix.deltas_.size() != rec_.delta_count())
    return Status(Code::kCorruption, rec_.dir().string() + ": the delta frames hold " +
                                         std::to_string(ix.deltas_.size()) + " deltas, the index promised " +
                                         std::to_string(rec_.delta_count()));
  ix.damage_ = std::move(damage);
  ix.ranges_.shrink_to_fit();
  ix.bytes_.shrink_to_fit();

  // Per-page epoch lists (CSR), in epoch order.
  ix.page_begin_.assign(pages.size() + 1, 0);
  for (size_t p = 0; p < pages.size(); ++p) ix.page_begin_[p + 1] = ix.page_begin_[p] + page_counts_[p];
  ix.page_epochs_.resize(ix.deltas_.size());
  std::vector<uint64_t> fill(ix.page_begin_.begin(), ix.page_begin_.end() - 1);
  for (uint64_t i = 0; i < ix.deltas_.size(); ++i) ix.page_epochs_[fill[ix.deltas_[i].page]++] = ix.first_epoch_ + i;

  // Children by cause epoch (CSR keyed by the sorted distinct causes).
  std::vector<std::pair<Epoch, Epoch>> links;  // (cause, derived)
  for (uint64_t i = 0; i < ix.deltas_.size(); ++i)
    if (ix.deltas_[i].cause != kNoCause) links.emplace_back(ix.deltas_[i].cause, ix.first_epoch_ + i);
  std::stable_sort(links.begin(), links.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < links.size(); ++i) {
    if (i == 0 || links[i].first != links[i - 1].first) {
      ix.child_causes_.push_back(links[i].first);
      ix.child_begin_.push_back(i);
    }
    ix.child_epochs_.push_back(links[i].second);
  }
  ix.child_begin_.push_back(links.size());
  return std::move(ix_);
}

uint64_t Index::memory_bytes() const noexcept {
  return deltas_.capacity() * sizeof(Rec) + ranges_.capacity() * sizeof(Range) + bytes_.capacity() +
         page_epochs_.capacity() * sizeof(Epoch) + (checkpoints_.size() + (running_image_ ? 1 : 0)) * state_bytes_;
}

DeltaView Index::raw(uint64_t i) const noexcept {
  const Rec& r = deltas_[i];
  const uint64_t byte_end = i + 1 < deltas_.size() ? deltas_[i + 1].byte_begin : bytes_.size();
  return DeltaView{r.page,
                   0,
                   first_epoch_ + i,
                   r.cause,
                   {ranges_.data() + r.range_begin, r.range_count},
                   {bytes_.data() + r.byte_begin, byte_end - r.byte_begin}};
}

uint64_t Index::apply_cost(Epoch from, Epoch to) const noexcept {
  // Bytes of the deltas with epoch <= e: where delta e + 1's bytes begin.
  auto bytes_through = [&](Epoch e) -> uint64_t {
    if (deltas_.empty() || e < first_epoch_) return 0;
    const uint64_t next = e - first_epoch_ + 1;
    return next < deltas_.size() ? deltas_[next].byte_begin : bytes_.size();
  };
  if (to <= from) return 0;
  return bytes_through(to) - bytes_through(from) + 256 * (to - from);
}

DeltaInfo Index::info(uint64_t i) const noexcept {
  const DeltaView v = raw(i);
  return DeltaInfo{v.epoch, v.page, version_at(v.page, v.epoch), v.cause, v.ranges, v.bytes};
}

std::optional<DeltaInfo> Index::delta(Epoch epoch) const noexcept {
  if (deltas_.empty() || epoch < first_epoch_ || epoch > last_epoch()) return std::nullopt;
  return info(epoch - first_epoch_);
}

std::span<const Epoch> Index::page_epochs(PageId page) const noexcept {
  if (page >= page_offset_.size()) return {};
  return {page_epochs_.data() + page_begin_[page], page_begin_[page + 1] - page_begin_[page]};
}

std::vector<DeltaInfo> Index::history(PageId page, Epoch from, Epoch to) const {
  std::vector<DeltaInfo> out;
  std::span<const Epoch> es = page_epochs(page);
  for (auto it = std::lower_bound(es.begin(), es.end(), from); it != es.end() && *it <= to; ++it)
    out.push_back(info(*it - first_epoch_));
  return out;
}

bool Index::writes(uint64_t i, uint64_t offset) const noexcept {
  const Rec& r = deltas_[i];
  const Range* rs = ranges_.data() + r.range_begin;
  // Ranges are sorted and disjoint: the last one starting at or before offset.
  const Range* hit = std::upper_bound(rs, rs + r.range_count, offset,
                                      [](uint64_t o, const Range& x) { return o < x.offset; });
  return hit != rs && offset < (hit - 1)->end();
}

std::optional<DeltaInfo> Index::last_writer(PageId page, uint64_t offset, Epoch epoch) const {
  return find_last_writer(page, offset, epoch, UINT64_MAX).writer;
}

std::optional<DeltaInfo> Index::next_writer(PageId page, uint64_t offset, Epoch epoch, uint64_t max_deltas) const {
  return find_next_writer(page, offset, epoch, max_deltas).writer;
}

WriterSearch Index::find_last_writer(PageId page, uint64_t offset, Epoch epoch, uint64_t max_deltas) const {
  return find_writer(page, offset, epoch, max_deltas, /*forward=*/false);
}

WriterSearch Index::find_next_writer(PageId page, uint64_t offset, Epoch epoch, uint64_t max_deltas) const {
  return find_writer(page, offset, epoch, max_deltas, /*forward=*/true);
}

// The page's deltas after `epoch` in epoch order (forward), or those at or
// before it newest first, until one writes `offset` or max_deltas were seen.
WriterSearch Index::find_writer(PageId page, uint64_t offset, Epoch epoch, uint64_t max_deltas, bool forward) const {
  WriterSearch r;
  std::span<const Epoch> es = page_epochs(page);
  const size_t after = static_cast<size_t>(std::upper_bound(es.begin(), es.end(), epoch) - es.begin());
  const size_t n = forward ? es.size() - after : after;  // deltas in the search's direction
  for (size_t k = 0; k < n; ++k) {
    if (r.looked == max_deltas) {
      r.stopped = true;
      break;
    }
    const Epoch e = es[forward ? after + k : after - 1 - k];
    ++r.looked;
    r.last_looked = e;
    if (writes(e - first_epoch_, offset)) {
      r.writer = info(e - first_epoch_);
      break;
    }
  }
  return r;
}

uint64_t Index::count_between(PageId page, Epoch from, Epoch to) const noexcept {
  if (to <= from) return 0;
  std::span<const Epoch> es = page_epochs(page);
  return std::upper_bound(es.begin(), es.end(), to) - std::upper_bound(es.begin(), es.end(), from);
}

std::optional<Epoch> Index::next_change(PageId page, Epoch after) const noexcept {
  std::span<const Epoch> es = page_epochs(page);
  auto it = std::upper_bound(es.begin(), es.end(), after);
  if (it == es.end()) return std::nullopt;
  return *it;
}

std::optional<Epoch> Index::prev_change(PageId page, Epoch before) const noexcept {
  std::span<const Epoch> es = page_epochs(page);
  auto it = std::lower_bound(es.begin(), es.end(), before);
  if (it == es.begin()) return std::nullopt;
  return *(it - 1);
}

uint32_t Index::page_count_at(Epoch epoch) const noexcept {
  const auto& pages = rec_.pages();
  auto it = std::upper_bound(pages.begin(), pages.end(), epoch, [](Epoch e, const PageMeta& p) { return e < p.created; });
  return static_cast<uint32_t>(it - pages.begin());
}

Version Index::version_at(PageId page, Epoch epoch) const noexcept {
  if (page >= page_offset_.size() || epoch < start_epoch_) return 0;
  return base_version_[page] + count_between(page, start_epoch_, epoch);
}

const Index::Checkpoint& Index::checkpoint_before(Epoch epoch) const noexcept {
  auto it = std::upper_bound(checkpoints_.begin(), checkpoints_.end(), epoch,
                             [](Epoch e, const Checkpoint& c) { return e < c.epoch; });
  return *(it - 1);  // checkpoint 0 is at start_epoch_ <= epoch
}

void Index::apply_window(PageId page, Epoch after, Epoch upto, uint64_t w0, std::span<std::byte> out) const {
  const uint64_t w1 = w0 + out.size();
  std::span<const Epoch> es = page_epochs(page);
  for (auto it = std::upper_bound(es.begin(), es.end(), after); it != es.end() && *it <= upto; ++it) {
    const DeltaView v = raw(*it - first_epoch_);
    uint64_t at = 0;  // where range r's bytes begin in v.bytes
    for (const Range& r : v.ranges) {
      const uint64_t s = std::max<uint64_t>(r.offset, w0), e = std::min<uint64_t>(r.end(), w1);
      if (s < e) std::memcpy(out.data() + (s - w0), v.bytes.data() + at + (s - r.offset), e - s);
      at += r.length;
    }
  }
}

void Index::page_window(PageId page, Epoch epoch, uint64_t w0, uint64_t w1, std::vector<std::byte>* out) const {
  const Checkpoint& c = checkpoint_before(epoch);
  const std::byte* base = c.image + page_offset_[page];
  out->assign(base + w0, base + w1);
  apply_window(page, c.epoch, epoch, w0, *out);
}

Status Index::check_range(PageId page, Epoch epoch, uint64_t offset, uint64_t length) const {
  if (epoch < start_epoch_ || epoch > last_epoch())
    return Status(Code::kOutOfRange, "epoch " + std::to_string(epoch) + " is outside the recording (" +
                                         epoch_range(*this) + ")");
  if (page >= page_count_at(epoch))
    return Status(Code::kOutOfRange, "page " + std::to_string(page) + " does not exist at epoch " +
                                         std::to_string(epoch) + " (" + std::to_string(page_count_at(epoch)) +
                                         " pages then)");
  const uint64_t size = rec_.pages()[page].size;
  if (offset > size || length > size - offset)
    return Status(Code::kOutOfRange, "bytes " + std::to_string(offset) + "+" + std::to_string(length) +
                                         " run past the end of page " + std::to_string(page) + " (" +
                                         std::to_string(size) + " bytes)");
  return Status::OK();
}

Status Index::page_range(PageId page, Epoch epoch, uint64_t offset, uint64_t length,
                         std::vector<std::byte>* out) const {
  if (Status s = check_range(page, epoch, offset, length); !s.ok()) return s;
  page_window(page, epoch, offset, offset + length, out);
  return Status::OK();
}

Status Index::page_range_after(PageId page, Epoch from, std::span<const std::byte> known, Epoch epoch,
                               uint64_t offset, std::vector<std::byte>* out) const {
  if (Status s = check_range(page, epoch, offset, known.size()); !s.ok()) return s;
  // The known bytes serve when they are of the page at an epoch no later,
  // and no earlier than the checkpoint page_range would start from.
  if (from > epoch || from < checkpoint_before(epoch).epoch || page >= page_count_at(from)) {
    page_window(page, epoch, offset, offset + known.size(), out);
    return Status::OK();
  }
  if (known.data() != out->data() || known.size() != out->size()) out->assign(known.begin(), known.end());
  apply_window(page, from, epoch, offset, *out);
  return Status::OK();
}

Status Index::page_at(PageId page, Epoch epoch, std::vector<std::byte>* out) const {
  const uint64_t size = page < rec_.pages().size() ? rec_.pages()[page].size : 0;
  return page_range(page, epoch, 0, size, out);
}

Result<PageDiff> Index::diff_page(PageId page, Epoch a, Epoch b) const {
  PageDiff d;
  d.page = page;
  const Epoch hi = std::max(a, b);
  if (page >= page_count_at(hi) && page >= page_count_at(std::min(a, b)))
    return Status(Code::kOutOfRange, "page " + std::to_string(page) + " does not exist at epoch " + std::to_string(a) +
                                         " or " + std::to_string(b));
  // Both sides over bytes [w0, w1) of the page, compared below.
  std::vector<std::byte> old_bytes, new_bytes;
  uint64_t w0 = 0;
  const Epoch lo = std::min(a, b);
  if (page < page_count_at(lo) && lo >= start_epoch_ && hi <= last_epoch()) {
    // The page exists at both epochs: only bytes its deltas in (lo, hi]
    // wrote can differ, so both sides are built over their extent alone
    // (a few bytes of a 4 GiB page cost a few bytes).
    d.old_version = version_at(page, a);
    d.new_version = version_at(page, b);
    uint64_t w1 = 0;
    w0 = UINT64_MAX;
    std::span<const Epoch> es = page_epochs(page);
    for (auto it = std::upper_bound(es.begin(), es.end(), lo); it != es.end() && *it <= hi; ++it) {
      const DeltaView v = raw(*it - first_epoch_);
      if (v.ranges.empty()) continue;
      w0 = std::min<uint64_t>(w0, v.ranges.front().offset);
      w1 = std::max<uint64_t>(w1, v.ranges.back().end());
    }
    if (w0 >= w1) return d;  // untouched in between: equal
    page_window(page, a, w0, w1, &old_bytes);
    page_window(page, b, w0, w1, &new_bytes);
  } else {
    // The page is missing at one epoch (compared with zeros), or an epoch is
    // out of range (page_at's error): whole pages.
    auto load = [&](Epoch e, std::vector<std::byte>* out, Version* v, bool* missing) -> Status {
      if (page >= page_count_at(e)) {
        if (e < start_epoch_ || e > last_epoch()) return page_at(page, e, out);  // the range error
        out->assign(rec_.pages()[page].size, std::byte{0});
        *missing = true;
        return Status::OK();
      }
      *v = version_at(page, e);
      return page_at(page, e, out);
    };
    bool old_missing = false, new_missing = false;
    if (Status s = load(a, &old_bytes, &d.old_version, &old_missing); !s.ok()) return s;
    if (Status s = load(b, &new_bytes, &d.new_version, &new_missing); !s.ok()) return s;
    d.created = old_missing && !new_missing;
  }
  Delta runs;
  if (Status s = diff_into(old_bytes, new_bytes, runs); !s.ok()) return s;
  d.ranges = std::move(runs.ranges);
  d.new_bytes = std::move(runs.bytes);
  d.old_bytes.reserve(d.new_bytes.size());
  for (Range& r : d.ranges) {
    d.old_bytes.insert(d.old_bytes.end(), old_bytes.begin() + r.offset, old_bytes.begin() + r.end());
    r.offset += static_cast<uint32_t>(w0);  // window -> page offsets
  }
  return d;
}

Result<std::vector<PageDiff>> Index::diff(Epoch a, Epoch b) const {
  for (Epoch e : {a, b})
    if (e < start_epoch_ || e > last_epoch())
      return Status(Code::kOutOfRange, "epoch " + std::to_string(e) + " is outside the recording (" +
                                           epoch_range(*this) + ")");
  const Epoch lo = std::min(a, b), hi = std::max(a, b);
  std::vector<PageDiff> out;
  const uint32_t n = page_count_at(hi);
  const uint32_t existed = page_count_at(lo);
  for (PageId p = 0; p < n; ++p) {
    if (p < existed && count_between(p, lo, hi) == 0) continue;  // untouched: equal
    Result<PageDiff> d = diff_page(p, a, b);
    if (!d.ok()) return d.status();
    if (!d->ranges.empty() || d->created) out.push_back(std::move(*d));
  }
  return out;
}

std::span<const Epoch> Index::children(Epoch epoch) const noexcept {
  auto it = std::lower_bound(child_causes_.begin(), child_causes_.end(), epoch);
  if (it == child_causes_.end() || *it != epoch) return {};
  const size_t k = it - child_causes_.begin();
  return {child_epochs_.data() + child_begin_[k], child_begin_[k + 1] - child_begin_[k]};
}

CauseTree Index::caused_tree(Epoch epoch) const {
  CauseTree t;
  t.epoch = epoch;
  if (std::optional<DeltaInfo> d = delta(epoch)) t.page = d->page;
  // Causes always precede their effects, so the recursion ends.
  for (Epoch c : children(epoch)) t.children.push_back(caused_tree(c));
  return t;
}

std::vector<Epoch> Index::cause_chain(Epoch epoch) const {
  std::vector<Epoch> chain{epoch};
  // Each step goes to an earlier epoch, so the walk ends. A root cause from
  // before the recording began is still named, as the chain's last entry.
  for (std::optional<DeltaInfo> d = delta(epoch); d && d->derived() && d->cause < d->epoch; d = delta(d->cause))
    chain.push_back(d->cause);
  return chain;
}

// ---- StateView ----

StateView::StateView(const Index& index) : index_(index), arena_(size_t{64} << 20, /*huge_pages=*/true) {}

StateView::~StateView() = default;

Status StateView::seek(Epoch epoch) {
  const Index& ix = index_;
  if (epoch < ix.start_epoch() || epoch > std::max(ix.start_epoch(), ix.last_epoch()))
    return Status(Code::kOutOfRange,
                  "epoch " + std::to_string(epoch) + " is outside the recording (" + epoch_range(ix) + ")");
  if (!image_) {
    Result<std::byte*> mem = arena_.allocate(std::max<uint64_t>(1, ix.state_bytes_));
    if (!mem.ok()) return mem.status();
    image_ = *mem;
    // The start state of a recording that began at epoch 0 is all zeros, as
    // a fresh block is: pages no delta writes are never touched.
    if (ix.start_epoch_ != 0) std::memcpy(image_, ix.checkpoints_[0].image, ix.state_bytes_);
    epoch_ = ix.start_epoch();
  }
  const Index::Checkpoint& c = ix.checkpoint_before(epoch);
  // Move forward unless copying the checkpoint and applying from there costs
  // less (in bytes moved; a delta's bookkeeping counts as 256 bytes).
  Epoch from = epoch_;
  if (epoch < epoch_ || ix.apply_cost(epoch_, epoch) > ix.state_bytes_ + ix.apply_cost(c.epoch, epoch)) {
    std::memcpy(image_, c.image, ix.state_bytes_);
    from = c.epoch;
  }
  // Deltas from+1 .. epoch, in epoch order.
  const Epoch lo = std::max(from + 1, ix.first_epoch_);
  for (Epoch e = lo; e <= epoch && !ix.deltas_.empty(); ++e) {
    const DeltaView d = ix.raw(e - ix.first_epoch_);
    apply_unchecked(image_ + ix.page_offset_[d.page], d);
  }
  epoch_ = epoch;
  return Status::OK();
}

std::span<const std::byte> StateView::page(PageId id) const noexcept {
  if (!image_ || id >= page_count()) return {};
  return {image_ + index_.page_offset_[id], index_.rec_.pages()[id].size};
}

uint64_t StateView::state_hash() const {
  StateHasher h;
  const uint32_t n = page_count();
  for (PageId id = 0; id < n; ++id) h.add_page(id, page(id));
  return h.digest();
}

}  // namespace mmsb::replay
