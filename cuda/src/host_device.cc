// HostDevice: the CPU path. The "device" images are host memory and the
// kernels are their CPU references (scatter_reference, DiffReference), so
// every step the GPU takes is taken here too, over the same layouts.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include "device.h"

namespace mmsb::cuda {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct FreeDeleter {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};
using HostBlock = std::unique_ptr<std::byte, FreeDeleter>;

class HostDevice final : public Device {
 public:
  bool gpu() const noexcept override { return false; }
  const std::string& description() const noexcept override { return description_; }
  void* stream() const noexcept override { return nullptr; }

  uint64_t image_capacity() const noexcept override { return capacity_; }
  bool has_synced() const noexcept override { return want_synced_; }

  Status reserve_images(uint64_t bytes, uint64_t used, bool with_synced) override {
    want_synced_ = want_synced_ || with_synced;
    if (bytes > capacity_) {
      const uint64_t cap = (std::max<uint64_t>({bytes, capacity_ * 2, uint64_t{1} << 16}) + kPageAlign - 1) /
                           kPageAlign * kPageAlign;  // aligned_alloc wants a multiple
      if (Status s = regrow(live_, cap, used); !s.ok()) return s;
      if (synced_) {
        if (Status s = regrow(synced_, cap, used); !s.ok()) return s;
      }
      capacity_ = cap;
    }
    if (want_synced_ && !synced_ && capacity_ > 0) return regrow(synced_, capacity_, 0);
    return Status::OK();
  }

  std::byte* image(Image which) noexcept override {
    return which == Image::kLive ? live_.get() : synced_.get();
  }
  Staging& staging() noexcept override { return staging_; }

  Status scatter(const BatchLayout& layout) override {
    const auto t0 = Clock::now();
    Status s = scatter_reference(staging_.data(), layout, live_.get(), synced_.get(), capacity_);
    timing_ = StepTiming{0, ms_since(t0), ms_since(t0)};
    return s;
  }

  Status copy_image(Image to, Image from, uint64_t offset, uint64_t bytes) override {
    if (Status s = check(offset, bytes, to); !s.ok()) return s;
    std::memmove(image(to) + offset, image(from) + offset, bytes);
    return Status::OK();
  }

  Status wait() override { return Status::OK(); }

  Status download(Image from, uint64_t offset, std::span<std::byte> out) override {
    if (Status s = check(offset, out.size(), from); !s.ok()) return s;
    if (!out.empty()) std::memcpy(out.data(), image(from) + offset, out.size());
    return Status::OK();
  }

  Status upload(Image to, uint64_t offset, std::span<const std::byte> in) override {
    if (Status s = check(offset, in.size(), to); !s.ok()) return s;
    if (!in.empty()) std::memcpy(image(to) + offset, in.data(), in.size());
    return Status::OK();
  }

  Status diff(std::span<const DiffTile> tiles, DiffRuns* out) override {
    if (!synced_) return Status(Code::kFailedPrecondition, "CPU mirror: diff without a synced image");
    const auto t0 = Clock::now();
    Status s = reference_.run(live_.get(), synced_.get(), tiles, out);
    timing_ = StepTiming{0, ms_since(t0), ms_since(t0)};
    return s;
  }

  StepTiming last_timing() const noexcept override { return timing_; }

 private:
  Status check(uint64_t offset, uint64_t bytes, Image which) const {
    if (bytes == 0) return Status::OK();
    if (offset + bytes > capacity_ || (which == Image::kSynced && !synced_))
      return Status(Code::kOutOfRange, "CPU mirror: bytes [" + std::to_string(offset) + ", " +
                                           std::to_string(offset + bytes) + ") are outside the image");
    return Status::OK();
  }

  static Status regrow(HostBlock& block, uint64_t cap, uint64_t keep) {
    auto* p = static_cast<std::byte*>(std::aligned_alloc(kPageAlign, cap));
    if (p == nullptr)
      return Status(Code::kResourceExhausted,
                    "CPU mirror: cannot allocate an image of " + std::to_string(cap) + " bytes");
    if (block && keep > 0) std::memcpy(p, block.get(), keep);
    std::memset(p + keep, 0, cap - keep);
    block.reset(p);
    return Status::OK();
  }

  std::string description_ = "CPU path";
  HostBlock live_, synced_;
  bool want_synced_ = false;  // the synced image exists whenever capacity_ > 0
  uint64_t capacity_ = 0;
  HostStaging staging_;
  DiffReference reference_;
  StepTiming timing_;
};

}  // namespace

std::unique_ptr<Device> make_host_device() { return std::make_unique<HostDevice>(); }

}  // namespace mmsb::cuda
