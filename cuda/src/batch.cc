#include "mmsb/cuda/batch.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <string>
#include <thread>

#ifdef __linux__
#include <sched.h>
#endif

namespace mmsb::cuda {
namespace {

constexpr uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

std::string op_name(uint64_t i, const CopyOp& op) {
  return "op " + std::to_string(i) + " (dst " + std::to_string(op.dst) + ", src " + std::to_string(op.src) +
         ", length " + std::to_string(op.length) + ", flags " + std::to_string(op.flags) + ")";
}

}  // namespace

unsigned usable_cpus() noexcept {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return static_cast<unsigned>(CPU_COUNT(&set));
#endif
  return std::max(std::thread::hardware_concurrency(), 1u);
}

Status HostStaging::grow(size_t min_capacity, size_t keep) {
  if (min_capacity <= buf_.size()) return Status::OK();
  (void)keep;  // resize keeps every byte
  try {
    buf_.resize(std::max(min_capacity, buf_.size() * 2));
  } catch (const std::bad_alloc&) {
    return Status(Code::kResourceExhausted,
                  "CPU mirror: cannot allocate " + std::to_string(min_capacity) + " bytes of staging memory");
  }
  return Status::OK();
}

// Runs a task on the caller's thread and up to `workers` threads at once.
// Threads start on first use. A sync runs five tasks back to back, and a
// futex wake-up costs tens of microseconds (60 us per task on a 2-core VM),
// so an idle thread first spins for kSpin, polling for the next task, and then
// sleeps on a condition variable; the caller waits for the workers the same
// way. It spins only when it has no more threads than the CPUs it may run
// on: spinning threads would take the cores of those that work.
// A thread that cannot be started leaves the pool smaller.
class TaskPool {
 public:
  static constexpr std::chrono::microseconds kSpin{50};

  explicit TaskPool(unsigned workers)
      : want_(std::min<unsigned>(workers, kRunStep - 2)), spin_(workers < usable_cpus()) {}
  ~TaskPool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true, std::memory_order_relaxed);
    }
    start_cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  // Threads that can run tasks at once, the caller's included.
  size_t width() {
    while (threads_.size() < want_) {
      try {
        threads_.emplace_back([this, id = threads_.size() + 1] { work(id); });
      } catch (const std::exception&) {  // no thread (std::system_error) or no memory
        want_ = static_cast<unsigned>(threads_.size());
      }
    }
    return threads_.size() + 1;
  }
  // Runs task(ctx, i) for every i in [0, n), spread over the threads
  // (thread t runs i = t, t + threads, ...; the caller is thread 0).
  // Returns when all have returned.
  void run(size_t n, void (*task)(void*, size_t), void* ctx) {
    const size_t stride = std::min(n, threads_.size() + 1);
    if (stride > 1) {
      // task_, ctx_ and n_ are published by the release store of run_; a
      // worker of this run reads them before its decrement of pending_, and
      // the next run() writes them only after pending_ is 0.
      task_ = task;
      ctx_ = ctx;
      n_ = n;
      pending_.store(stride - 1, std::memory_order_relaxed);
      const uint64_t generation = (run_.load(std::memory_order_relaxed) >> kStrideBits) + 1;
      run_.store(generation << kStrideBits | stride, std::memory_order_release);
      std::lock_guard<std::mutex> lk(mu_);  // a sleeper checks run_ under mu_
      if (sleepers_ > 0) start_cv_.notify_all();
    }
    for (size_t i = 0; i < n; i += std::max<size_t>(stride, 1)) task(ctx, i);
    if (stride > 1 && !spin([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lk(mu_);
      caller_waits_ = true;
      done_cv_.wait(lk, [this] { return pending_.load(std::memory_order_acquire) == 0; });
      caller_waits_ = false;
    }
  }

 private:
  // Polls done() for up to kSpin (when spin_); true once it holds.
  template <class Done>
  bool spin(Done done) const {
    if (!spin_) return done();
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (;;) {
      for (int i = 0; i < 64; ++i) {
        if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (std::chrono::steady_clock::now() >= until) return done();
    }
  }

  void work(size_t id) {
    uint64_t seen = 0;  // the last run_ this worker saw
    auto fresh = [&] {
      const uint64_t now = run_.load(std::memory_order_acquire);
      return stop_.load(std::memory_order_relaxed) || now >> kStrideBits != seen >> kStrideBits;
    };
    for (;;) {
      if (!spin(fresh)) {
        std::unique_lock<std::mutex> lk(mu_);
        ++sleepers_;
        start_cv_.wait(lk, fresh);
        --sleepers_;
      }
      if (stop_.load(std::memory_order_relaxed)) return;
      seen = run_.load(std::memory_order_acquire);
      const size_t stride = seen & (kRunStep - 1);
      if (id >= stride) continue;  // not in this run: the next may start any time
      const size_t n = n_;
      for (size_t i = id; i < n; i += stride) task_(ctx_, i);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu_);  // the caller checks pending_ under mu_
        if (caller_waits_) done_cv_.notify_one();
      }
    }
  }

  // run_: (generation << kStrideBits) | stride of the last run() with
  // workers, in one word so that a worker never pairs one run's generation
  // with another's stride. A worker runs each generation at most once.
  static constexpr unsigned kStrideBits = 16;
  static constexpr uint64_t kRunStep = uint64_t{1} << kStrideBits;

  unsigned want_;
  const bool spin_;
  std::vector<std::thread> threads_;
  alignas(64) std::atomic<uint64_t> run_{0};
  std::atomic<bool> stop_{false};
  size_t n_ = 0;
  void (*task_)(void*, size_t) = nullptr;
  void* ctx_ = nullptr;
  alignas(64) std::atomic<size_t> pending_{0};  // workers still running this generation
  std::mutex mu_;  // guards sleepers_, caller_waits_ and the waits below
  std::condition_variable start_cv_, done_cv_;
  unsigned sleepers_ = 0;
  bool caller_waits_ = false;
};

BatchPacker::BatchPacker(Staging& staging, unsigned threads, uint64_t min_chunk_weight)
    : staging_(staging),
      threads_(std::max(threads, 1u)),
      min_chunk_weight_(std::max<uint64_t>(min_chunk_weight, 1)),
      lanes_(1) {}

BatchPacker::~BatchPacker() = default;

void BatchPacker::reset() noexcept {
  for (size_t k = 0; k < lane_count_; ++k) {
    lanes_[k].jobs_.clear();
    lanes_[k].bound_ = 0;
    lanes_[k].no_memory_ = false;
  }
  lane_count_ = 1;
}

bool BatchPacker::empty() const noexcept {
  for (size_t k = 0; k < lane_count_; ++k)
    if (!lanes_[k].jobs_.empty()) return false;
  return true;
}

size_t BatchPacker::width() {
  if (threads_ == 1) return 1;
  if (!pool_) pool_ = std::make_unique<TaskPool>(threads_ - 1);
  return pool_->width();
}

void BatchPacker::fill_lanes(size_t n, void (*fill)(void*, size_t, Lane&), void* ctx) {
  reset();
  n = std::max<size_t>(n, 1);
  if (lanes_.size() < n) lanes_.resize(n);
  lane_count_ = n;
  struct Ctx {
    BatchPacker* self;
    void (*fill)(void*, size_t, Lane&);
    void* ctx;
  } x{this, fill, ctx};
  auto task = [](void* p, size_t k) {
    auto* c = static_cast<Ctx*>(p);
    Lane& lane = c->self->lanes_[k];
    try {
      c->fill(c->ctx, k, lane);
    } catch (const std::bad_alloc&) {
      lane.no_memory_ = true;
    }
  };
  each(n, task, &x);
}

void BatchPacker::each(size_t n, void (*task)(void*, size_t), void* ctx) {
  if (n > 1 && width() > 1) {
    pool_->run(n, task, ctx);
  } else {
    for (size_t i = 0; i < n; ++i) task(ctx, i);
  }
}

namespace {

// Grows a chunk's op array to hold at least `need` ops, keeping the first
// `keep`. False when memory runs out.
bool grow_ops(std::unique_ptr<CopyOp[]>& ops, uint64_t& capacity, uint64_t need, uint64_t keep) noexcept {
  const uint64_t cap = std::max({need, capacity * 2, uint64_t{1024}});
  CopyOp* fresh = new (std::nothrow) CopyOp[cap];
  if (fresh == nullptr) return false;
  if (keep > 0) std::memcpy(fresh, ops.get(), keep * sizeof(CopyOp));
  ops.reset(fresh);
  capacity = cap;
  return true;
}

[[gnu::noinline]] Status outside_image(uint64_t dst, uint64_t length, uint64_t image) {
  return Status(Code::kCorruption, "mirror batch: bytes [" + std::to_string(dst) + ", " + std::to_string(dst + length) +
                                       ") lie outside the image of " + std::to_string(image) + " bytes");
}

}  // namespace

void BatchPacker::copy(Chunk& c) noexcept {
  const uint32_t batch = batch_;
  const uint64_t image = image_bytes_;
  std::byte* const base = base_;
  uint32_t* const stamp = c.stamp.data();
  uint32_t* const count = c.count.data();
  uint32_t* const touched = c.touched.data();
  uint32_t* const fill = c.fill.data();
  const uint64_t per = range_regions_;
  std::fill(c.fill.begin(), c.fill.begin() + static_cast<ptrdiff_t>(chunk_count_), 0);  // one range per chunk
  c.error = Status::OK();
  // Everything in locals: the memcpy below would make the compiler reload
  // members. A range needs at most 2 + length / 4 KiB ops.
  uint64_t blob = c.blob_at;  // 16-aligned: so blob offset == dst modulo 16 below
  CopyOp* ops = c.ops.get();
  uint64_t n = 0, cap = c.op_capacity;
  const std::vector<Job>& jobs = c.lane->jobs_;
  for (size_t i = c.first; i < c.end; ++i) {
    const Job& j = jobs[i];
    const uint64_t ranges = j.ranges != nullptr ? j.n : 1;
    const std::byte* bytes = j.bytes;
    for (uint64_t k = 0; k < ranges; ++k) {
      const uint64_t dst = j.ranges != nullptr ? j.dst + j.ranges[k].offset : j.dst;
      const uint64_t length = j.ranges != nullptr ? j.ranges[k].length : j.n;
      if (dst > image || length > image - dst) [[unlikely]] {
        c.error = outside_image(dst, length, image);
        goto done;
      }
      if (cap - n < 2 + (length >> kRegionShift)) [[unlikely]] {
        if (!grow_ops(c.ops, c.op_capacity, n + 2 + (length >> kRegionShift), n)) {
          c.error = Status(Code::kResourceExhausted, "mirror batch: cannot allocate memory for its copy ops");
          goto done;
        }
        ops = c.ops.get();
        cap = c.op_capacity;
      }
      blob += (dst - blob) & 15;
      std::memcpy(base + blob, bytes, length);
      uint64_t d = dst, src = blob, left = length;
      blob += length;
      bytes += length;
      while (left > 0) {  // one op per image region the range touches
        const uint64_t len = std::min(left, kRegionBytes - (d & (kRegionBytes - 1)));
        const uint64_t r = d >> kRegionShift;
        if (stamp[r] != batch) {
          stamp[r] = batch;
          count[r] = 0;
          const uint64_t b = r / per;  // its merge range
          touched[b * per + fill[b]++] = static_cast<uint32_t>(r);
        }
        ++count[r];
        ops[n++] = CopyOp{d, src, static_cast<uint32_t>(len), j.flags};
        d += len;
        src += len;
        left -= len;
      }
    }
  }
done:
  c.op_count = n;
  c.blob_end = blob;
}

void BatchPacker::place(Chunk& c) const noexcept {
  std::byte* const ops_out = base_ + ops_offset_;
  for (uint64_t i = 0; i < c.op_count; ++i) {
    const CopyOp& op = c.ops[i];
    const uint64_t r = op.dst >> kRegionShift;
    const uint64_t pos = uint64_t{count_[r]} + c.count[r]++;
    std::memcpy(ops_out + pos * sizeof(CopyOp), &op, sizeof op);
  }
}

void BatchPacker::run(void (*pass)(BatchPacker&, Chunk&)) {
  struct Ctx {
    BatchPacker* self;
    void (*pass)(BatchPacker&, Chunk&);
  } ctx{this, pass};
  auto task = [](void* p, size_t i) {
    auto* x = static_cast<Ctx*>(p);
    x->pass(*x->self, x->self->chunks_[i]);
  };
  each(chunk_count_, task, &ctx);
}

void BatchPacker::count_range(size_t b) noexcept {
  const uint64_t from = b * range_regions_;
  uint32_t* const mine = touched_.data() + from;  // the range's regions, first touch first
  uint64_t segments = 0, ops = 0;
  for (size_t k = 0; k < chunk_count_; ++k) {
    Chunk& c = chunks_[k];
    const uint32_t* r_at = c.touched.data() + from;
    for (uint32_t i = 0; i < c.fill[b]; ++i) {
      const uint32_t r = r_at[i];
      if (stamp_[r] != batch_) {
        stamp_[r] = batch_;
        count_[r] = 0;
        mine[segments++] = r;
      }
      const uint32_t n = c.count[r];
      c.count[r] = count_[r];  // the chunk's first slot in the segment
      count_[r] += n;
      ops += n;
    }
  }
  ranges_[b].segments = segments;
  ranges_[b].ops = ops;
}

void BatchPacker::lay_out_range(size_t b) noexcept {
  const MergeRange& range = ranges_[b];
  const uint32_t* r_at = touched_.data() + b * range_regions_;
  std::byte* out = base_ + segments_offset_ + sizeof(Segment) * range.first_segment;
  auto at = static_cast<uint32_t>(range.first_op);
  for (uint64_t i = 0; i < range.segments; ++i) {
    const uint32_t r = r_at[i];
    const Segment seg{at, count_[r]};
    std::memcpy(out, &seg, sizeof seg);
    out += sizeof seg;
    count_[r] = at;  // from now on: the segment's first op
    at += seg.count;
  }
}

Result<BatchLayout> BatchPacker::finish(uint64_t image_bytes) {
  if (++batch_ == 0) {  // the stamps wrapped: forget them all
    std::fill(stamp_.begin(), stamp_.end(), 0);
    for (Chunk& c : chunks_) std::fill(c.stamp.begin(), c.stamp.end(), 0);
    batch_ = 1;
  }
  image_bytes_ = image_bytes;
  const uint64_t regions = (image_bytes + kRegionBytes - 1) >> kRegionShift;
  if (stamp_.size() < regions) {
    stamp_.resize(regions, 0);
    count_.resize(regions, 0);
    touched_.resize(regions);
  }

  for (size_t k = 0; k < lane_count_; ++k)
    if (lanes_[k].no_memory_)
      return Status(Code::kResourceExhausted, "mirror batch: cannot allocate memory for its adds");
  // Chunks: the lanes, or pieces of a single lane of about equal weight
  // (blob bound, plus 64 per add), none lighter than min_chunk_weight_
  // unless it is the only one, at most one per thread.
  const std::vector<Job>& jobs = lanes_[0].jobs_;
  auto weight = [&jobs](size_t i) { return jobs[i].bound_end + 64 * (i + 1); };
  size_t want = lane_count_;
  if (lane_count_ == 1) {
    const uint64_t total = jobs.empty() ? 0 : weight(jobs.size() - 1);
    if (threads_ > 1 && total >= 2 * min_chunk_weight_)
      want = static_cast<size_t>(std::min<uint64_t>({width(), total / min_chunk_weight_, jobs.size()}));
  }
  if (chunks_.size() < want) chunks_.resize(want);
  chunk_count_ = want;
  // The merge splits the regions into one range per chunk.
  range_regions_ = std::max<uint64_t>((regions + want - 1) / want, 1);
  if (ranges_.size() < want) ranges_.resize(want);
  uint64_t lane_base = 0;  // blob bound of the lanes before this chunk's
  size_t first = 0;
  for (size_t k = 0; k < want; ++k) {
    Chunk& c = chunks_[k];
    if (lane_count_ > 1) {
      c.lane = &lanes_[k];
      c.first = 0;
      c.end = lanes_[k].jobs_.size();
    } else {
      size_t end = jobs.size();
      if (k + 1 < want) {  // the first job that reaches the target ends the chunk
        const uint64_t target = weight(jobs.size() - 1) / want * (k + 1);
        size_t lo = first, hi = jobs.size();
        while (lo < hi) {
          const size_t mid = lo + (hi - lo) / 2;
          if (weight(mid) < target) lo = mid + 1; else hi = mid;
        }
        end = std::min(lo + 1, jobs.size());
      }
      c.lane = &lanes_[0];
      c.first = first;
      c.end = end;
      first = end;
    }
    // Chunk k's bytes fit in [blob_at, next chunk's blob_at): they need at
    // most the jobs' bound, and 16 more per chunk covers the alignment.
    const std::vector<Job>& cj = c.lane->jobs_;
    c.blob_at = align_up(lane_base + (c.first == 0 ? 0 : cj[c.first - 1].bound_end), 16) + 16 * k;
    if (lane_count_ > 1) lane_base += c.lane->bound_;
    if (c.stamp.size() < regions) {
      c.stamp.resize(regions, 0);
      c.count.resize(regions, 0);
      c.touched.resize(regions);
    }
    if (c.fill.size() < want) c.fill.resize(want);
  }
  uint64_t bound = 0;
  for (size_t k = 0; k < lane_count_; ++k) bound += lanes_[k].bound_;

  // Pass 1: the bytes into the blob, and each chunk's ops.
  if (Status s = staging_.grow(align_up(bound, 16) + 16 * want, 0); !s.ok()) return s;
  base_ = staging_.data();
  run([](BatchPacker& p, Chunk& c) { p.copy(c); });

  // The merge, one task per range of regions (one range per chunk): each
  // region's segment size, and each chunk's first slot within it (chunk
  // order, so add order).
  uint64_t ops = 0, segments = 0;
  for (size_t k = 0; k < chunk_count_; ++k)
    if (!chunks_[k].error.ok()) return chunks_[k].error;
  each(
      chunk_count_, [](void* p, size_t b) { static_cast<BatchPacker*>(p)->count_range(b); }, this);
  for (size_t b = 0; b < chunk_count_; ++b) {  // where each range's segments and ops start
    ranges_[b].first_segment = segments;
    ranges_[b].first_op = ops;
    segments += ranges_[b].segments;
    ops += ranges_[b].ops;
  }
  if (ops > std::numeric_limits<uint32_t>::max())
    return Status(Code::kResourceExhausted, "mirror batch of " + std::to_string(ops) +
                                                " copy ops is too large (at most 2^32 - 1); sync more often");
  BatchLayout L;
  L.blob_bytes = chunks_[chunk_count_ - 1].blob_end;  // chunks lie in order
  L.segment_count = static_cast<uint32_t>(segments);
  L.op_count = static_cast<uint32_t>(ops);
  L.segments_offset = align_up(L.blob_bytes, 256);
  L.ops_offset = align_up(L.segments_offset + sizeof(Segment) * L.segment_count, 256);
  L.total_bytes = L.ops_offset + sizeof(CopyOp) * L.op_count;
  if (Status s = staging_.grow(L.total_bytes, L.blob_bytes); !s.ok()) return s;
  base_ = staging_.data();
  segments_offset_ = L.segments_offset;
  ops_offset_ = L.ops_offset;
  each(
      chunk_count_, [](void* p, size_t b) { static_cast<BatchPacker*>(p)->lay_out_range(b); }, this);
  // Pass 2: the ops into their places.
  run([](BatchPacker& p, Chunk& c) { p.place(c); });
  return L;
}

Status scatter_reference(const std::byte* staging, const BatchLayout& L, std::byte* live,
                         std::byte* synced, uint64_t image_bytes) {
  auto bad = [](const std::string& what) {
    return Status(Code::kCorruption, "scatter batch layout: " + what);
  };
  if (L.segments_offset < L.blob_bytes || L.segments_offset % 8 != 0 ||
      L.ops_offset < L.segments_offset + sizeof(Segment) * L.segment_count || L.ops_offset % 8 != 0 ||
      L.total_bytes < L.ops_offset + sizeof(CopyOp) * L.op_count)
    return bad("sections overlap or are misaligned");
  std::vector<Segment> segs(L.segment_count);
  if (!segs.empty()) std::memcpy(segs.data(), staging + L.segments_offset, sizeof(Segment) * segs.size());
  std::vector<CopyOp> ops(L.op_count);
  if (!ops.empty()) std::memcpy(ops.data(), staging + L.ops_offset, sizeof(CopyOp) * ops.size());

  // Invariants: segments tile the op array; every op sits in one region,
  // is 16-aligned consistently and stays inside blob and image; the ops of
  // a segment share their region and no two segments share one.
  std::vector<uint64_t> regions;
  uint64_t next = 0;
  for (size_t s = 0; s < segs.size(); ++s) {
    if (segs[s].first != next || segs[s].count == 0)
      return bad("segment " + std::to_string(s) + " does not start where the previous one ended");
    next += segs[s].count;
    if (next > ops.size()) return bad("segment " + std::to_string(s) + " runs past the ops");
    const uint64_t region = ops[segs[s].first].dst >> kRegionShift;
    regions.push_back(region);
    for (uint64_t i = segs[s].first; i < next; ++i) {
      const CopyOp& op = ops[i];
      if (op.length == 0 || op.length > kRegionBytes) return bad(op_name(i, op) + ": bad length");
      if ((op.dst >> kRegionShift) != ((op.dst + op.length - 1) >> kRegionShift))
        return bad(op_name(i, op) + ": crosses a region boundary");
      if ((op.dst >> kRegionShift) != region)
        return bad(op_name(i, op) + ": not in its segment's region " + std::to_string(region));
      if (op.src % 16 != op.dst % 16) return bad(op_name(i, op) + ": src and dst disagree modulo 16");
      if (op.src + op.length > L.blob_bytes) return bad(op_name(i, op) + ": past the blob");
      if (op.dst + op.length > image_bytes) return bad(op_name(i, op) + ": past the image");
      if (op.flags == 0 || (op.flags & ~(kToLive | kToSynced | kMerge)) != 0 ||
          ((op.flags & kMerge) && op.flags != (kToLive | kToSynced | kMerge)))
        return bad(op_name(i, op) + ": bad flags");
      if ((op.flags & kToSynced) && synced == nullptr)
        return bad(op_name(i, op) + ": writes the synced image, which does not exist");
    }
  }
  if (next != ops.size()) return bad("ops outside every segment");
  std::sort(regions.begin(), regions.end());
  if (std::adjacent_find(regions.begin(), regions.end()) != regions.end())
    return bad("two segments share an image region (their warps would race)");

  const auto* blob = reinterpret_cast<const uint8_t*>(staging);
  auto* lv = reinterpret_cast<uint8_t*>(live);
  auto* sy = reinterpret_cast<uint8_t*>(synced);
  for (size_t s = segs.size(); s-- > 0;) {
    for (uint64_t i = segs[s].first; i < uint64_t{segs[s].first} + segs[s].count; ++i) {
      for (uint32_t lane = 0; lane < 32; ++lane) apply_op_lane(ops[i], lane, blob, lv, sy);
    }
  }
  return Status::OK();
}

}  // namespace mmsb::cuda
