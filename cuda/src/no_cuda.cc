// A build without CUDA (MMSB_CUDA=OFF, or no nvcc at configure time): the
// mirror always takes the CPU path and says why.
#include "device.h"

namespace mmsb::cuda {
namespace {
Status not_built() {
  return Status(Code::kUnsupported,
                "no CUDA device: this build has no CUDA support (configured with MMSB_CUDA=OFF, or nvcc was "
                "not found): reconfigure with -DMMSB_CUDA=ON on a machine with the CUDA toolkit");
}
}  // namespace

bool built_with_cuda() noexcept { return false; }
Result<DeviceInfo> probe_device(int) { return not_built(); }
Result<std::unique_ptr<Device>> open_cuda_device(int) { return not_built(); }

}  // namespace mmsb::cuda
