// The heat sample's CUDA kernel (heat_gpu.cu), built when CMake found CUDA.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "heat.h"

namespace heat {

class GpuStepper {
 public:
  virtual ~GpuStepper() = default;
  // Queues one step on `stream` (the mirror's): `bands` are device pointers
  // to the bands in the mirror's live image. "" or what went wrong.
  virtual std::string step(const std::vector<int32_t*>& bands, void* stream) = 0;
};

// Scratch memory on the current device for a grid; null and *error set on failure.
std::unique_ptr<GpuStepper> make_gpu_stepper(const Grid& g, std::string* error);

}  // namespace heat
