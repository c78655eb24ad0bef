#pragma once
// Dropout as torch.nn.Dropout(p) in training: y = x * mask / (1 - p), the mask drawn from Philox
// (kernels/dropout_math.h) at (seed, offset), so the CPU and the GPU drop the same elements and a
// resumed run (whose generator state is saved) draws the same masks. The backward is the same map
// applied to dy with the same (seed, offset). p in [0, 1]; p = 0 copies x, p = 1 gives zeros.
#include <cstdint>

#include "engine/philox.h"
#include "engine/tensor.h"

namespace dd::kernels {

Tensor dropout(const Tensor& x, float p, uint64_t seed, PhiloxOffset offset);

namespace cpu {
Tensor dropout(const Tensor& x, float p, uint64_t seed, PhiloxOffset offset);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor dropout(const Tensor& x, float p, uint64_t seed, PhiloxOffset offset);
}  // namespace cuda
#endif

}  // namespace dd::kernels
