// One heat step on the GPU: the same arithmetic as the CPU kernel (heat.h,
// integers only, so the two paths agree bit for bit).
#include <cuda_runtime_api.h>

#include "heat_gpu.h"

namespace heat {
namespace {

__global__ void step_kernel(int32_t* const* bands, Grid g, int32_t* out) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int r = blockIdx.y * blockDim.y + threadIdx.y;
  if (r >= g.height || c >= g.width) return;
  out[size_t(r) * g.width + c] = next(Bands{bands, g.width, g.band_rows}, r, c, g.width, g.height);
}

__global__ void store_kernel(const int32_t* in, Grid g, int32_t* const* bands) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int r = blockIdx.y * blockDim.y + threadIdx.y;
  if (r >= g.height || c >= g.width) return;
  Bands{bands, g.width, g.band_rows}.cell(r, c) = in[size_t(r) * g.width + c];
}

std::string why(const char* what, cudaError_t e) { return std::string(what) + ": " + cudaGetErrorString(e); }

class Stepper final : public GpuStepper {
 public:
  explicit Stepper(const Grid& g) : g_(g) {}
  ~Stepper() override {
    if (scratch_) cudaFree(scratch_);
    if (bands_) cudaFree(bands_);
  }
  std::string init() {
    if (cudaError_t e = cudaMalloc(&scratch_, sizeof(int32_t) * size_t(g_.width) * g_.height); e != cudaSuccess)
      return why("cudaMalloc(grid scratch)", e);
    if (cudaError_t e = cudaMalloc(&bands_, sizeof(int32_t*) * g_.bands()); e != cudaSuccess)
      return why("cudaMalloc(band pointers)", e);
    return {};
  }
  std::string step(const std::vector<int32_t*>& bands, void* stream) override {
    auto s = static_cast<cudaStream_t>(stream);
    // The pointers can move when the mirror's images grow: send them each step.
    if (cudaError_t e = cudaMemcpyAsync(bands_, bands.data(), sizeof(int32_t*) * bands.size(),
                                        cudaMemcpyHostToDevice, s);
        e != cudaSuccess)
      return why("cudaMemcpyAsync(band pointers)", e);
    const dim3 block(32, 8);
    const dim3 grid((g_.width + 31) / 32, (g_.height + 7) / 8);
    step_kernel<<<grid, block, 0, s>>>(bands_, g_, scratch_);
    store_kernel<<<grid, block, 0, s>>>(scratch_, g_, bands_);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return why("heat kernel launch", e);
    // The pointer array is pageable host memory: wait before it goes away.
    if (cudaError_t e = cudaStreamSynchronize(s); e != cudaSuccess) return why("heat step", e);
    return {};
  }

 private:
  Grid g_;
  int32_t* scratch_ = nullptr;
  int32_t** bands_ = nullptr;
};

}  // namespace

std::unique_ptr<GpuStepper> make_gpu_stepper(const Grid& g, std::string* error) {
  auto s = std::make_unique<Stepper>(g);
  *error = s->init();
  if (!error->empty()) return nullptr;
  return s;
}

}  // namespace heat
