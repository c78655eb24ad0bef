#include "kernels/adam_math.h"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda {

namespace {
__global__ void adam_kernel(float* p, const float* g, float* m, float* v, AdamStepScalars s, int64_t n) {
  DD_GRID_STRIDE(i, n) {
    float pi = p[i], mi = m[i], vi = v[i];
    adam_element(pi, g[i], mi, vi, s);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}
}  // namespace

// One launch per parameter for now; the CUDA backend issue fuses all
// parameters into one launch.
void adam_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamStepScalars& s) {
  const int64_t n = param.numel();
  if (n == 0) return;
  adam_kernel<<<grid_for(n), kThreads, 0, stream()>>>(param.data(), grad.data(), m.data(), v.data(), s, n);
  DD_CUDA_LAUNCH_CHECK("adam_kernel");
}

}  // namespace dd::kernels::cuda
