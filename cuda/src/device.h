// Device: where a DeviceMirror keeps its images and runs its kernels. Two
// implementations: CudaDevice (cuda_device.cc: device memory, pinned staging,
// the kernels of kernels.cu on one stream) and HostDevice (host_device.cc:
// host memory, the CPU references of the same kernels). The mirror's logic
// (mirror.cc) is the same for both, so the CPU path's tests cover it.
//
// Ordering: every call runs after the work queued before it. scatter() and
// copy_image() only queue; wait() returns when everything queued is done and
// reports the first error of queued work. The staging buffer is read by the
// device until the next wait(): the mirror does not write it before then.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "mmsb/cuda/batch.h"
#include "mmsb/cuda/diff.h"
#include "mmsb/cuda/mirror.h"

namespace mmsb::cuda {

enum class Image { kLive, kSynced };

class Device {
 public:
  virtual ~Device() = default;
  virtual bool gpu() const noexcept = 0;
  virtual const std::string& description() const noexcept = 0;
  virtual void* stream() const noexcept = 0;  // cudaStream_t, or null

  // ---- images: same offsets in both; the synced one exists once asked for ----
  virtual uint64_t image_capacity() const noexcept = 0;
  virtual bool has_synced() const noexcept = 0;
  // Grows the images to at least `bytes`, keeping bytes [0, used) of each
  // and zero-filling the rest; with_synced creates the synced image. May
  // move the images (and waits for queued work when it does).
  virtual Status reserve_images(uint64_t bytes, uint64_t used, bool with_synced) = 0;
  virtual std::byte* image(Image which) noexcept = 0;  // a device address on the GPU

  virtual Staging& staging() noexcept = 0;

  // ---- work ----
  // Copies staging [0, total_bytes) to the device and scatters it (queued).
  virtual Status scatter(const BatchLayout& layout) = 0;
  virtual Status copy_image(Image to, Image from, uint64_t offset, uint64_t bytes) = 0;  // queued
  virtual Status wait() = 0;
  // Synchronous copies between an image and host memory.
  virtual Status download(Image from, uint64_t offset, std::span<std::byte> out) = 0;
  virtual Status upload(Image to, uint64_t offset, std::span<const std::byte> in) = 0;
  // Runs the diff kernels over the tiles (live vs synced) and brings the runs
  // and bytes back. Waits. *out views device-owned host memory until the
  // next diff().
  virtual Status diff(std::span<const DiffTile> tiles, DiffRuns* out) = 0;

  // Timing of the last scatter() (after its wait()) or diff().
  virtual StepTiming last_timing() const noexcept = 0;
};

std::unique_ptr<Device> make_host_device();
// The CUDA device `ordinal`, after a probe kernel ran on it; the Status says
// why not ("no CUDA device: ..."; built without CUDA: kUnsupported).
Result<std::unique_ptr<Device>> open_cuda_device(int ordinal);

}  // namespace mmsb::cuda
