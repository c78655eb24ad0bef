// Dropout (kernels/dropout.h): one thread per Philox block of four elements, the mask from
// kernels/dropout_math.h as on the CPU. The offset is read on the device (PhiloxOffset::get), so a
// captured CUDA graph's replay draws at the run's current offset.
#include "kernels/cuda/launch.cuh"
#include "kernels/dropout.h"
#include "kernels/dropout_math.h"

namespace dd::kernels::cuda {

namespace {
__global__ void dropout_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n, float p, float scale,
                               uint64_t seed, PhiloxOffset offset) {
  const int64_t blocks = (n + 3) / 4;
  const uint64_t base = offset.get();
  DD_GRID_STRIDE(b, blocks) {
    bool keep[4];
    dropout_keep4(seed, base + static_cast<uint64_t>(b), p, keep);
    for (int j = 0; j < 4 && 4 * b + j < n; ++j) y[4 * b + j] = keep[j] ? x[4 * b + j] * scale : 0.0f;
  }
}
}  // namespace

Tensor dropout(const Tensor& x, float p, uint64_t seed, PhiloxOffset offset) {
  const Tensor& xc = x;
  Tensor y = Tensor::empty(x.shape(), x.device());
  const int64_t n = x.numel();
  if (n == 0) return y;
  dropout_kernel<<<grid_for((n + 3) / 4), kThreads, 0, stream()>>>(xc.data(), y.data(), n, p, dropout_scale(p), seed,
                                                                  offset);
  DD_CUDA_LAUNCH_CHECK("dropout_kernel");
  return y;
}

}  // namespace dd::kernels::cuda
