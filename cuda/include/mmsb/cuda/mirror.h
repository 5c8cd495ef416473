// DeviceMirror: a bus's pages kept coherent in GPU memory, with a CPU path.
//
// The mirror holds every page of the bus in a *live image* in device memory
// (plain cudaMalloc) and knows the epoch it is synced to. Kernels read and
// write pages there (device_data()).
//
//   bus -> device   sync() applies every delta since the mirror's epoch in
//                   one batch: the deltas are packed into a pinned staging
//                   buffer, copied to the device in one host-to-device copy
//                   and scattered by one kernel (batch.h, layout.h). It runs
//                   on the mirror's stream: sync_async() queues, wait()
//                   waits. When many deltas fall on few bytes (W1: 100,000
//                   deltas on 1,024 pages of 4 KiB), shipping each changed
//                   page whole moves fewer bytes than its deltas and skips
//                   reading the TLog: sync() then packs the pages whose
//                   version moved instead (SyncPath). So does a mirror that
//                   fell a whole TLog ring behind (its records are gone).
//   device -> bus   Pages that kernels may change are *tracked*: the mirror
//                   also keeps their *synced image* (the page as of the last
//                   sync) on the device. writeback() diffs live against
//                   synced on the device, brings back only the differing
//                   runs and bytes, and applies them to the bus with
//                   Bus::apply() as ordinary deltas built on the version the
//                   mirror holds -- versioned, logged, recorded and
//                   propagated like any other (a page the bus changed since
//                   is refused with kConflict). The mirror does not apply its
//                   own written-back deltas again at the next sync.
//   coherence       page_hash()/state_hash() copy the pages back and hash
//                   them with the engine's XXH3 (hash.h), so they equal
//                   Bus::page_hash()/state_hash() for the same bytes;
//                   check_coherence() compares every page with the bus.
//
// Without a usable CUDA device (none, a driver too old, or a build without
// CUDA) open() falls back to the CPU path, and says why (backend()): the
// "device" is host memory and the kernels are their CPU references, so the
// API and the logic are the same on both paths.
//
// Rules: one thread uses a mirror. Call writeback() before sync() when
// kernels changed tracked pages: sync() writes the bus's new bytes into both
// images, so a device change to a byte the bus also changed is overwritten
// (the bus wins). A tracked page shipped whole keeps every other device
// change: the kernel merges it, byte by byte, with what the synced image
// held (so there a byte the bus rewrote with the value it had keeps the
// device's change). A resync (request_resync(), a failed sync, a lag with
// SyncPath::kDeltas) rewrites every byte of every page, so it drops all
// device changes not written back. A kernel's change to an untracked page
// never reaches the bus: that page stays different until the bus rewrites
// those bytes (every byte of it when a sync ships the page whole), and
// check_coherence() reports it; so does a change that track() took into the
// synced image (tracked too late), until a sync ships the page whole or
// request_resync(). Which path kAuto takes follows the volume of deltas, so
// code must not count on such changes surviving a sync: write back first,
// or ask for SyncPath::kDeltas. device_data() pointers stay valid until the
// next sync() or sync_async() (which grow the images when pages were
// created). Once its bus is destroyed, the calls that need the bus (sync(),
// sync_async(), writeback(), check_coherence()) return kFailedPrecondition;
// the device pages stay readable. Not from an event callback (sync() and
// check_coherence() take the bus's write lock, which the callback's thread
// holds: they return kFailedPrecondition there) or an update function.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mmsb/bus.h"
#include "mmsb/cuda/batch.h"
#include "mmsb/delta.h"
#include "mmsb/status.h"
#include "mmsb/types.h"

namespace mmsb::cuda {

class Device;
class DiffPlan;

// True when this build contains the CUDA code (MMSB_CUDA found nvcc).
bool built_with_cuda() noexcept;

struct DeviceInfo {
  int ordinal = 0;
  std::string name;        // "NVIDIA H100 80GB HBM3"
  int major = 0, minor = 0;  // compute capability
  uint64_t memory_bytes = 0;
  int driver_version = 0;   // e.g. 13000
  int runtime_version = 0;
  std::string describe() const;  // "CUDA device 0: NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB, driver 13.0)"
};

// Opens CUDA device `ordinal` and runs a probe kernel on it. The error says
// why there is no usable device, starting "no CUDA device: " (no driver, no
// GPU, a driver too old for this runtime, no kernel image for the GPU, or a
// build without CUDA).
Result<DeviceInfo> probe_device(int ordinal = 0);

// What sync() ships for a page the bus changed.
enum class SyncPath : uint8_t {
  // The pages whole when they weigh no more than the TLog records since the
  // last sync, and those records are many (at least 256 KiB, and at least
  // 32 bytes times the bus's page count), else the deltas. Decided per sync,
  // for the batch as a whole.
  kAuto,
  kDeltas,  // the deltas' ranges (a lagging mirror resyncs: the records are gone)
  kPages,   // every page whose version moved, whole
};

enum class Backend : uint8_t {
  kAuto,  // the CUDA device when one is usable, else the CPU path
  kCuda,  // the CUDA device or an error
  kCpu,   // the CPU path
};

struct MirrorOptions {
  Backend backend = Backend::kAuto;
  int device = 0;           // CUDA device ordinal
  bool track_all = false;   // track every page, also those created later
  // After every sync, compare each page's hash with the bus's (copies the
  // state back; for tests and debugging).
  bool verify = false;
  uint64_t reserve_bytes = 0;  // initial image capacity (it grows as needed)
  // Threads that pack a large batch (the caller's included; see batch.h);
  // 0: the CPUs the creating thread may run on (usable_cpus()), at most 16.
  unsigned pack_threads = 0;
  SyncPath sync_path = SyncPath::kAuto;
};

// Milliseconds of one step on the device: CUDA events on the GPU, the host
// clock on the CPU path.
struct StepTiming {
  double copy_ms = 0;    // host<->device copies
  double kernel_ms = 0;  // kernels
  double total_ms = 0;   // first device step to last
};

struct SyncStats {
  uint64_t deltas = 0;       // deltas applied (echoes of writebacks excluded)
  uint64_t bytes = 0;        // bytes the batch's copy ops cover in the live image
                             // (overlapping deltas counted each time; pages whole)
  uint64_t pages = 0;        // pages shipped whole (by_pages, or a resync)
  uint64_t ops = 0;          // copy ops (ranges split at 4 KiB regions)
  uint64_t batch_bytes = 0;  // bytes of the host-to-device copy
  bool resynced = false;     // a full copy
  bool by_pages = false;     // changed pages shipped whole (SyncPath), not deltas
  double pack_ms = 0;        // host: reading the TLog and packing (bus lock held)
  double read_ms = 0;        // ... of which reading the TLog into the packer's lanes
                             // (by_pages: finding the changed pages)
  uint32_t pack_threads = 0;  // threads that packed it (MirrorOptions::pack_threads)
  StepTiming device;         // host-to-device copy and scatter kernel
};

struct MirrorStats {
  uint64_t syncs = 0;  // successful sync()/sync_async() calls, and open()'s first full copy
  uint64_t deltas = 0;
  uint64_t bytes = 0;   // written into the live image by syncs
  uint64_t echoes = 0;  // written-back deltas not applied again (a resync
                        // copies everything: its pending echoes do not count)
  uint64_t resyncs = 0;
  uint64_t writebacks = 0;       // deltas written back
  uint64_t writeback_bytes = 0;  // their bytes
  SyncStats last_sync;
  StepTiming last_diff;
};

// The differing runs of some pages: for each changed page, its ranges and
// new bytes, as a delta on the version the mirror holds.
struct PageDiff {
  PageId page = kNoPage;
  Version base = 0;
  size_t first_range = 0, range_count = 0;
  size_t first_byte = 0, byte_count = 0;
};
struct DiffResult {
  std::vector<PageDiff> pages;  // changed pages only, in id order
  std::vector<Range> ranges;    // page-relative, page after page
  std::vector<std::byte> bytes;
  uint64_t compared_bytes = 0;  // page bytes compared
  DeltaView delta(size_t i) const noexcept;
  void clear() noexcept;
};

struct WritebackStats {
  uint64_t pages = 0;     // pages compared
  uint64_t changed = 0;   // pages with differing bytes
  uint64_t applied = 0;   // deltas the bus accepted
  uint64_t bytes = 0;     // their bytes
  uint64_t refused = 0;   // deltas the bus refused (e.g. kConflict)
};

class DeviceMirror {
 public:
  // Copies the bus's state at its current epoch to the device.
  static Result<std::unique_ptr<DeviceMirror>> open(Bus& bus, const MirrorOptions& options = {});
  ~DeviceMirror();  // waits for queued work
  DeviceMirror(const DeviceMirror&) = delete;
  DeviceMirror& operator=(const DeviceMirror&) = delete;

  bool on_gpu() const noexcept;
  // "CUDA device 0: ..." or "CPU path (no CUDA device: ...)".
  const std::string& backend() const noexcept { return backend_; }
  void* stream() const noexcept;  // the cudaStream_t the mirror's work runs on (null on the CPU path)

  // ---- bus -> device ----
  // Applies every delta since the mirror's epoch; returns how many.
  Result<uint64_t> sync();
  // Packs and queues the batch (holding the bus lock only while packing);
  // wait() completes it.
  Result<uint64_t> sync_async();
  Status wait();
  Epoch synced_epoch() const noexcept { return epoch_; }
  uint64_t resyncs() const noexcept { return stats_.resyncs; }
  // Makes the next sync() copy the bus's whole state into both images, as
  // after a lag, dropping every device change not written back: the way
  // back to coherence after a kernel changed a page the mirror does not
  // track (or before track() copied a kernel's change as synced).
  void request_resync() noexcept { need_resync_ = true; }

  // ---- the pages on the device ----
  uint32_t page_count() const noexcept { return static_cast<uint32_t>(pages_.size()); }
  uint64_t page_size(PageId id) const noexcept;
  Version page_version(PageId id) const noexcept;  // the version the synced image holds
  // The page in the live image: a device pointer (host memory on the CPU
  // path); null for an unknown id. Valid until the next sync()/sync_async().
  std::byte* device_data(PageId id) noexcept;
  // Copies of the live image to and from host memory (synchronous).
  Status read_page(PageId id, std::vector<std::byte>* out);
  Status write_page(PageId id, uint64_t offset, std::span<const std::byte> bytes);

  // ---- device -> bus ----
  // Keeps a synced image of the page so that writeback() can diff it. Call
  // it before kernels change the page: the synced image starts as a copy of
  // the live one.
  Status track(PageId id);
  Status track_all();  // every page, including pages created later
  bool tracked(PageId id) const noexcept;
  // Diffs live against synced on the device; applies nothing. `pages` lists
  // tracked pages, each once, in increasing id order (else kInvalidArgument).
  Status diff(std::span<const PageId> pages, DiffResult* out);
  // Diffs the pages (as diff()) and applies each changed page's runs to the
  // bus as one delta (synchronous: returns when the bus has them). Pages the
  // bus refuses keep their device changes; the first refusal is returned
  // after the others were written back.
  Status writeback(std::span<const PageId> pages, WritebackStats* stats = nullptr);
  Status writeback(PageId id, WritebackStats* stats = nullptr);
  Status writeback_all(WritebackStats* stats = nullptr);  // every tracked page

  // ---- coherence (copies back, hashes with the engine's XXH3) ----
  // The synced image of a tracked page, else the live image.
  Result<uint64_t> page_hash(PageId id);
  Result<uint64_t> state_hash();
  // Every page's bytes (as page_hash) and version equal the bus's; the
  // mirror must be synced to the bus's current epoch. Holds the bus lock.
  Status check_coherence();

  const MirrorStats& stats() const noexcept { return stats_; }

 private:
  struct Page {
    uint64_t offset;  // in the images
    uint64_t size;
    Version version;  // the bus version the synced image holds
    bool tracked;
  };
  DeviceMirror(Bus& bus, const MirrorOptions& options, std::unique_ptr<Device> device, std::string backend);
  static uint32_t flags_of(const Page& p) noexcept { return p.tracked ? kToLive | kToSynced : kToLive; }
  struct WalkLane;
  // A TLog span this long or longer is read on several threads, one lane
  // per kLaneBytes at most.
  static constexpr uint64_t kLaneBytes = uint64_t{256} << 10;
  Status read_log_locked(SyncStats* st);
  bool ship_pages_cheaper(uint64_t span);
  uint64_t find_changed_pages(uint64_t budget);
  void ship_pages_locked(SyncStats* st);
  void walk(WalkLane& w, BatchPacker::Lane& lane);
  Status add_new_pages_locked();
  Status resync_locked(SyncStats* st);
  Status ensure_synced_image();
  Status run_diff(std::span<const PageId> pages, DiffResult* out);
  Status download_state();  // the images [0, used_) into host_live_ / host_synced_
  std::span<const std::byte> host_page(const Page& p) const noexcept;

  Bus& bus_;
  BusLink link_;
  MirrorOptions options_;
  std::unique_ptr<Device> device_;
  std::string backend_;
  std::unique_ptr<BatchPacker> packer_;
  std::unique_ptr<DiffPlan> plan_;
  std::vector<Page> pages_;
  uint64_t used_ = 0;  // image bytes handed out to pages
  TLog::Cursor cursor_;
  Epoch epoch_ = 0;
  bool need_resync_ = true;    // the next sync copies everything (first sync, or after a failure)
  bool in_flight_ = false;     // a batch is queued and not waited for
  bool track_all_ = false;
  std::vector<Epoch> echoes_;  // epochs of our own written-back deltas, ascending
  std::vector<WalkLane> lanes_;  // the last sync's walk
  std::vector<PageId> changed_;  // the page path: pages whose version moved
  std::vector<uint64_t> expected_;  // verify: page hashes at the synced epoch
  bool verify_pending_ = false;
  std::vector<std::byte> host_live_, host_synced_;  // copies for hashing
  DiffResult scratch_;  // writeback's diff, reused
  MirrorStats stats_;
};

}  // namespace mmsb::cuda
