#include "kernels/cuda/group_norm_common.cuh"
#include "kernels/group_norm.h"

namespace dd::kernels::cuda {

namespace {
struct SumXTerm {
  const float* x;
  __device__ void operator()(int64_t, int64_t, int64_t i, double* acc) const {
    const double v = x[i];
    acc[0] += v;
    acc[1] += v * v;
  }
};

// y = (x - mean) * (rstd gamma) + beta: the CPU's expression, mean subtracted first.
__global__ void gn_apply_kernel(const float* x, const float* gamma, const float* beta, const float* mean,
                                const double* rstd_d, int64_t n, int64_t S, int64_t C, int64_t G, float* y) {
  const int64_t D = C / G;
  DD_GRID_STRIDE(i, n) {
    const BcIndex e = bc_index(i, S, C, n);
    const int64_t bg = e.b * G + e.c / D;
    const float k = static_cast<float>(rstd_d[bg] * gamma[e.c]);
    y[i] = (x[i] - mean[bg]) * k + beta[e.c];
  }
}

// sdx[b, c] = sum_s dy (x - mean), sdy[b, c] = sum_s dy; centring before the
// product avoids the cancellation of sum(dy x) - mean sum(dy).
struct BackwardTerm {
  const float* x;
  const float* dy;
  const float* mean;
  int64_t G, D;
  __device__ void operator()(int64_t b, int64_t c, int64_t i, double* acc) const {
    const double g = dy[i];
    acc[0] += g * (static_cast<double>(x[i]) - mean[b * G + c / D]);
    acc[1] += g;
  }
};

__global__ void gn_dx_kernel(const float* x, const float* dy, const float* gamma, const float* mean,
                             const float* rstd, const float* kk, const float* oo, int64_t n, int64_t S, int64_t C,
                             int64_t G, float* dx) {
  const int64_t D = C / G;
  DD_GRID_STRIDE(i, n) {
    const BcIndex e = bc_index(i, S, C, n);
    const int64_t bg = e.b * G + e.c / D;
    const float a = static_cast<float>(static_cast<double>(rstd[bg]) * gamma[e.c]);
    dx[i] = a * dy[i] - kk[bg] * (x[i] - mean[bg]) - oo[bg];
  }
}
}  // namespace

GroupNormOut group_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                float eps) {
  const GnDims d(x, groups);
  GroupNormOut out{Tensor::empty(x.shape(), x.device()), Tensor::empty({d.B, d.G}, x.device()),
                   Tensor::empty({d.B, d.G}, x.device())};
  DoubleScratch sums(2 * d.B * d.C), rstd_d(d.B * d.G);
  channel_sums<2>(SumXTerm{x.data()}, d.B, d.S, d.C, sums.get());
  gn_stats(sums.get(), d, eps, out.mean.data(), out.rstd.data(), rstd_d.get());
  const int64_t n = d.numel();
  gn_apply_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.data(), gamma.data(), beta.data(), out.mean.data(),
                                                          rstd_d.get(), n, d.S, d.C, d.G, out.y.data());
  DD_CUDA_LAUNCH_CHECK("gn_apply_kernel");
  return out;
}

GroupNormGrads group_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                                   const Tensor& dy) {
  const GnDims d(x, mean.dim(1));
  GroupNormGrads out{Tensor::empty(x.shape(), x.device()), Tensor::empty({d.C}, x.device()),
                     Tensor::empty({d.C}, x.device())};
  DoubleScratch sums(2 * d.B * d.C);
  channel_sums<2>(BackwardTerm{x.data(), dy.data(), mean.data(), d.G, d.D}, d.B, d.S, d.C, sums.get());
  const double* sdx = sums.get();
  const double* sdy = sums.get() + d.B * d.C;
  Tensor kk = Tensor::empty({d.B, d.G}, x.device()), oo = Tensor::empty({d.B, d.G}, x.device());
  gn_backward_tail(sdx, sdy, gamma.data(), rstd.data(), d, out.dgamma.data(), out.dbeta.data(), kk.data(),
                   oo.data());
  const int64_t n = d.numel();
  gn_dx_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.data(), dy.data(), gamma.data(), mean.data(), rstd.data(),
                                                       kk.data(), oo.data(), n, d.S, d.C, d.G, out.dx.data());
  DD_CUDA_LAUNCH_CHECK("gn_dx_kernel");
  return out;
}

}  // namespace dd::kernels::cuda
