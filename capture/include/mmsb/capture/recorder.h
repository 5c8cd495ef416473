// Recorder: persists every change of a Bus into a recording directory.
//
// The application thread pays nothing beyond what Bus::apply already does:
// the recorder reads the bus's in-memory TLog through a pinned cursor on its
// own writer thread, which batches deltas column by column, compresses each
// batch with zstd and appends it as one frame to the current segment. When
// the writer falls behind by the whole TLog ring, the application waits for
// it (back-pressure): nothing is ever dropped.
//
// Crash safety. A frame reaches the file with one writev(2). After a kill -9
// at any instant the recording holds every frame written before it, whole;
// at most the last frame is torn, and readers detect and cut it by its
// checksum. What a crash can lose is bounded by the flush policy: deltas
// younger than `flush_interval` (or not yet filling a batch) that were still
// in memory. With Durability::kProcess frames survive the process dying but
// not the machine; kFsyncFlush/kFsyncSegment also survive power loss.
//
// Snapshots. Each is fuzzy: the writer copies pages in parts of about
// `snapshot_part_bytes`, each part under the bus lock at its own epoch, so the
// application is never stopped for the whole state. Readers combine a page's
// image with the deltas after its epoch (docs/FORMAT.md).
//
// Lifetime: stop() (or destroy) the Recorder before its Bus. A bus destroyed
// first stops its recorders from its destructor, so the recording still ends
// whole (every delta, the last segment's index and trailer); their flush()
// and stop() then return the recording's status. Do not call flush() or
// stop() from an event callback (the writer may need the bus lock).
//
// Errors (disk full, file size limit, permissions) stop the recording: the
// writer releases its cursor so the application runs on, and status(),
// flush() and stop() return the error. Frames written before stay readable.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "mmsb/bus.h"
#include "mmsb/status.h"

namespace mmsb::capture {

enum class Durability : uint8_t {
  kProcess,       // one writev(2) per frame: survives the process, not the machine
  kFsyncSegment,  // + fdatasync when a segment is closed
  kFsyncFlush,    // + fdatasync at every flush interval and flush()
};

struct RecorderOptions {
  std::string program;                        // "" = this process's name
  std::map<std::string, std::string> labels;  // user labels (key -> value)
  uint32_t batch_deltas = 8192;               // deltas per frame at most
  size_t batch_bytes = size_t{1} << 20;       // changed bytes per frame at most
  std::chrono::milliseconds flush_interval{100};  // oldest unwritten delta's age
  uint64_t segment_bytes = uint64_t{256} << 20;   // rotate past this size
  // A snapshot is taken once the log written since the last one reaches
  // snapshot_log_ratio x the state's size (0 = never), or after
  // snapshot_every_deltas deltas (0 = never), whichever comes first. Both
  // are checked after each pass of the writer (about every millisecond), and
  // a snapshot's parts are copied at the bus's current epoch: a writer that
  // lags the application snapshots later than the delta that made one due.
  // The default ratio 4 keeps snapshots at most about a quarter of the log
  // on incompressible data, while a seek replays at most ~4 states' worth of
  // log. Lower it for faster seeks, raise it for smaller recordings.
  double snapshot_log_ratio = 4.0;
  uint64_t snapshot_every_deltas = 0;
  // A part's copy, compression and write keep the writer from draining the
  // ring for a while; 1 MiB parts take ~1.5 ms, which the default 4 MiB ring
  // absorbs at full apply speed, so the application does not wait for them.
  size_t snapshot_part_bytes = size_t{1} << 20;
  Durability durability = Durability::kProcess;
  // zstd level. -1 (zstd's fast mode: no entropy coding of literals) keeps
  // the writer ~4x faster than level 1 on typical deltas for about 1% more
  // bytes; raise it (1..19) to trade writer speed for smaller recordings.
  int zstd_level = -1;
};

struct RecorderStats {
  uint64_t deltas = 0;          // deltas written to frames
  Epoch last_epoch = 0;         // epoch of the last delta written
  uint64_t frames = 0;          // meta, page table, delta and snapshot frames (not indexes)
  uint64_t segments = 0;
  uint64_t snapshots = 0;       // completed snapshots
  uint64_t delta_bytes = 0;     // bytes of delta frames (headers included)
  uint64_t snapshot_bytes = 0;  // bytes of snapshot frames
  uint64_t total_bytes = 0;     // every byte of every segment
  // Appends that found the TLog ring full and waited for this recorder
  // (back-pressure). Non-zero means the application paid for the writer
  // falling behind: raise BusOptions::tlog_capacity.
  uint64_t app_waits = 0;
};

class Recorder {
 public:
  // Starts recording `bus` into `dir`, which must not exist or be empty.
  // kInvalidArgument for options out of range (a zero batch, a negative or
  // over-a-day flush_interval, a negative ratio). It sets SIGXFSZ to ignored
  // when it is at its default, so that the file size limit is an error
  // (EFBIG) rather than the process's end.
  // A bus past epoch 0 gets a (fuzzy) snapshot first, from the writer thread;
  // the recording's state is known from that snapshot's last epoch on.
  static Result<std::unique_ptr<Recorder>> start(Bus& bus, const std::filesystem::path& dir,
                                                 RecorderOptions options = {});
  // stop()s; errors are then only in status(). From an event callback of its
  // bus (which holds the bus lock the writer may need) it does not wait for
  // a snapshot the writer owes: the recording then ends without it, with the
  // error in the writer's frames left open ('mmsb-replay recover' closes them).
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Returns once every delta applied before the call is in a frame (synced
  // under kFsyncFlush), or with the error that stopped the recording.
  // start(), flush() and stop() need the bus's write lock (or the writer
  // thread, which does): from one of the bus's event callbacks they return
  // kFailedPrecondition instead of deadlocking.
  Status flush();
  // Flushes, closes the last segment with its index and trailer, joins the
  // writer. Idempotent. flush(), stop(), status() and stats() may be called
  // from any thread, also concurrently, and after the bus is gone.
  Status stop();
  // OK while recording normally; the error that stopped it otherwise.
  Status status() const;
  RecorderStats stats() const;
  const std::filesystem::path& dir() const noexcept { return dir_; }

 private:
  class Writer;
  Recorder(Bus& bus, std::filesystem::path dir);
  Status finish();  // stop() without the callback check (the destructor's)

  Bus& bus_;
  std::filesystem::path dir_;
  std::unique_ptr<Writer> writer_;
  std::mutex stop_mu_;  // one finish() at a time: it joins thread_
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  BusLink link_;  // last: detaches first; a bus that goes first calls finish()
};

}  // namespace mmsb::capture
