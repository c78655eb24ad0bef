// diffusers' timestep embedding (kernels/timestep_embedding.h): one thread per output element.
// sinf/cosf are CUDA's (within 2 ulp; the CPU's glibc within 1).
#include "kernels/cuda/launch.cuh"
#include "kernels/timestep_embedding.h"

namespace dd::kernels::cuda {

namespace {
__global__ void timestep_embedding_kernel(const float* t, const float* f, float* y, int64_t B, int64_t dim,
                                          int64_t half, bool flip) {
  DD_GRID_STRIDE(idx, B * dim) {
    const int64_t b = idx / dim, j = idx % dim;
    if (j >= 2 * half) {
      y[idx] = 0.0f;
      continue;
    }
    const int64_t i = j < half ? j : j - half;
    const float arg = __fmul_rn(t[b], f[i]);
    const bool use_sin = (j < half) != flip;
    y[idx] = use_sin ? sinf(arg) : cosf(arg);
  }
}
}  // namespace

Tensor timestep_embedding(const Tensor& t, const Tensor& f, int64_t dim, bool flip) {
  const int64_t B = t.dim(0);
  Tensor y = Tensor::empty({B, dim}, t.device());
  if (B == 0) return y;
  timestep_embedding_kernel<<<grid_for(B * dim), kThreads, 0, stream()>>>(t.data(), f.data(), y.data(), B, dim,
                                                                         dim / 2, flip);
  DD_CUDA_LAUNCH_CHECK("timestep_embedding_kernel");
  return y;
}

}  // namespace dd::kernels::cuda
