// CudaDevice: the images in device memory (cudaMalloc), a pinned staging
// buffer, and the kernels of kernels.cu, all on one CUDA stream. Every CUDA
// call is checked; an error becomes a Status naming the call, the CUDA error
// and what to do.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "device.h"
#include "kernels.h"

#ifndef MMSB_CUDA_ARCHS
#define MMSB_CUDA_ARCHS "?"
#endif

namespace mmsb::cuda {
namespace {

Status cuda_status(cudaError_t e, const std::string& what) {
  Code code = Code::kIOError;
  std::string hint;
  switch (e) {
    case cudaErrorMemoryAllocation:
      code = Code::kResourceExhausted;
      hint = " -- the GPU (or pinned host memory) is full: free memory or mirror a smaller state";
      break;
    case cudaErrorNoDevice:
    case cudaErrorInvalidDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorCallRequiresNewerDriver:
      code = Code::kUnsupported;
      break;
    default:
      hint = " -- the CUDA context may be unusable now: restart the process";
      break;
  }
  return Status(code, "CUDA: " + what + " failed: " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")" +
                          hint);
}

#define MMSB_CUDA_CHECK(expr, what)                                      \
  do {                                                                   \
    const cudaError_t mmsb_cuda_error_ = (expr);                         \
    if (mmsb_cuda_error_ != cudaSuccess) return cuda_status(mmsb_cuda_error_, what); \
  } while (0)

std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

// Pinned host memory that grows geometrically (cudaHostAlloc).
class PinnedStaging final : public Staging {
 public:
  ~PinnedStaging() override {
    if (data_) cudaFreeHost(data_);
  }
  std::byte* data() noexcept override { return data_; }
  size_t capacity() const noexcept override { return capacity_; }
  Status grow(size_t min_capacity, size_t keep) override {
    if (min_capacity <= capacity_) return Status::OK();
    const size_t cap = std::max({min_capacity, capacity_ * 2, size_t{1} << 20});
    void* p = nullptr;
    MMSB_CUDA_CHECK(cudaHostAlloc(&p, cap, cudaHostAllocDefault), "cudaHostAlloc(staging, " + mb(cap) + ")");
    if (data_) {
      if (keep > 0) std::memcpy(p, data_, std::min(keep, capacity_));
      cudaFreeHost(data_);
    }
    data_ = static_cast<std::byte*>(p);
    capacity_ = cap;
    return Status::OK();
  }

 private:
  std::byte* data_ = nullptr;
  size_t capacity_ = 0;
};

// Device scratch memory that grows geometrically; contents are not kept.
class DeviceBuffer {
 public:
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  template <class T = uint8_t>
  T* get() const noexcept {
    return static_cast<T*>(ptr_);
  }
  Status reserve(size_t bytes, cudaStream_t stream, const char* what) {
    if (bytes <= capacity_) return Status::OK();
    const size_t cap = std::max({bytes, capacity_ * 2, size_t{1} << 16});
    if (ptr_) {
      MMSB_CUDA_CHECK(cudaStreamSynchronize(stream), std::string("cudaStreamSynchronize (before regrowing ") + what + ")");
      MMSB_CUDA_CHECK(cudaFree(ptr_), std::string("cudaFree(") + what + ")");
      ptr_ = nullptr;
      capacity_ = 0;
    }
    MMSB_CUDA_CHECK(cudaMalloc(&ptr_, cap), std::string("cudaMalloc(") + what + ", " + mb(cap) + ")");
    capacity_ = cap;
    return Status::OK();
  }

 private:
  void* ptr_ = nullptr;
  size_t capacity_ = 0;
};

float elapsed(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0;
  return cudaEventElapsedTime(&ms, a, b) == cudaSuccess ? ms : 0.0f;
}

class CudaDevice final : public Device {
 public:
  ~CudaDevice() override {
    if (stream_) cudaStreamSynchronize(stream_);
    if (live_) cudaFree(live_);
    if (synced_) cudaFree(synced_);
    for (cudaEvent_t& e : ev_)
      if (e) cudaEventDestroy(e);
    if (stream_) cudaStreamDestroy(stream_);
  }

  // Opens the device and proves it runs this build's kernels.
  Status open(int ordinal, DeviceInfo* info) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      std::string why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")";
      if (e == cudaErrorInsufficientDriver)
        why += " -- no NVIDIA driver is loaded, or it is older than this CUDA runtime needs";
      return Status(Code::kUnsupported, "no CUDA device: " + why);
    }
    if (count == 0) return Status(Code::kUnsupported, "no CUDA device: cudaGetDeviceCount found none");
    if (ordinal < 0 || ordinal >= count)
      return Status(Code::kUnsupported, "no CUDA device: device " + std::to_string(ordinal) + " asked for, " +
                                            std::to_string(count) + " present");
    Status s = setup(ordinal, info);
    if (!s.ok()) return Status(s.code(), "no CUDA device: " + s.message());
    description_ = info->describe();
    return Status::OK();
  }

  bool gpu() const noexcept override { return true; }
  const std::string& description() const noexcept override { return description_; }
  void* stream() const noexcept override { return stream_; }

  uint64_t image_capacity() const noexcept override { return capacity_; }
  bool has_synced() const noexcept override { return want_synced_; }

  Status reserve_images(uint64_t bytes, uint64_t used, bool with_synced) override {
    want_synced_ = want_synced_ || with_synced;
    if (bytes > capacity_) {
      const uint64_t cap = std::max<uint64_t>({bytes, capacity_ * 2, uint64_t{1} << 20});
      MMSB_CUDA_CHECK(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (before growing the images)");
      if (Status s = regrow(&live_, cap, used, "live image"); !s.ok()) return s;
      if (synced_) {
        if (Status s = regrow(&synced_, cap, used, "synced image"); !s.ok()) return s;
      }
      capacity_ = cap;
    }
    if (want_synced_ && !synced_ && capacity_ > 0) return regrow(&synced_, capacity_, 0, "synced image");
    return Status::OK();
  }

  std::byte* image(Image which) noexcept override {
    return reinterpret_cast<std::byte*>(which == Image::kLive ? live_ : synced_);
  }
  Staging& staging() noexcept override { return staging_; }

  Status scatter(const BatchLayout& L) override {
    if (L.total_bytes == 0) return Status::OK();
    if (Status s = batch_.reserve(L.total_bytes, stream_, "batch"); !s.ok()) return s;
    MMSB_CUDA_CHECK(cudaEventRecord(ev_[0], stream_), "cudaEventRecord");
    MMSB_CUDA_CHECK(cudaMemcpyAsync(batch_.get(), staging_.data(), L.total_bytes, cudaMemcpyHostToDevice, stream_),
                    "cudaMemcpyAsync(batch -> device, " + mb(L.total_bytes) + ")");
    MMSB_CUDA_CHECK(cudaEventRecord(ev_[1], stream_), "cudaEventRecord");
    MMSB_CUDA_CHECK(kernels::scatter(batch_.get(), L, live_, synced_, stream_),
                    "scatter kernel launch (" + std::to_string(L.segment_count) + " segments)");
    MMSB_CUDA_CHECK(cudaEventRecord(ev_[2], stream_), "cudaEventRecord");
    timing_pending_ = true;
    return Status::OK();
  }

  Status copy_image(Image to, Image from, uint64_t offset, uint64_t bytes) override {
    if (bytes == 0) return Status::OK();
    if (Status s = check(offset, bytes, to); !s.ok()) return s;
    MMSB_CUDA_CHECK(cudaMemcpyAsync(image(to) + offset, image(from) + offset, bytes, cudaMemcpyDeviceToDevice, stream_),
                    "cudaMemcpyAsync(image -> image, " + mb(bytes) + ")");
    return Status::OK();
  }

  Status wait() override {
    MMSB_CUDA_CHECK(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (the mirror's queued work)");
    if (timing_pending_) {
      timing_pending_ = false;
      timing_ = StepTiming{elapsed(ev_[0], ev_[1]), elapsed(ev_[1], ev_[2]), elapsed(ev_[0], ev_[2])};
    }
    return Status::OK();
  }

  Status download(Image from, uint64_t offset, std::span<std::byte> out) override {
    if (out.empty()) return Status::OK();
    if (Status s = check(offset, out.size(), from); !s.ok()) return s;
    MMSB_CUDA_CHECK(cudaMemcpyAsync(out.data(), image(from) + offset, out.size(), cudaMemcpyDeviceToHost, stream_),
                    "cudaMemcpyAsync(image -> host, " + mb(out.size()) + ")");
    MMSB_CUDA_CHECK(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (after a copy to the host)");
    return Status::OK();
  }

  Status upload(Image to, uint64_t offset, std::span<const std::byte> in) override {
    if (in.empty()) return Status::OK();
    if (Status s = check(offset, in.size(), to); !s.ok()) return s;
    MMSB_CUDA_CHECK(cudaMemcpyAsync(image(to) + offset, in.data(), in.size(), cudaMemcpyHostToDevice, stream_),
                    "cudaMemcpyAsync(host -> image, " + mb(in.size()) + ")");
    MMSB_CUDA_CHECK(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (after a copy to the device)");
    return Status::OK();
  }

  Status diff(std::span<const DiffTile> tiles, DiffRuns* out) override {
    *out = DiffRuns{};
    if (tiles.empty()) return Status::OK();
    if (!synced_) return Status(Code::kFailedPrecondition, "CUDA mirror: diff without a synced image");
    if (tiles.size() > 0x7FFFFFFF)
      return Status(Code::kResourceExhausted, "CUDA mirror: diff of " + std::to_string(tiles.size()) +
                                                  " tiles is too large for one grid: diff fewer pages at once");
    const uint32_t n = static_cast<uint32_t>(tiles.size());
    const size_t tile_bytes = sizeof(DiffTile) * n;
    if (Status s = staging_.grow(tile_bytes, 0); !s.ok()) return s;
    std::memcpy(staging_.data(), tiles.data(), tile_bytes);
    if (Status s = tiles_.reserve(tile_bytes, stream_, "diff tiles"); !s.ok()) return s;
    if (Status s = counts_.reserve(sizeof(uint64_t) * n, stream_, "diff counts"); !s.ok()) return s;
    if (Status s = prefix_.reserve(sizeof(DiffCounts) * n, stream_, "diff prefixes"); !s.ok()) return s;
    if (Status s = totals_.reserve(sizeof(DiffCounts), stream_, "diff totals"); !s.ok()) return s;
    if (Status s = totals_host_.grow(sizeof(DiffCounts), 0); !s.ok()) return s;

    MMSB_CUDA_CHECK(cudaEventRecord(ev_[0], stream_), "cudaEventRecord");
    MMSB_CUDA_CHECK(cudaMemcpyAsync(tiles_.get(), staging_.data(), tile_bytes, cudaMemcpyHostToDevice, stream_),
                    "cudaMemcpyAsync(diff tiles -> device)");
    MMSB_CUDA_CHECK(cudaEventRecord(ev_[1], stream_), "cudaEventRecord");
    const auto* live = reinterpret_cast<const uint8_t*>(live_);
    const auto* synced = reinterpret_cast<const uint8_t*>(synced_);
    MMSB_CUDA_CHECK(kernels::diff_count(live, synced, tiles_.get<DiffTile>(), n, counts_.get<uint64_t>(), stream_),
                    "diff count kernel launch");
    MMSB_CUDA_CHECK(kernels::diff_scan(counts_.get<uint64_t>(), n, prefix_.get<DiffCounts>(),
                                       totals_.get<DiffCounts>(), stream_),
                    "diff scan kernel launch");
    MMSB_CUDA_CHECK(cudaEventRecord(ev_[2], stream_), "cudaEventRecord");
    MMSB_CUDA_CHECK(cudaMemcpyAsync(totals_host_.data(), totals_.get(), sizeof(DiffCounts), cudaMemcpyDeviceToHost,
                                    stream_),
                    "cudaMemcpyAsync(diff totals -> host)");
    MMSB_CUDA_CHECK(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (diff count and scan)");
    DiffCounts total;
    std::memcpy(&total, totals_host_.data(), sizeof total);
    if (total.starts != total.ends)
      return Status(Code::kCorruption, "CUDA mirror diff: " + std::to_string(total.starts) + " run starts but " +
                                           std::to_string(total.ends) + " run ends");
    const uint64_t runs = total.starts;
    const size_t out_bytes = 2 * sizeof(uint64_t) * runs + total.bytes;
    if (Status s = out_.reserve(std::max<size_t>(out_bytes, 1), stream_, "diff output"); !s.ok()) return s;
    if (Status s = readback_.grow(std::max<size_t>(out_bytes, 1), 0); !s.ok()) return s;
    auto* starts = out_.get<uint64_t>();
    auto* ends = starts + runs;
    auto* bytes = reinterpret_cast<uint8_t*>(ends + runs);
    MMSB_CUDA_CHECK(cudaEventRecord(ev_[3], stream_), "cudaEventRecord");
    if (runs > 0) {
      MMSB_CUDA_CHECK(kernels::diff_emit(live, synced, tiles_.get<DiffTile>(), n, counts_.get<uint64_t>(),
                                         prefix_.get<DiffCounts>(), starts, ends, bytes, stream_),
                      "diff emit kernel launch");
    }
    MMSB_CUDA_CHECK(cudaEventRecord(ev_[4], stream_), "cudaEventRecord");
    if (out_bytes > 0) {
      MMSB_CUDA_CHECK(cudaMemcpyAsync(readback_.data(), out_.get(), out_bytes, cudaMemcpyDeviceToHost, stream_),
                      "cudaMemcpyAsync(diff runs -> host, " + mb(out_bytes) + ")");
    }
    MMSB_CUDA_CHECK(cudaEventRecord(ev_[5], stream_), "cudaEventRecord");
    MMSB_CUDA_CHECK(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (diff emit and copy back)");
    timing_ = StepTiming{elapsed(ev_[0], ev_[1]) + elapsed(ev_[2], ev_[3]) + elapsed(ev_[4], ev_[5]),
                         elapsed(ev_[1], ev_[2]) + elapsed(ev_[3], ev_[4]), elapsed(ev_[0], ev_[5])};
    const auto* host = reinterpret_cast<const uint64_t*>(readback_.data());
    *out = DiffRuns{std::span<const uint64_t>(host, runs), std::span<const uint64_t>(host + runs, runs),
                    std::span<const std::byte>(readback_.data() + 2 * sizeof(uint64_t) * runs, total.bytes)};
    return Status::OK();
  }

  StepTiming last_timing() const noexcept override { return timing_; }

 private:
  Status setup(int ordinal, DeviceInfo* info) {
    MMSB_CUDA_CHECK(cudaSetDevice(ordinal), "cudaSetDevice(" + std::to_string(ordinal) + ")");
    cudaDeviceProp prop;
    MMSB_CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal), "cudaGetDeviceProperties");
    info->ordinal = ordinal;
    info->name = prop.name;
    info->major = prop.major;
    info->minor = prop.minor;
    info->memory_bytes = prop.totalGlobalMem;
    MMSB_CUDA_CHECK(cudaDriverGetVersion(&info->driver_version), "cudaDriverGetVersion");
    MMSB_CUDA_CHECK(cudaRuntimeGetVersion(&info->runtime_version), "cudaRuntimeGetVersion");
    // A blocking stream: work on the legacy default stream stays ordered with it.
    MMSB_CUDA_CHECK(cudaStreamCreate(&stream_), "cudaStreamCreate");
    for (cudaEvent_t& e : ev_) MMSB_CUDA_CHECK(cudaEventCreate(&e), "cudaEventCreate");
    // The probe: a kernel of this build must run and write its answer.
    DeviceBuffer flag;
    if (Status s = flag.reserve(sizeof(int), stream_, "probe flag"); !s.ok()) return s;
    MMSB_CUDA_CHECK(cudaMemsetAsync(flag.get(), 0, sizeof(int), stream_), "cudaMemsetAsync(probe flag)");
    const std::string sm = "sm_" + std::to_string(prop.major) + std::to_string(prop.minor);
    MMSB_CUDA_CHECK(kernels::probe(flag.get<int>(), stream_),
                    "probe kernel launch on " + sm + " (this build has code for " MMSB_CUDA_ARCHS ")");
    int answer = 0;
    MMSB_CUDA_CHECK(cudaMemcpyAsync(&answer, flag.get(), sizeof answer, cudaMemcpyDeviceToHost, stream_),
                    "cudaMemcpyAsync(probe flag -> host)");
    MMSB_CUDA_CHECK(cudaStreamSynchronize(stream_),
                    "probe kernel on " + sm + " (this build has code for " MMSB_CUDA_ARCHS ")");
    if (answer != 42)
      return Status(Code::kUnsupported, "the probe kernel did not run on " + sm + " (read " + std::to_string(answer) + ")");
    return Status::OK();
  }

  Status regrow(uint8_t** image, uint64_t cap, uint64_t keep, const char* what) {
    void* p = nullptr;
    MMSB_CUDA_CHECK(cudaMalloc(&p, cap), std::string("cudaMalloc(") + what + ", " + mb(cap) + ")");
    auto* np = static_cast<uint8_t*>(p);
    Status s;
    if (cudaError_t e = cudaMemsetAsync(np + keep, 0, cap - keep, stream_); e != cudaSuccess)
      s = cuda_status(e, std::string("cudaMemsetAsync(") + what + ")");
    if (s.ok() && *image && keep > 0) {
      if (cudaError_t e = cudaMemcpyAsync(np, *image, keep, cudaMemcpyDeviceToDevice, stream_); e != cudaSuccess)
        s = cuda_status(e, std::string("cudaMemcpyAsync(old ") + what + " -> new)");
    }
    if (s.ok()) {
      if (cudaError_t e = cudaStreamSynchronize(stream_); e != cudaSuccess)
        s = cuda_status(e, std::string("cudaStreamSynchronize (growing the ") + what + ")");
    }
    if (!s.ok()) {
      cudaFree(np);
      return s;
    }
    if (*image) cudaFree(*image);
    *image = np;
    return Status::OK();
  }

  Status check(uint64_t offset, uint64_t bytes, Image which) const {
    if (offset + bytes > capacity_ || (which == Image::kSynced && !synced_))
      return Status(Code::kOutOfRange, "CUDA mirror: bytes [" + std::to_string(offset) + ", " +
                                           std::to_string(offset + bytes) + ") are outside the image");
    return Status::OK();
  }

  std::string description_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ev_[6] = {};
  uint8_t* live_ = nullptr;
  uint8_t* synced_ = nullptr;
  uint64_t capacity_ = 0;
  bool want_synced_ = false;
  PinnedStaging staging_;
  PinnedStaging readback_;     // diff output on the host
  PinnedStaging totals_host_;  // diff totals on the host
  DeviceBuffer batch_, tiles_, counts_, prefix_, totals_, out_;
  StepTiming timing_;
  bool timing_pending_ = false;
};

}  // namespace

bool built_with_cuda() noexcept { return true; }

Result<DeviceInfo> probe_device(int ordinal) {
  CudaDevice d;
  DeviceInfo info;
  if (Status s = d.open(ordinal, &info); !s.ok()) return s;
  return info;
}

Result<std::unique_ptr<Device>> open_cuda_device(int ordinal) {
  auto d = std::make_unique<CudaDevice>();
  DeviceInfo info;
  if (Status s = d->open(ordinal, &info); !s.ok()) return s;
  return std::unique_ptr<Device>(std::move(d));
}

}  // namespace mmsb::cuda
