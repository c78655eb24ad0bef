#include "kernels/cuda/group_norm_common.cuh"
#include "kernels/cuda/group_norm_per_group.cuh"
#include "kernels/group_norm.h"

namespace dd::kernels::cuda {

namespace {
GroupNormPath g_path = GroupNormPath::Auto;  // set by tests and benchmarks only, between ops
}  // namespace
void set_group_norm_path(GroupNormPath p) { g_path = p; }
bool group_norm_per_group(int64_t D) { return g_path == GroupNormPath::Auto ? D >= 8 : g_path == GroupNormPath::PerGroup; }

namespace {
struct SumXTerm {
  const float* x;
  __device__ void operator()(int64_t, int64_t, int64_t i, double* acc) const {
    const double v = x[i];
    acc[0] += v;
    acc[1] += v * v;
  }
};

// y, or (yb set) y rounded to bf16 into yb.
__global__ void gn_apply_kernel(const float* x, Normalize f, int64_t n, int64_t S, int64_t C, float* y, bf16* yb) {
  DD_GRID_STRIDE(i, n) {
    const BcIndex e = bc_index(i, S, C, n);
    const float r = f(e.b, e.c, x[i]);
    if (yb)
      yb[i] = bf16{dtype_conv::f32_to_bf16(r)};
    else
      y[i] = r;
  }
}

__global__ void gn_apply_quad_kernel(const float4* x, Normalize f, int64_t n, int64_t S, int64_t C, float4* y,
                                     uint2* yb) {
  DD_GRID_STRIDE(q, n / 4) {
    const BcIndex e = bc_index(4 * q, S, C, n);
    const float4 r = quad_map(f, e.b, e.c, x[q]);
    if (yb)
      yb[q] = bf16_quad(r);
    else
      y[q] = r;
  }
}

// sdx[b, c] = sum_s dy (x - mean), sdy[b, c] = sum_s dy; centring before the
// product avoids the cancellation of sum(dy x) - mean sum(dy). XT: float, or bf16 for x's bf16 copy.
template <typename XT>
struct BackwardTerm {
  const XT* x;
  const float* dy;
  const float* mean;
  int64_t G, D;
  __device__ void operator()(int64_t b, int64_t c, int64_t i, double* acc) const {
    const double g = dy[i];
    acc[0] += g * (static_cast<double>(dtype_conv::to_f32(x[i])) - mean[b * G + c / D]);
    acc[1] += g;
  }
};

// dx = (rstd gamma) dy - k (x - mean) - o.
struct InputGrad {
  const float* gamma;
  const float* mean;
  const float* rstd;
  const float* kk;
  const float* oo;
  int64_t G, D;
  __device__ float operator()(int64_t b, int64_t c, float x, float dy) const {
    const int64_t bg = b * G + c / D;
    const float a = static_cast<float>(static_cast<double>(rstd[bg]) * gamma[c]);
    return a * dy - kk[bg] * (x - mean[bg]) - oo[bg];
  }
};

template <typename XT>
__global__ void gn_dx_kernel(const XT* x, const float* dy, InputGrad f, int64_t n, int64_t S, int64_t C,
                             float* dx) {
  DD_GRID_STRIDE(i, n) {
    const BcIndex e = bc_index(i, S, C, n);
    dx[i] = f(e.b, e.c, dtype_conv::to_f32(x[i]), dy[i]);
  }
}

template <typename XT>
__global__ void gn_dx_quad_kernel(const XT* x, const float4* dy, InputGrad f, int64_t n, int64_t S, int64_t C,
                                  float4* dx) {
  DD_GRID_STRIDE(q, n / 4) {
    const BcIndex e = bc_index(4 * q, S, C, n);
    dx[q] = quad_map2(f, e.b, e.c, load_quad(x, q), dy[q]);
  }
}

template <typename XT>
GroupNormGrads backward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                        const Tensor& dy) {
  const GnDims d(x, mean.dim(1));
  GroupNormGrads out{Tensor::empty(x.shape(), x.device()), Tensor::empty({d.C}, x.device()),
                     Tensor::empty({d.C}, x.device())};
  const XT* px = x.data<XT>();
  DoubleScratch sums(2 * d.B * d.C);
  Tensor kk = Tensor::empty({d.B, d.G}, x.device()), oo = Tensor::empty({d.B, d.G}, x.device());
  const InputGrad f{gamma.data(), mean.data(), rstd.data(), kk.data(), oo.data(), d.G, d.D};
  const BackwardTerm<XT> term{px, dy.data(), mean.data(), d.G, d.D};
  if (group_norm_per_group(d.D)) {
    gn_group_backward<2>(term, f, px, dy.data(), gamma.data(), rstd.data(), d, sums.get(), kk.data(), oo.data(),
                         nullptr, nullptr, out.dx.data(), out.dgamma.data(), out.dbeta.data());
    return out;
  }
  channel_sums<2>(term, d.B, d.S, d.C, sums.get());
  const double* sdx = sums.get();
  const double* sdy = sums.get() + d.B * d.C;
  gn_backward_tail(sdx, sdy, gamma.data(), rstd.data(), d, out.dgamma.data(), out.dbeta.data(), kk.data(),
                   oo.data());
  const int64_t n = d.numel();
  if (quad_ok(d.C, {px, dy.data(), out.dx.data()})) {
    gn_dx_quad_kernel<XT><<<grid_for(n / 4), kThreads, 0, stream()>>>(
        px, reinterpret_cast<const float4*>(dy.data()), f, n, d.S, d.C, reinterpret_cast<float4*>(out.dx.data()));
    DD_CUDA_LAUNCH_CHECK("gn_dx_quad_kernel");
  } else {
    gn_dx_kernel<XT><<<grid_for(n), kThreads, 0, stream()>>>(px, dy.data(), f, n, d.S, d.C, out.dx.data());
    DD_CUDA_LAUNCH_CHECK("gn_dx_kernel");
  }
  return out;
}
}  // namespace

GroupNormOut group_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                float eps, bool y_bf16) {
  const GnDims d(x, groups);
  GroupNormOut out{Tensor::empty(x.shape(), x.device(), y_bf16 ? DType::BF16 : DType::F32),
                   Tensor::empty({d.B, d.G}, x.device()), Tensor::empty({d.B, d.G}, x.device())};
  float* const yf = y_bf16 ? nullptr : out.y.data();
  bf16* const yb = y_bf16 ? out.y.data<bf16>() : nullptr;
  DoubleScratch sums(2 * d.B * d.C), rstd_d(d.B * d.G);
  const Normalize f{gamma.data(), beta.data(), out.mean.data(), rstd_d.get(), d.G, d.D};
  if (group_norm_per_group(d.D)) {
    gn_group_forward(SumXTerm{x.data()}, f, x.data(), d, eps, sums.get(), out.mean.data(), out.rstd.data(),
                     rstd_d.get(), yf, nullptr, yb);
    return out;
  }
  channel_sums<2>(SumXTerm{x.data()}, d.B, d.S, d.C, sums.get());
  gn_stats(sums.get(), d, eps, out.mean.data(), out.rstd.data(), rstd_d.get());
  const int64_t n = d.numel();
  if (quad_ok(d.C, {x.data(), yf, yb})) {
    gn_apply_quad_kernel<<<grid_for(n / 4), kThreads, 0, stream()>>>(reinterpret_cast<const float4*>(x.data()), f, n,
                                                                     d.S, d.C, reinterpret_cast<float4*>(yf),
                                                                     reinterpret_cast<uint2*>(yb));
    DD_CUDA_LAUNCH_CHECK("gn_apply_quad_kernel");
  } else {
    gn_apply_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.data(), f, n, d.S, d.C, yf, yb);
    DD_CUDA_LAUNCH_CHECK("gn_apply_kernel");
  }
  return out;
}

GroupNormGrads group_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                                   const Tensor& dy) {
  if (x.dtype() == DType::BF16) return backward<bf16>(x, gamma, mean, rstd, dy);
  return backward<float>(x, gamma, mean, rstd, dy);
}

}  // namespace dd::kernels::cuda
