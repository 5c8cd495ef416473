// The Bus: pages of raw bytes, versioned deltas, the in-memory TLog, the
// dependency graph and events.
//
// Threading contract
//   - Every mutating call (create_page, write, apply, propagate, dependency and
//     subscription changes) may come from any thread. Writes are serialized by
//     one lock into a single epoch order.
//   - read(), copy_page(), info() and state_hash() take the same lock: they see
//     a page between two deltas, never half of one.
//   - page_bytes() returns the page's memory without locking. The span stays
//     valid for the bus's lifetime (page memory never moves), but its contents
//     are only stable while no other thread writes the page.
//   - Event callbacks run on the writing thread, with the lock held, in epoch
//     order. They may call the reading methods (info, find, read, copy_page,
//     page_bytes, the hashes); mutating methods return kFailedPrecondition
//     instead of deadlocking. That holds across buses too: a callback of
//     bus A may write bus B, whose callbacks may then read A but not write it.
//     Callbacks must not throw: an exception leaves the call that fired the
//     event (whose change is already applied) and skips later subscribers;
//     the bus stays usable.
//   - Dependency update functions run without the lock, one propagation at a
//     time. They write their dependent page through UpdateContext only; the
//     bus's mutating methods (write, apply, assign, create_page, propagate,
//     dependency changes) return kFailedPrecondition from inside them. An
//     update function that throws has failed: propagate() returns
//     kFailedPrecondition with the exception's what(), and the pass goes on.
//   - create_page() and dependency changes wait for a running propagation.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mmsb/arena.h"
#include "mmsb/delta.h"
#include "mmsb/status.h"
#include "mmsb/tlog.h"
#include "mmsb/types.h"

namespace mmsb {

class Bus;

enum class Propagation : uint8_t {
  kImmediate,  // dependents update before write()/apply() returns
  kDeferred,   // changes accumulate until propagate(); several coalesce
};

struct BusOptions {
  // The TLog ring. 4 MiB is larger than a core's L2 (1 MiB on the machines
  // measured): by the time the producer comes back around to a line, a
  // consumer on another core (the recorder) has let go of it, so the
  // producer's store finds it in the shared L3 rather than snooping the
  // consumer's core. With a 1 MiB ring, W1's apply loop ran ~1.4x slower
  // under a consumer that only reads the ring; with 4 MiB, ~1.05x. Pages of
  // the ring become resident only as records reach them.
  size_t tlog_capacity = size_t{4} << 20;
  Propagation propagation = Propagation::kImmediate;
  std::unique_ptr<Arena> arena;  // null: an anonymous MmapArena
};

struct PageInfo {
  PageId id = kNoPage;
  uint64_t size = 0;
  std::string name;
  Version version = 0;
  Epoch created_epoch = 0;  // bus epoch when the page was created
  Epoch last_epoch = 0;     // epoch of the last delta applied to it (0: none)
};

// ---- events ----
enum class EventKind : uint8_t {
  kPageCreated = 1 << 0,
  kDeltaApplied = 1 << 1,
  kPageChanged = 1 << 2,
  kDependencyTriggered = 1 << 3,
};
inline constexpr uint32_t kAllEvents = 0xF;
constexpr uint32_t mask_of(EventKind k) { return static_cast<uint32_t>(k); }

struct Event {
  EventKind kind;
  Epoch epoch = 0;        // bus epoch when the event happened
  PageId page = kNoPage;  // the page created / changed / to be updated
  Version version = 0;    // page version after the change
  const DeltaView* delta = nullptr;  // kDeltaApplied: the stamped delta
  PageId source = kNoPage;           // kDependencyTriggered: the changed page
  Epoch cause = kNoCause;            // kDependencyTriggered: its last delta
};
using EventCallback = std::function<void(const Event&)>;
using SubscriptionId = uint64_t;

// ---- dependencies ----
// What an update function sees: the dependent page it maintains, the source
// page whose change fired it, and the epoch of the source's last delta. Every
// delta written through the context carries that epoch as its cause.
class UpdateContext {
 public:
  PageId page() const noexcept { return page_; }
  PageId source() const noexcept { return source_; }
  Epoch cause() const noexcept { return cause_; }
  Bus& bus() const noexcept { return *bus_; }
  // The dependent and the source page's memory, unlocked like page_bytes():
  // stable only while no other thread writes those pages. Where other
  // threads do, read the source with bus().copy_page(source(), &copy).
  std::span<const std::byte> bytes() const;         // the dependent page
  std::span<const std::byte> source_bytes() const;  // the source page
  // Writes `values` at `offset` of the dependent page.
  Status write(uint64_t offset, std::span<const std::byte> values);
  // Replaces the dependent page's contents by `image` (its full size),
  // writing only the bytes that differ; nothing when they are all equal.
  Status assign(std::span<const std::byte> image);
  // Number of deltas written through this context.
  uint32_t writes() const noexcept { return writes_; }
  // Valid during the update function's call only: not copied, not kept.
  UpdateContext(const UpdateContext&) = delete;
  UpdateContext& operator=(const UpdateContext&) = delete;

 private:
  friend class Bus;
  UpdateContext(Bus* bus, PageId page, PageId source, Epoch cause)
      : bus_(bus), page_(page), source_(source), cause_(cause) {}
  Bus* bus_;
  PageId page_, source_;
  Epoch cause_;
  uint32_t writes_ = 0;
};
using UpdateFn = std::function<Status(UpdateContext&)>;

class Bus {
 public:
  explicit Bus(BusOptions options = {});
  ~Bus();
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  // ---- pages ----
  // A zero-filled page. Names are optional and unique ("" = unnamed).
  Result<PageId> create_page(uint64_t size = kDefaultPageSize, std::string_view name = {});
  Result<PageId> find(std::string_view name) const;
  Result<PageInfo> info(PageId id) const;
  uint32_t page_count() const noexcept { return page_count_.load(std::memory_order_acquire); }
  // Unlocked view of a page's memory (see the threading contract); empty span
  // for an unknown id.
  std::span<const std::byte> page_bytes(PageId id) const noexcept;
  // Consistent copies (locked).
  Status read(PageId id, uint64_t offset, std::span<std::byte> out) const;
  Status copy_page(PageId id, std::vector<std::byte>* out) const;

  // ---- changes ----
  Epoch epoch() const noexcept { return epoch_.load(std::memory_order_acquire); }
  // Writes `values` at `offset` as one delta on top of the current version.
  Status write(PageId id, uint64_t offset, std::span<const std::byte> values,
               Epoch* epoch_out = nullptr);
  // In immediate mode, write()/apply()/assign() also run the propagation the
  // change fired; an update function's error is then returned by the write
  // (which itself stays applied; *epoch_out is set).
  //
  // Applies a delta built by the caller. Its epoch and cause fields are
  // ignored: the bus stamps them. kConflict if d.base_version is not the
  // page's version; on any error nothing changes.
  Status apply(const DeltaView& d, Epoch* epoch_out = nullptr);
  // Diffs `image` (the page's full size) against the page and applies the
  // difference; no delta when nothing differs (*epoch_out is then 0).
  Status assign(PageId id, std::span<const std::byte> image, Epoch* epoch_out = nullptr);

  // ---- dependency graph ----
  // `dependent` is recomputed by `fn` whenever `source` changes. kCycle if the
  // edge would close a cycle, kAlreadyExists for a duplicate edge.
  Status add_dependency(PageId source, PageId dependent, UpdateFn fn);
  Status remove_dependency(PageId source, PageId dependent);
  // Runs the update functions of every page that depends (transitively) on a
  // page changed since the last propagation, in topological order, ties by
  // page id. Immediate mode calls it from write()/apply(). Returns the first
  // error an update function returned (the pass still runs the others).
  Status propagate();
  // Pages changed by the application and not yet propagated (deferred mode:
  // every changed page; immediate mode: none once a write has returned).
  size_t pending() const;

  // ---- events ----
  Result<SubscriptionId> subscribe(uint32_t kinds, EventCallback cb);
  Status unsubscribe(SubscriptionId id);

  // ---- state ----
  uint64_t page_hash(PageId id) const;  // 0 for an unknown page
  uint64_t state_hash() const;

  // ---- for TLog consumers (mirrors, the recorder) ----
  TLog& tlog() noexcept { return tlog_; }
  // kFailedPrecondition (naming `what`) when this thread is running one of
  // this bus's event callbacks, which hold the write lock: a consumer calls
  // it before lock_writes() or before waiting on a thread that needs the
  // lock, so a call from a callback fails instead of deadlocking.
  Status check_not_in_callback(const char* what) const;
  // Holds the write lock: no delta is applied while the lock lives. Unpinned
  // TLog cursors read under it; a consumer also uses it to open a cursor and
  // copy the state at one exact epoch.
  std::unique_lock<std::mutex> lock_writes() const;
  // Does not wait: the lock is not owned when another thread holds it.
  std::unique_lock<std::mutex> try_lock_writes() const;
  // A consumer that must not block on the lock (a pinned TLog reader) but
  // needs it while writers are busy raises want_lock(true): writers then
  // pause between deltas, outside the lock, until it is lowered, so
  // try_lock_writes() succeeds within a delta or two. Lower it once the lock
  // is held (or given up).
  void want_lock(bool on) noexcept { lock_wanted_.fetch_add(on ? 1 : -1, std::memory_order_acq_rel); }
  // Consumers that keep a reference to the bus (the recorder, mirrors) are
  // told when it goes: the destructor calls bus_closing() on each one still
  // attached, newest first, while the bus is still whole (its state, TLog
  // and lock work; nothing may change it then). After that call a consumer
  // must not touch the bus again. A consumer detaches itself when it goes
  // first.
  class Attachment {
   public:
    virtual void bus_closing() noexcept = 0;

   protected:
    ~Attachment() = default;
  };
  void attach(Attachment* a);
  void detach(Attachment* a) noexcept;
  // info() for a caller that already holds lock_writes().
  Result<PageInfo> info_locked(PageId id) const;
  // The page's version (0 for an unknown page), for a caller holding the lock.
  Version version_locked(PageId id) const noexcept;

 private:
  friend class UpdateContext;
  struct Edge;
  struct Slot;
  struct Subscriber {
    SubscriptionId id;
    uint32_t kinds;
    EventCallback fn;
  };

  Slot* slot(PageId id) const noexcept;
  std::unique_lock<std::mutex> read_lock() const;
  Status check_callable(const char* what) const;  // not from an event callback
  Status check_writable(const char* what) const;  // ... nor an update function
  Status apply_locked(Slot& s, const DeltaView& d, Epoch cause, Epoch* epoch_out);
  Status write_locked(PageId id, uint64_t offset, std::span<const std::byte> values, Epoch cause,
                      Epoch* epoch_out);
  Status assign_locked(PageId id, std::span<const std::byte> image, Epoch cause, Epoch* epoch_out);
  bool owes_propagation_locked() const;
  template <class Change>
  Status write_path(const char* what, Change&& change);
  void step_aside() const noexcept;
  void emit_locked(const Event& e);
  Status run_pass(const std::vector<PageId>& changed);
  bool reaches_locked(PageId from, PageId to, std::vector<PageId>* path) const;

  static constexpr size_t kSlotsPerChunk = 1024;
  static constexpr size_t kMaxChunks = 16384;  // 16M pages

  alignas(64) std::atomic<int> lock_wanted_{0};  // see want_lock()
  BusOptions options_;
  std::unique_ptr<Arena> arena_;
  mutable std::mutex mu_;      // the write lock
  std::mutex prop_mu_;         // one propagation at a time; guards graph reads
  std::unique_ptr<std::atomic<Slot*>[]> chunks_;
  std::atomic<uint32_t> page_count_{0};
  std::atomic<Epoch> epoch_{0};
  std::unordered_map<std::string, PageId> names_;
  TLog tlog_;

  // Dependency graph (guarded by mu_ and prop_mu_: either suffices to read).
  std::vector<std::vector<Edge>> in_edges_;   // by dependent, sorted by source
  std::vector<std::vector<PageId>> out_edges_;  // by source, sorted
  std::vector<PageId> dirty_;                 // changed since last propagation
  // propagate()'s scratch (prop_mu_): reused, so that a pass allocates
  // nothing once they have grown, and costs the pages it reaches, not the
  // bus's page count. The per-page flags are all clear between passes.
  struct PassScratch {
    std::vector<PageId> changed;          // the pages a pass starts from
    std::vector<char> is_changed;         // by page: changed before or in this pass
    std::vector<char> affected;           // by page: a transitive dependent of `changed`
    std::vector<uint32_t> indegree;       // by page: affected sources not yet updated
    std::vector<PageId> touched;          // pages whose is_changed is set
    std::vector<PageId> affected_pages;   // pages whose affected is set
    std::vector<PageId> stack, ready;     // the walk; a min-heap of pages ready to update
  };
  PassScratch pass_;

  std::vector<Subscriber> subscribers_;
  std::mutex attach_mu_;  // guards attachments_ (not the write lock: consumers
                          // attach and detach while a writer may hold it)
  std::vector<Attachment*> attachments_;
  Delta scratch_;  // assign()'s diff output, reused (guarded by mu_)
  SubscriptionId next_subscription_ = 1;
};

// A consumer's link to its bus (a member of the recorder and the mirrors):
// attached from construction, detached at destruction unless the bus went
// first. `on_closing` (may be empty) runs from the bus's destructor, while
// the bus is whole; gone() is true from then on, and the consumer must not
// touch the bus: gone_error() is what its calls return instead.
class BusLink final : public Bus::Attachment {
 public:
  explicit BusLink(Bus& bus, std::function<void()> on_closing = {});
  ~BusLink();
  BusLink(const BusLink&) = delete;
  BusLink& operator=(const BusLink&) = delete;

  bool gone() const noexcept { return gone_.load(std::memory_order_acquire); }
  // kFailedPrecondition: "<what>: its bus was destroyed; ..."
  Status gone_error(const char* what) const;
  void bus_closing() noexcept override;

 private:
  Bus& bus_;
  std::function<void()> on_closing_;
  std::atomic<bool> gone_{false};
};

}  // namespace mmsb
