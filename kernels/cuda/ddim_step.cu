#include "engine/philox.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/ddim_step.h"
#include "kernels/ddim_step_math.h"

namespace dd::kernels::cuda {

namespace {
// One thread per Philox block (4 elements), as randn's kernel: element 4k + l takes lane l of block
// offset + k, the CPU's numbers.
__global__ void ddim_step_kernel(const float* x, const float* eps, DdimStepCoefs c, float* out, float* x0,
                                 int64_t n, uint64_t seed, PhiloxOffset offset_at, const float* thresh,
                                 int64_t per_sample) {
  const int64_t blocks = (n + 3) / 4;
  const uint64_t offset = offset_at.get();
  DD_GRID_STRIDE(k, blocks) {
    float z[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (c.sigma > 0.0f) philox_normal4(seed, offset + static_cast<uint64_t>(k), z);
    for (int l = 0; l < 4 && 4 * k + l < n; ++l) {
      const int64_t i = 4 * k + l;
      const float e = ddim_x0(c, x[i], eps[i], thresh ? thresh[i / per_sample] : 0.0f);
      if (x0) x0[i] = e;
      out[i] = ddim_prev(c, e, ddim_dir_eps(c, x[i], eps[i], e), x[i], z[l]);
    }
  }
}
}  // namespace

Tensor ddim_step(const Tensor& x_t, const Tensor& eps, const DdimStepCoefs& c, uint64_t seed, PhiloxOffset offset,
                 Tensor* x0_out, const Tensor& thresh) {
  const int64_t n = x_t.numel();
  Tensor out = Tensor::empty(x_t.shape(), x_t.device());
  Tensor x0 = x0_out ? Tensor::empty(x_t.shape(), x_t.device()) : Tensor();
  ddim_step_kernel<<<grid_for((n + 3) / 4), kThreads, 0, stream()>>>(
      x_t.data(), eps.data(), c, out.data(), x0.defined() ? x0.data() : nullptr, n, seed, offset,
      thresh.defined() ? thresh.data() : nullptr, n / x_t.dim(0));
  DD_CUDA_LAUNCH_CHECK("ddim_step_kernel");
  if (x0_out) *x0_out = x0;
  return out;
}

}  // namespace dd::kernels::cuda
