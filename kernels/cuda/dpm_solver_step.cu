#include "kernels/cuda/launch.cuh"
#include "kernels/dpm_solver_math.h"
#include "kernels/dpm_solver_step.h"

namespace dd::kernels::cuda {

namespace {
__global__ void dpm_solver_step_kernel(const float* x, const float* eps, const float* m1, const float* m2,
                                       DpmStepCoefs k, float* out, float* m0, int64_t n, const float* thresh,
                                       int64_t per_sample) {
  DD_GRID_STRIDE(i, n) {
    const float m = dpm_threshold(dpm_m0(k, x[i], eps[i]), thresh ? thresh[i / per_sample] : 0.0f);
    m0[i] = m;
    out[i] = dpm_next(k, x[i], m, m1 ? m1[i] : 0.0f, m2 ? m2[i] : 0.0f);
  }
}
}  // namespace

Tensor dpm_solver_step(const Tensor& x, const Tensor& eps, const Tensor& m1, const Tensor& m2, const DpmStepCoefs& k,
                       Tensor* m0_out, const Tensor& thresh) {
  const int64_t n = x.numel();
  Tensor out = Tensor::empty(x.shape(), x.device()), m0 = Tensor::empty(x.shape(), x.device());
  dpm_solver_step_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.data(), eps.data(),
                                                                m1.defined() ? m1.data() : nullptr,
                                                                m2.defined() ? m2.data() : nullptr, k, out.data(),
                                                                m0.data(), n, thresh.defined() ? thresh.data() : nullptr,
                                                                n / x.dim(0));
  DD_CUDA_LAUNCH_CHECK("dpm_solver_step_kernel");
  if (m0_out) *m0_out = m0;
  return out;
}

}  // namespace dd::kernels::cuda
