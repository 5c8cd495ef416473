#include "mmsb/bus.h"

#include <algorithm>
#include <exception>
#include <string>

#include "mmsb/diff.h"
#include "mmsb/hash.h"

namespace mmsb {

struct Bus::Slot {
  std::byte* data = nullptr;  // immutable after creation
  uint64_t size = 0;          // immutable after creation
  std::string name;
  // Guarded by mu_:
  Version version = 0;
  Epoch created = 0;
  Epoch last_epoch = 0;
  bool dirty = false;           // in dirty_
  bool has_dependents = false;  // out_edges_[id] is not empty
};

struct Bus::Edge {
  PageId source;
  UpdateFn fn;
};

namespace {

// The buses whose event callbacks (update functions) this thread is running,
// innermost last, so that re-entrant calls fail cleanly instead of
// deadlocking -- also where a callback of one bus writes another whose
// callback calls back into the first. Zero-initialized, no constructor: no
// TLS init call. initial-exec: no __tls_get_addr call on the write path (the
// library is linked into executables or loaded at startup, never dlopen'ed
// late).
#define MMSB_TLS thread_local __attribute__((tls_model("initial-exec")))
struct BusStack {
  static constexpr int kMax = 32;  // nesting deeper than this is not tracked
  const Bus* at[kMax];
  int depth;
  bool has(const Bus* b) const noexcept {
    if (depth == 0) [[likely]]
      return false;  // the write path's whole cost
    for (int i = std::min(depth, kMax); i-- > 0;)
      if (at[i] == b) return true;
    return false;
  }
};
MMSB_TLS BusStack tl_callbacks;
MMSB_TLS BusStack tl_updates;

// Marks `bus` as running callbacks (updates) on this thread for a scope; an
// exception thrown by one unwinds it too.
class Running {
 public:
  Running(BusStack& s, const Bus* bus) noexcept : s_(s) {
    if (s_.depth < BusStack::kMax) s_.at[s_.depth] = bus;
    ++s_.depth;
  }
  ~Running() { --s_.depth; }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;

 private:
  BusStack& s_;
};

std::string page_label(PageId id, const std::string& name) {
  std::string s = "page " + std::to_string(id);
  if (!name.empty()) s += " ('" + name + "')";
  return s;
}

Status unknown_page(PageId id, uint32_t count) {
  return Status(Code::kNotFound, "unknown page " + std::to_string(id) + " (the bus has " +
                                     std::to_string(count) + " pages, ids 0.." +
                                     (count ? std::to_string(count - 1) : std::string("none")) + ")");
}

}  // namespace

Bus::Bus(BusOptions options)
    : options_(std::move(options)),
      arena_(options_.arena ? std::move(options_.arena) : std::make_unique<MmapArena>()),
      chunks_(new std::atomic<Slot*>[kMaxChunks]),
      tlog_(options_.tlog_capacity) {
  for (size_t i = 0; i < kMaxChunks; ++i) chunks_[i].store(nullptr, std::memory_order_relaxed);
}

Bus::~Bus() {
  // Consumers first, while everything they may read still stands.
  std::vector<Attachment*> closing;
  {
    std::lock_guard<std::mutex> g(attach_mu_);
    closing.swap(attachments_);
  }
  for (auto it = closing.rbegin(); it != closing.rend(); ++it) (*it)->bus_closing();
  for (size_t i = 0; i < kMaxChunks; ++i) delete[] chunks_[i].load(std::memory_order_relaxed);
}

void Bus::attach(Attachment* a) {
  std::lock_guard<std::mutex> g(attach_mu_);
  attachments_.push_back(a);
}

void Bus::detach(Attachment* a) noexcept {
  std::lock_guard<std::mutex> g(attach_mu_);
  std::erase(attachments_, a);
}

BusLink::BusLink(Bus& bus, std::function<void()> on_closing) : bus_(bus), on_closing_(std::move(on_closing)) {
  bus_.attach(this);
}

BusLink::~BusLink() {
  if (!gone()) bus_.detach(this);
}

void BusLink::bus_closing() noexcept {
  if (on_closing_) on_closing_();
  gone_.store(true, std::memory_order_release);
}

Status BusLink::gone_error(const char* what) const {
  return Status(Code::kFailedPrecondition,
                std::string(what) + ": its bus was destroyed; destroy this object too (it must not outlive its bus)");
}

inline Bus::Slot* Bus::slot(PageId id) const noexcept {
  if (id >= page_count_.load(std::memory_order_acquire)) return nullptr;
  return &chunks_[id / kSlotsPerChunk].load(std::memory_order_acquire)[id % kSlotsPerChunk];
}

Status Bus::check_callable(const char* what) const {
  if (tl_callbacks.has(this)) [[unlikely]]
    return Status(Code::kFailedPrecondition,
                  std::string("Bus::") + what +
                      " called from an event callback; callbacks run with the write lock held and must "
                      "not change the bus -- note what you need and act after the call that fired it");
  return Status::OK();
}

Status Bus::check_writable(const char* what) const {
  if (!tl_callbacks.has(this) && !tl_updates.has(this)) [[likely]]
    return Status::OK();
  if (Status s = check_callable(what); !s.ok()) return s;
  return Status(Code::kFailedPrecondition,
                std::string("Bus::") + what +
                    " called from a dependency update function; write the dependent page through "
                    "UpdateContext so the delta carries its cause");
}

Status Bus::check_not_in_callback(const char* what) const {
  if (!tl_callbacks.has(this)) [[likely]]
    return Status::OK();
  return Status(Code::kFailedPrecondition,
                std::string(what) + " called from an event callback of its bus; callbacks run with the bus's write "
                                    "lock held -- call it after the call that fired the callback");
}

std::unique_lock<std::mutex> Bus::lock_writes() const { return std::unique_lock<std::mutex>(mu_); }

std::unique_lock<std::mutex> Bus::try_lock_writes() const {
  return std::unique_lock<std::mutex>(mu_, std::try_to_lock);
}

Version Bus::version_locked(PageId id) const noexcept {
  const Slot* s = slot(id);
  return s ? s->version : 0;
}

// Event callbacks run with mu_ held by their thread: reads from them need no
// (and must not take the) lock.
std::unique_lock<std::mutex> Bus::read_lock() const {
  if (tl_callbacks.has(this)) return std::unique_lock<std::mutex>();
  return std::unique_lock<std::mutex>(mu_);
}

// ---------------------------------------------------------------- pages

Result<PageId> Bus::create_page(uint64_t size, std::string_view name) {
  if (Status s = check_writable("create_page"); !s.ok()) return s;
  if (size == 0 || size > kMaxPageSize)
    return Status(Code::kInvalidArgument, "page size " + std::to_string(size) +
                                              " is out of bounds (1 byte to 4 GiB - 1)");
  if (name.size() > 4096)
    return Status(Code::kInvalidArgument, "page name of " + std::to_string(name.size()) +
                                              " bytes is too long (at most 4096)");
  // The graph's per-page vectors grow here: hold prop_mu_ too, so a running
  // propagation pass (which reads them under prop_mu_ alone) never sees it.
  std::lock_guard<std::mutex> plock(prop_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  if (!name.empty() && names_.count(std::string(name)))
    return Status(Code::kAlreadyExists, "a page named '" + std::string(name) + "' already exists (page " +
                                            std::to_string(names_.at(std::string(name))) + ")");
  const uint32_t id = page_count_.load(std::memory_order_relaxed);
  if (id >= kMaxChunks * kSlotsPerChunk)
    return Status(Code::kResourceExhausted, "the bus holds at most " +
                                                std::to_string(kMaxChunks * kSlotsPerChunk) + " pages");
  Result<std::byte*> mem = arena_->allocate(size);
  if (!mem.ok()) return mem.status();
  std::atomic<Slot*>& chunk = chunks_[id / kSlotsPerChunk];
  if (chunk.load(std::memory_order_relaxed) == nullptr)
    chunk.store(new Slot[kSlotsPerChunk], std::memory_order_release);
  Slot& s = chunk.load(std::memory_order_relaxed)[id % kSlotsPerChunk];
  s.data = *mem;
  s.size = size;
  s.name = std::string(name);
  s.created = epoch_.load(std::memory_order_relaxed);
  if (!name.empty()) names_.emplace(s.name, id);
  in_edges_.emplace_back();
  out_edges_.emplace_back();
  tlog_.append_page_created(PageCreatedView{id, size, s.created, s.name});
  page_count_.store(id + 1, std::memory_order_release);
  if (!subscribers_.empty()) {
    Event e{EventKind::kPageCreated};
    e.epoch = s.created;
    e.page = id;
    emit_locked(e);
  }
  return id;
}

Result<PageId> Bus::find(std::string_view name) const {
  auto lock = read_lock();
  auto it = names_.find(std::string(name));
  if (it == names_.end()) return Status(Code::kNotFound, "no page named '" + std::string(name) + "'");
  return it->second;
}

Result<PageInfo> Bus::info(PageId id) const {
  auto lock = read_lock();
  return info_locked(id);
}

Result<PageInfo> Bus::info_locked(PageId id) const {
  const Slot* s = slot(id);
  if (!s) return unknown_page(id, page_count());
  return PageInfo{id, s->size, s->name, s->version, s->created, s->last_epoch};
}

std::span<const std::byte> Bus::page_bytes(PageId id) const noexcept {
  const Slot* s = slot(id);
  if (!s) return {};
  return {s->data, s->size};
}

Status Bus::read(PageId id, uint64_t offset, std::span<std::byte> out) const {
  auto lock = read_lock();
  const Slot* s = slot(id);
  if (!s) return unknown_page(id, page_count());
  if (offset > s->size || out.size() > s->size - offset)
    return Status(Code::kOutOfRange, "read of " + std::to_string(out.size()) + " bytes at offset " +
                                         std::to_string(offset) + " is past the end of " +
                                         page_label(id, s->name) + " (" + std::to_string(s->size) + " bytes)");
  if (!out.empty()) std::memcpy(out.data(), s->data + offset, out.size());  // an empty span may be null
  return Status::OK();
}

Status Bus::copy_page(PageId id, std::vector<std::byte>* out) const {
  auto lock = read_lock();
  const Slot* s = slot(id);
  if (!s) return unknown_page(id, page_count());
  out->assign(s->data, s->data + s->size);
  return Status::OK();
}

// ---------------------------------------------------------------- changes

Status Bus::apply_locked(Slot& s, const DeltaView& d, Epoch cause, Epoch* epoch_out) {
  // Fast path for the common single-range delta; validate() says what is wrong.
  if (d.ranges.size() != 1 || d.ranges[0].length == 0 || d.ranges[0].end() > s.size ||
      d.bytes.size() != d.ranges[0].length) [[unlikely]] {
    if (Status v = validate(d, s.size); !v.ok()) return v;
  }
  if (d.base_version != s.version)
    return Status(Code::kConflict, page_label(d.page, s.name) + ": delta base version " +
                                       std::to_string(d.base_version) + " does not match the page version " +
                                       std::to_string(s.version) +
                                       "; nothing applied -- rebuild the delta from the current page");
  const Epoch e = epoch_.load(std::memory_order_relaxed) + 1;
  DeltaView stamped = d;
  stamped.epoch = e;
  stamped.cause = cause;
  if (TLog::delta_record_bytes(stamped) > tlog_.max_record_bytes())
    return Status(Code::kResourceExhausted,
                  page_label(d.page, s.name) + ": a delta of " + std::to_string(d.bytes.size()) + " bytes in " +
                      std::to_string(d.ranges.size()) + " ranges exceeds the in-memory TLog's record limit (" +
                      std::to_string(tlog_.max_record_bytes()) +
                      " bytes); raise BusOptions::tlog_capacity or split the change");
  apply_unchecked(s.data, d);
  s.version += 1;
  s.last_epoch = e;
  epoch_.store(e, std::memory_order_release);
  tlog_.append_delta(stamped);
  // Application changes (not derived ones: the running pass covers those)
  // schedule the page's dependents. Deferred mode remembers every changed
  // page, so an edge added before propagate() still sees the change.
  if (cause == kNoCause && !s.dirty &&
      (s.has_dependents || options_.propagation == Propagation::kDeferred)) {
    s.dirty = true;
    dirty_.push_back(d.page);
  }
  if (!subscribers_.empty()) {
    Event applied{EventKind::kDeltaApplied};
    applied.epoch = e;
    applied.page = d.page;
    applied.version = s.version;
    applied.delta = &stamped;
    emit_locked(applied);
    Event changed{EventKind::kPageChanged};
    changed.epoch = e;
    changed.page = d.page;
    changed.version = s.version;
    emit_locked(changed);
  }
  if (epoch_out) *epoch_out = e;
  return Status::OK();
}

Status Bus::write_locked(PageId id, uint64_t offset, std::span<const std::byte> values, Epoch cause,
                         Epoch* epoch_out) {
  Slot* s = slot(id);
  if (!s) return unknown_page(id, page_count());
  if (values.empty())
    return Status(Code::kInvalidArgument, page_label(id, s->name) + ": empty write at offset " +
                                              std::to_string(offset) + "; nothing to apply");
  if (offset > s->size || values.size() > s->size - offset)
    return Status(Code::kOutOfRange, "write of " + std::to_string(values.size()) + " bytes at offset " +
                                         std::to_string(offset) + " is past the end of " +
                                         page_label(id, s->name) + " (" + std::to_string(s->size) + " bytes)");
  const Range r{static_cast<uint32_t>(offset), static_cast<uint32_t>(values.size())};
  const DeltaView d{id, s->version, 0, kNoCause, std::span<const Range>(&r, 1), values};
  return apply_locked(*s, d, cause, epoch_out);
}

Status Bus::assign_locked(PageId id, std::span<const std::byte> image, Epoch cause, Epoch* epoch_out) {
  Slot* s = slot(id);
  if (!s) return unknown_page(id, page_count());
  if (image.size() != s->size)
    return Status(Code::kInvalidArgument, page_label(id, s->name) + " has " + std::to_string(s->size) +
                                              " bytes but the image to assign has " +
                                              std::to_string(image.size()));
  if (epoch_out) *epoch_out = 0;
  if (Status st = diff_into({s->data, s->size}, image, scratch_); !st.ok()) return st;
  if (scratch_.empty()) return Status::OK();
  scratch_.page = id;
  scratch_.base_version = s->version;
  return apply_locked(*s, scratch_.view(), cause, epoch_out);
}

// A consumer wants the lock (want_lock): wait here, outside the lock, until
// it has it -- bounded, so a consumer that stalls cannot stop the writers.
void Bus::step_aside() const noexcept {
  for (int i = 0; i < 20000 && lock_wanted_.load(std::memory_order_acquire) != 0; ++i) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

// True when an application write left changes for immediate propagation.
bool Bus::owes_propagation_locked() const {
  return options_.propagation == Propagation::kImmediate && !dirty_.empty();
}

// The shape of every application write: refuse re-entry, make the change
// under the lock, then -- outside it -- step aside for a consumer that wants
// the lock and run the immediate propagation the change owes.
template <class Change>
Status Bus::write_path(const char* what, Change&& change) {
  if (tl_callbacks.has(this) || tl_updates.has(this)) [[unlikely]]
    return check_writable(what);
  Status st;
  bool owed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    st = change();
    owed = owes_propagation_locked();
  }
  if (lock_wanted_.load(std::memory_order_relaxed) != 0) [[unlikely]]
    step_aside();
  if (owed && st.ok()) return propagate();
  return st;
}

Status Bus::write(PageId id, uint64_t offset, std::span<const std::byte> values, Epoch* epoch_out) {
  return write_path("write", [&] { return write_locked(id, offset, values, kNoCause, epoch_out); });
}

Status Bus::apply(const DeltaView& d, Epoch* epoch_out) {
  return write_path("apply", [&] {
    Slot* s = slot(d.page);
    return s ? apply_locked(*s, d, kNoCause, epoch_out) : unknown_page(d.page, page_count());
  });
}

Status Bus::assign(PageId id, std::span<const std::byte> image, Epoch* epoch_out) {
  return write_path("assign", [&] { return assign_locked(id, image, kNoCause, epoch_out); });
}

// ---------------------------------------------------------------- dependencies

std::span<const std::byte> UpdateContext::bytes() const { return bus_->page_bytes(page_); }
std::span<const std::byte> UpdateContext::source_bytes() const { return bus_->page_bytes(source_); }

Status UpdateContext::write(uint64_t offset, std::span<const std::byte> values) {
  if (Status s = bus_->check_callable("UpdateContext::write"); !s.ok()) return s;  // it holds mu_
  std::lock_guard<std::mutex> lock(bus_->mu_);
  Status s = bus_->write_locked(page_, offset, values, cause_, nullptr);
  if (s.ok()) ++writes_;
  return s;
}

Status UpdateContext::assign(std::span<const std::byte> image) {
  if (Status s = bus_->check_callable("UpdateContext::assign"); !s.ok()) return s;  // it holds mu_
  std::lock_guard<std::mutex> lock(bus_->mu_);
  Epoch e = 0;
  Status s = bus_->assign_locked(page_, image, cause_, &e);
  if (s.ok() && e != 0) ++writes_;
  return s;
}

bool Bus::reaches_locked(PageId from, PageId to, std::vector<PageId>* path) const {
  // Iterative DFS over out_edges_, remembering parents to rebuild the path.
  std::vector<PageId> parent(out_edges_.size(), kNoPage);
  std::vector<char> seen(out_edges_.size(), 0);
  std::vector<PageId> stack{from};
  seen[from] = 1;
  while (!stack.empty()) {
    PageId n = stack.back();
    stack.pop_back();
    if (n == to) {
      path->clear();
      for (PageId p = to; p != kNoPage; p = parent[p]) path->push_back(p);
      std::reverse(path->begin(), path->end());
      return true;
    }
    for (PageId m : out_edges_[n]) {
      if (!seen[m]) {
        seen[m] = 1;
        parent[m] = n;
        stack.push_back(m);
      }
    }
  }
  return false;
}

Status Bus::add_dependency(PageId source, PageId dependent, UpdateFn fn) {
  if (Status s = check_writable("add_dependency"); !s.ok()) return s;
  if (!fn) return Status(Code::kInvalidArgument, "add_dependency: empty update function");
  std::lock_guard<std::mutex> plock(prop_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  Slot* src = slot(source);
  if (!src) return unknown_page(source, page_count());
  if (!slot(dependent)) return unknown_page(dependent, page_count());
  const std::string edge = std::to_string(source) + " -> " + std::to_string(dependent);
  if (source == dependent)
    return Status(Code::kCycle, "dependency " + edge + " refused: a page cannot depend on itself");
  auto& ins = in_edges_[dependent];
  auto pos = std::lower_bound(ins.begin(), ins.end(), source,
                              [](const Edge& e, PageId s) { return e.source < s; });
  if (pos != ins.end() && pos->source == source)
    return Status(Code::kAlreadyExists, "dependency " + edge + " already exists; remove it first to replace it");
  std::vector<PageId> path;
  if (reaches_locked(dependent, source, &path)) {
    std::string cycle;
    for (PageId p : path) cycle += std::to_string(p) + " -> ";
    return Status(Code::kCycle, "dependency " + edge + " refused: it would close the cycle " + cycle +
                                    std::to_string(dependent));
  }
  ins.insert(pos, Edge{source, std::move(fn)});
  auto& outs = out_edges_[source];
  outs.insert(std::lower_bound(outs.begin(), outs.end(), dependent), dependent);
  src->has_dependents = true;
  return Status::OK();
}

Status Bus::remove_dependency(PageId source, PageId dependent) {
  if (Status s = check_writable("remove_dependency"); !s.ok()) return s;
  std::lock_guard<std::mutex> plock(prop_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  Slot* src = slot(source);
  if (!src) return unknown_page(source, page_count());
  if (!slot(dependent)) return unknown_page(dependent, page_count());
  auto& ins = in_edges_[dependent];
  auto pos = std::find_if(ins.begin(), ins.end(), [&](const Edge& e) { return e.source == source; });
  if (pos == ins.end())
    return Status(Code::kNotFound, "no dependency " + std::to_string(source) + " -> " + std::to_string(dependent));
  ins.erase(pos);
  auto& outs = out_edges_[source];
  outs.erase(std::find(outs.begin(), outs.end(), dependent));
  src->has_dependents = !outs.empty();
  return Status::OK();
}

size_t Bus::pending() const {
  auto lock = read_lock();
  return dirty_.size();
}

Status Bus::propagate() {
  if (Status s = check_writable("propagate"); !s.ok()) return s;
  std::lock_guard<std::mutex> plock(prop_mu_);
  Status first;
  std::vector<PageId>& changed = pass_.changed;
  for (;;) {
    changed.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      changed.swap(dirty_);  // dirty_ keeps the cleared vector's capacity
      for (PageId id : changed) slot(id)->dirty = false;
    }
    if (changed.empty()) return first;
    Status s;
    try {
      s = run_pass(changed);
    } catch (...) {
      // An event callback threw (they must not): the pages stay owed to the
      // next propagate(); their dependents recompute then.
      std::lock_guard<std::mutex> lock(mu_);
      for (PageId id : changed)
        if (Slot* sl = slot(id); !sl->dirty) {
          sl->dirty = true;
          dirty_.push_back(id);
        }
      throw;
    }
    if (!s.ok() && first.ok()) first = std::move(s);
  }
}

// One propagation pass (prop_mu_ held, so the graph is stable). The pages to
// update are the transitive dependents of `changed`; they run in topological
// order, ties broken by the smaller page id (Kahn's algorithm with a min-heap).
// A page's update functions run, in source id order, for each source that
// changed before it in this pass. It touches only the pages it reaches.
Status Bus::run_pass(const std::vector<PageId>& changed) {
  PassScratch& p = pass_;
  const size_t n = out_edges_.size();
  if (p.is_changed.size() < n) {  // pages were created: grow (zeroed) once
    p.is_changed.resize(n, 0);
    p.affected.resize(n, 0);
    p.indegree.resize(n, 0);
  }
  // Every flag this pass sets is cleared when it ends, however it ends.
  struct Clear {
    PassScratch& p;
    ~Clear() {
      for (PageId id : p.touched) p.is_changed[id] = 0;
      for (PageId id : p.affected_pages) p.affected[id] = p.indegree[id] = 0;
      p.touched.clear();
      p.affected_pages.clear();
      p.stack.clear();
      p.ready.clear();
    }
  } clear{p};
  auto mark_changed = [&](PageId id) {
    if (!p.is_changed[id]) {
      p.is_changed[id] = 1;
      p.touched.push_back(id);
    }
  };
  for (PageId id : changed) {
    mark_changed(id);
    p.stack.push_back(id);
  }
  while (!p.stack.empty()) {
    const PageId s = p.stack.back();
    p.stack.pop_back();
    for (PageId d : out_edges_[s])
      if (!p.affected[d]) {
        p.affected[d] = 1;
        p.affected_pages.push_back(d);
        p.stack.push_back(d);
      }
  }
  const auto later = std::greater<PageId>();  // a min-heap: the smallest ready page first
  for (PageId d : p.affected_pages) {
    for (const Edge& e : in_edges_[d]) p.indegree[d] += p.affected[e.source];
    if (p.indegree[d] == 0) p.ready.push_back(d);
  }
  std::make_heap(p.ready.begin(), p.ready.end(), later);
  Status first;
  while (!p.ready.empty()) {
    std::pop_heap(p.ready.begin(), p.ready.end(), later);
    const PageId d = p.ready.back();
    p.ready.pop_back();
    for (const Edge& e : in_edges_[d]) {
      if (!p.is_changed[e.source]) continue;
      Epoch cause;
      {
        std::lock_guard<std::mutex> lock(mu_);
        cause = slot(e.source)->last_epoch;
        if (!subscribers_.empty()) {
          Event ev{EventKind::kDependencyTriggered};
          ev.epoch = epoch_.load(std::memory_order_relaxed);
          ev.page = d;
          ev.version = slot(d)->version;
          ev.source = e.source;
          ev.cause = cause;
          emit_locked(ev);
        }
      }
      UpdateContext ctx(this, d, e.source, cause);
      Status s;
      {
        Running running(tl_updates, this);
        // An exception is this update's failure, not the end of the pass:
        // the other dependents still update.
        try {
          s = e.fn(ctx);
        } catch (const std::exception& x) {
          s = Status(Code::kFailedPrecondition, std::string("the update function threw: ") + x.what());
        } catch (...) {
          s = Status(Code::kFailedPrecondition, "the update function threw a non-std::exception");
        }
      }
      if (!s.ok() && first.ok())
        first = Status(s.code(), "update of page " + std::to_string(d) + " from page " + std::to_string(e.source) +
                                     " (cause epoch " + std::to_string(cause) + ") failed: " + s.message());
      if (ctx.writes() > 0) mark_changed(d);
    }
    for (PageId m : out_edges_[d])
      if (p.affected[m] && --p.indegree[m] == 0) {
        p.ready.push_back(m);
        std::push_heap(p.ready.begin(), p.ready.end(), later);
      }
  }
  return first;
}

// ---------------------------------------------------------------- events

void Bus::emit_locked(const Event& e) {
  Running running(tl_callbacks, this);
  for (const Subscriber& s : subscribers_)
    if (s.kinds & mask_of(e.kind)) s.fn(e);
}

Result<SubscriptionId> Bus::subscribe(uint32_t kinds, EventCallback cb) {
  if (Status s = check_callable("subscribe"); !s.ok()) return s;
  if (!cb) return Status(Code::kInvalidArgument, "subscribe: empty callback");
  if ((kinds & kAllEvents) == 0)
    return Status(Code::kInvalidArgument, "subscribe: no event kind selected (mask " + std::to_string(kinds) + ")");
  std::lock_guard<std::mutex> lock(mu_);
  const SubscriptionId id = next_subscription_++;
  subscribers_.push_back(Subscriber{id, kinds, std::move(cb)});
  return id;
}

Status Bus::unsubscribe(SubscriptionId id) {
  if (Status s = check_callable("unsubscribe"); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(subscribers_.begin(), subscribers_.end(), [&](const Subscriber& s) { return s.id == id; });
  if (it == subscribers_.end()) return Status(Code::kNotFound, "no subscription " + std::to_string(id));
  subscribers_.erase(it);
  return Status::OK();
}

// ---------------------------------------------------------------- state

uint64_t Bus::page_hash(PageId id) const {
  auto lock = read_lock();
  const Slot* s = slot(id);
  return s ? hash_bytes({s->data, s->size}) : 0;
}

uint64_t Bus::state_hash() const {
  auto lock = read_lock();
  StateHasher h;
  const uint32_t n = page_count();
  for (PageId id = 0; id < n; ++id) {
    const Slot* s = slot(id);
    h.add_page(id, {s->data, s->size});
  }
  return h.digest();
}

}  // namespace mmsb
