#include "kernels/activation_math.h"
#include "kernels/cuda/group_norm_common.cuh"
#include "kernels/cuda/group_norm_per_group.cuh"
#include "kernels/group_norm_act.h"
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

// h = GroupNorm(x), u = h (scale + 1) + shift (or h), y = SiLU(u): the CPU's float expressions.
template <bool kScaleShift>
struct Forward {
  Normalize norm;
  const float* scale;
  const float* shift;
  int64_t C;
  __device__ float operator()(int64_t b, int64_t c, float x) const {
    float u = norm(b, c, x);
    if constexpr (kScaleShift) {
      const int64_t j = b * C + c;
      u = u * (scale[j] + 1.0f) + shift[j];
    }
    return silu_f(u);
  }
};

// xb (unless null) gets x rounded to bf16 in the same pass: the copy a Block's backward keeps
// under Precision::BF16 (kernels/conv2d_norm_act.h). y goes to yb instead, rounded to bf16, when
// yb is set (the Block's bf16_y).
template <bool kScaleShift>
__global__ void gna_forward_kernel(const float* x, Forward<kScaleShift> f, int64_t n, int64_t S, float* y,
                                   bf16* xb, bf16* yb) {
  DD_GRID_STRIDE(i, n) {
    const BcIndex e = bc_index(i, S, f.C, n);
    const float r = f(e.b, e.c, x[i]);
    if (yb)
      yb[i] = bf16{dtype_conv::f32_to_bf16(r)};
    else
      y[i] = r;
    if (xb) xb[i] = bf16{dtype_conv::f32_to_bf16(x[i])};
  }
}

template <bool kScaleShift>
__global__ void gna_forward_quad_kernel(const float4* x, Forward<kScaleShift> f, int64_t n, int64_t S, float4* y,
                                        uint2* xb, uint2* yb) {
  DD_GRID_STRIDE(q, n / 4) {
    const BcIndex e = bc_index(4 * q, S, f.C, n);
    const float4 v = x[q];
    const float4 r = quad_map(f, e.b, e.c, v);
    if (yb)
      yb[q] = bf16_quad(r);
    else
      y[q] = r;
    if (xb) xb[q] = bf16_quad(v);
  }
}

// Recomputes, for element i = (b, s, c), what the backward needs from x, the
// statistics and dy: x, h, du = dL/du and dh = dL/dh. k = rstd * gamma is
// also dx's per-(b, c) factor. XT is float, or bf16 for the bf16 copy of x (read as its value).
template <bool kScaleShift, typename XT>
struct Recompute {
  const XT* x;
  const float* dy;
  const float* gamma;
  const float* beta;
  const float* scale;
  const float* shift;
  const float* mean;
  const float* rstd;
  int64_t C, G, D;
  struct Vals {
    float x, m, k, h, du, dh;
  };
  __device__ Vals operator()(int64_t b, int64_t c, int64_t i) const { return at(b, c, dtype_conv::to_f32(x[i]), dy[i]); }
  // The same from the loaded x and dy of the element.
  __device__ Vals at(int64_t b, int64_t c, float xv, float dyv) const {
    Vals v;
    const int64_t bg = b * G + c / D;
    v.x = xv;
    v.m = mean[bg];
    v.k = static_cast<float>(static_cast<double>(rstd[bg]) * gamma[c]);
    v.h = (v.x - v.m) * v.k + beta[c];
    if constexpr (kScaleShift) {
      const float s1 = scale[b * C + c] + 1.0f;
      v.du = silu_grad_f(v.h * s1 + shift[b * C + c], dyv);
      v.dh = v.du * s1;
    } else {
      v.du = silu_grad_f(v.h, dyv);
      v.dh = v.du;
    }
    return v;
  }
};

// Per (b, c): sdx = sum dh (x - mean), sdy = sum dh; with scale/shift also
// dscale = sum du h and dshift = sum du.
template <bool kScaleShift, typename XT>
struct BackwardTerm {
  Recompute<kScaleShift, XT> r;
  __device__ void operator()(int64_t b, int64_t c, int64_t i, double* acc) const {
    const typename Recompute<kScaleShift, XT>::Vals v = r(b, c, i);
    const double g = v.dh;
    acc[0] += g * (static_cast<double>(v.x) - v.m);
    acc[1] += g;
    if constexpr (kScaleShift) {
      acc[2] += static_cast<double>(v.du) * v.h;
      acc[3] += v.du;
    }
  }
};

// dx = k dh - kk (x - mean) - oo, from the recomputed values.
template <bool kScaleShift, typename XT>
struct InputGrad {
  Recompute<kScaleShift, XT> r;
  const float* kk;
  const float* oo;
  __device__ float operator()(int64_t b, int64_t c, float xv, float dyv) const {
    const typename Recompute<kScaleShift, XT>::Vals v = r.at(b, c, xv, dyv);
    const int64_t bg = b * r.G + c / r.D;
    return v.k * v.dh - kk[bg] * (v.x - v.m) - oo[bg];
  }
};

template <bool kScaleShift, typename XT>
__global__ void gna_dx_kernel(InputGrad<kScaleShift, XT> f, int64_t n, int64_t S, float* dx) {
  DD_GRID_STRIDE(i, n) {
    const BcIndex e = bc_index(i, S, f.r.C, n);
    dx[i] = f(e.b, e.c, dtype_conv::to_f32(f.r.x[i]), f.r.dy[i]);
  }
}

template <bool kScaleShift, typename XT>
__global__ void gna_dx_quad_kernel(InputGrad<kScaleShift, XT> f, int64_t n, int64_t S, float4* dx) {
  const float4* dy = reinterpret_cast<const float4*>(f.r.dy);
  DD_GRID_STRIDE(q, n / 4) {
    const BcIndex e = bc_index(4 * q, S, f.r.C, n);
    dx[q] = quad_map2(f, e.b, e.c, load_quad(f.r.x, q), dy[q]);
  }
}

template <bool kScaleShift, typename XT>
GroupNormActGrads backward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                           const Tensor& shift, const Tensor& mean, const Tensor& rstd, const Tensor& dy) {
  const GnDims d(x, mean.dim(1));
  const int64_t BC = d.B * d.C;
  GroupNormActGrads out{Tensor::empty(x.shape(), x.device()), Tensor::empty({d.C}, x.device()),
                        Tensor::empty({d.C}, x.device()), Tensor(), Tensor()};
  const Recompute<kScaleShift, XT> r{x.data<XT>(),
                                 dy.data(),
                                 gamma.data(),
                                 beta.data(),
                                 kScaleShift ? scale.data() : nullptr,
                                 kScaleShift ? shift.data() : nullptr,
                                 mean.data(),
                                 rstd.data(),
                                 d.C,
                                 d.G,
                                 d.D};
  constexpr int K = kScaleShift ? 4 : 2;
  DoubleScratch sums(K * BC);
  if constexpr (kScaleShift) {
    out.dscale = Tensor::empty({d.B, d.C}, x.device());
    out.dshift = Tensor::empty({d.B, d.C}, x.device());
  }
  Tensor kk = Tensor::empty({d.B, d.G}, x.device()), oo = Tensor::empty({d.B, d.G}, x.device());
  if (group_norm_per_group(d.D)) {
    gn_group_backward<K>(BackwardTerm<kScaleShift, XT>{r}, InputGrad<kScaleShift, XT>{r, kk.data(), oo.data()},
                         x.data<XT>(), dy.data(), gamma.data(), rstd.data(), d, sums.get(), kk.data(), oo.data(),
                         kScaleShift ? out.dscale.data() : nullptr, kScaleShift ? out.dshift.data() : nullptr,
                         out.dx.data(), out.dgamma.data(), out.dbeta.data());
    return out;
  }
  channel_sums<K>(BackwardTerm<kScaleShift, XT>{r}, d.B, d.S, d.C, sums.get());
  if constexpr (kScaleShift) {
    double_to_float(sums.get() + 2 * BC, out.dscale.data(), BC);
    double_to_float(sums.get() + 3 * BC, out.dshift.data(), BC);
  }
  gn_backward_tail(sums.get(), sums.get() + BC, gamma.data(), rstd.data(), d, out.dgamma.data(), out.dbeta.data(),
                   kk.data(), oo.data());
  const int64_t n = d.numel();
  const InputGrad<kScaleShift, XT> f{r, kk.data(), oo.data()};
  if (quad_ok(d.C, {x.raw_data(), dy.data(), out.dx.data()})) {
    gna_dx_quad_kernel<kScaleShift, XT><<<grid_for(n / 4), kThreads, 0, stream()>>>(f, n, d.S,
                                                                               reinterpret_cast<float4*>(out.dx.data()));
    DD_CUDA_LAUNCH_CHECK("gna_dx_quad_kernel");
  } else {
    gna_dx_kernel<kScaleShift, XT><<<grid_for(n), kThreads, 0, stream()>>>(f, n, d.S, out.dx.data());
    DD_CUDA_LAUNCH_CHECK("gna_dx_kernel");
  }
  return out;
}
// xb: x's bf16 copy to write, or null. y F32, or BF16 (written rounded).
template <bool kScaleShift>
void forward_pass(const Tensor& x, const Forward<kScaleShift>& f, int64_t n, int64_t S, Tensor& y, bf16* xb) {
  const bool y_bf16 = y.dtype() == DType::BF16;
  float* const yf = y_bf16 ? nullptr : y.data();
  bf16* const yb = y_bf16 ? y.data<bf16>() : nullptr;
  if (quad_ok(f.C, {x.data(), yf, yb, xb})) {
    gna_forward_quad_kernel<kScaleShift><<<grid_for(n / 4), kThreads, 0, stream()>>>(
        reinterpret_cast<const float4*>(x.data()), f, n, S, reinterpret_cast<float4*>(yf), reinterpret_cast<uint2*>(xb),
        reinterpret_cast<uint2*>(yb));
    DD_CUDA_LAUNCH_CHECK("gna_forward_quad_kernel");
  } else {
    gna_forward_kernel<kScaleShift><<<grid_for(n), kThreads, 0, stream()>>>(x.data(), f, n, S, yf, xb, yb);
    DD_CUDA_LAUNCH_CHECK("gna_forward_kernel");
  }
}

// Both forwards past their sums: statistics, then y (and x_bf16 when asked for). sums null: the
// per-group kernel (group_norm_per_group.cuh) takes the sums, the statistics and y in one launch.
// y_bf16: y written in bf16 (group_norm_act_forward_sums).
GroupNormActOut forward_from_sums(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                                  const Tensor& shift, const GnDims& d, float eps, const double* sums,
                                  Tensor* x_bf16, bool y_bf16 = false) {
  GroupNormActOut out{Tensor::empty(x.shape(), x.device(), y_bf16 ? DType::BF16 : DType::F32),
                      Tensor::empty({d.B, d.G}, x.device()), Tensor::empty({d.B, d.G}, x.device())};
  bf16* xb = nullptr;
  if (x_bf16) {
    *x_bf16 = Tensor::empty(x.shape(), x.device(), DType::BF16);
    xb = x_bf16->data<bf16>();
  }
  DoubleScratch rstd_d(d.B * d.G);
  const Normalize norm{gamma.data(), beta.data(), out.mean.data(), rstd_d.get(), d.G, d.D};
  auto apply = [&](const auto& f) {
    if (!sums) {
      DoubleScratch own(2 * d.B * d.C);
      gn_group_forward(SumXTerm{x.data()}, f, x.data(), d, eps, own.get(), out.mean.data(), out.rstd.data(),
                       rstd_d.get(), y_bf16 ? nullptr : out.y.data(), xb, y_bf16 ? out.y.data<bf16>() : nullptr);
      return;
    }
    gn_stats(sums, d, eps, out.mean.data(), out.rstd.data(), rstd_d.get());
    forward_pass(x, f, d.numel(), d.S, out.y, xb);
  };
  if (scale.defined())
    apply(Forward<true>{norm, scale.data(), shift.data(), d.C});
  else
    apply(Forward<false>{norm, nullptr, nullptr, d.C});
  return out;
}
}  // namespace

GroupNormActOut group_norm_act_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& scale, const Tensor& shift, int64_t groups, float eps) {
  const GnDims d(x, groups);
  if (group_norm_per_group(d.D)) return forward_from_sums(x, gamma, beta, scale, shift, d, eps, nullptr, nullptr);
  DoubleScratch sums(2 * d.B * d.C);
  channel_sums<2>(SumXTerm{x.data()}, d.B, d.S, d.C, sums.get());
  return forward_from_sums(x, gamma, beta, scale, shift, d, eps, sums.get(), nullptr);
}

GroupNormActOut group_norm_act_forward_sums(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                            const Tensor& scale, const Tensor& shift, int64_t groups, float eps,
                                            const Tensor& sums, Tensor* x_bf16, bool y_bf16) {
  const GnDims d(x, groups);
  DD_CHECK(sums.defined() && sums.device() == x.device() && sums.dtype() == DType::F32 &&
               sums.numel() == 4 * d.B * d.C,
           "group_norm_act_forward_sums: sums ", describe(sums), " for x ", describe(x),
           " must be an F32 tensor of 4 x B x C words on its device (2 x B x C doubles)");
  return forward_from_sums(x, gamma, beta, scale, shift, d, eps, reinterpret_cast<const double*>(sums.data()),
                           x_bf16, y_bf16);
}

GroupNormActGrads group_norm_act_backward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& scale, const Tensor& shift, const Tensor& mean,
                                          const Tensor& rstd, const Tensor& dy) {
  const bool ss = scale.defined();
  if (x.dtype() == DType::BF16)
    return ss ? backward<true, bf16>(x, gamma, beta, scale, shift, mean, rstd, dy)
              : backward<false, bf16>(x, gamma, beta, scale, shift, mean, rstd, dy);
  return ss ? backward<true, float>(x, gamma, beta, scale, shift, mean, rstd, dy)
            : backward<false, float>(x, gamma, beta, scale, shift, mean, rstd, dy);
}

}  // namespace dd::kernels::cuda
