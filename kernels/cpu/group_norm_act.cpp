#include "kernels/group_norm_act.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "kernels/activation_math.h"
#include "kernels/cpu/channel_sums.h"
#include "kernels/cpu/gemm.h"

namespace dd::kernels::cpu {

namespace {
using norm::channel_sums;
using norm::Dims;
using norm::for_each_row;

// Per (b, c): the group's mean and rstd * gamma, as group_norm's forward rounds them.
struct Affine {
  std::vector<float> mean, scale;  // [B, C]
};

// Recomputes one row's normalized value h, pre-activation u and their
// gradients du, dh from dy: the unfused chain's float expressions exactly. x is float or bf16 (a
// Block's conv output kept in bf16 under Precision::BF16), read as its float value.
template <bool kScaleShift, typename XT>
struct RowGrad {
  const XT* x;
  const float* dy;
  const float* beta;
  const float* scale;
  const float* shift;
  const Affine* aff;
  int64_t C;
  // f(c, x, h, du, dh) for each channel of the row at `off` in batch item b.
  template <typename F>
  void operator()(int64_t b, int64_t off, F f) const {
    const XT* xr = x + off;
    const float* gr = dy + off;
    const float* m = aff->mean.data() + b * C;
    const float* k = aff->scale.data() + b * C;
    const float* sr = kScaleShift ? scale + b * C : nullptr;
    const float* hr = kScaleShift ? shift + b * C : nullptr;
    // Channels are independent (f writes per-channel slots only): vectorize across them, which the
    // compiler does not attempt on its own once f keeps four accumulators.
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const float xv = dtype_conv::to_f32(xr[c]);
      const float h = (xv - m[c]) * k[c] + beta[c];
      const float u = kScaleShift ? h * (sr[c] + 1.0f) + hr[c] : h;
      const float du = silu_grad_f(u, gr[c]);
      const float dh = kScaleShift ? du * (sr[c] + 1.0f) : du;
      f(c, xv, h, du, dh);
    }
  }
};

template <bool kScaleShift, typename XT>
GroupNormActGrads backward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                           const Tensor& shift, const Tensor& mean, const Tensor& rstd, const Tensor& dy,
                           float* dx_column_sums) {
  const Dims d(x, mean.dim(1));
  const int64_t C = d.C, BC = d.B * C;
  const float* pg = gamma.data();
  const float* pmean = mean.data();
  const float* prstd = rstd.data();

  Affine aff{std::vector<float>(static_cast<std::size_t>(BC)), std::vector<float>(static_cast<std::size_t>(BC))};
  std::vector<double> mean_d(static_cast<std::size_t>(BC));
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t bg = b * d.G + c / d.D;
      aff.mean[b * C + c] = pmean[bg];
      aff.scale[b * C + c] = static_cast<float>(static_cast<double>(prstd[bg]) * pg[c]);
      mean_d[b * C + c] = pmean[bg];
    }
  const RowGrad<kScaleShift, XT> rg{x.data<XT>(),
                                dy.data(),
                                beta.data(),
                                kScaleShift ? scale.data() : nullptr,
                                kScaleShift ? shift.data() : nullptr,
                                &aff,
                                C};

  // Pass 1, per (b, c): sdx = sum dh (x - mean), sdy = sum dh (GroupNorm's),
  // and with scale/shift sds = sum du h (dscale), sdu = sum du (dshift).
  constexpr int K = kScaleShift ? 4 : 2;
  const std::vector<double> sums = channel_sums<K>(d, [&](int64_t b, int64_t off, double* acc) {
    const double* m = mean_d.data() + b * C;
    rg(b, off, [&](int64_t c, float xv, float h, float du, float dh) {
      const double g = dh;
      acc[c] += g * (static_cast<double>(xv) - m[c]);
      acc[C + c] += g;
      if (kScaleShift) {
        acc[2 * C + c] += static_cast<double>(du) * h;
        acc[3 * C + c] += du;
      }
    });
  });
  const double* sdx = sums.data();
  const double* sdy = sums.data() + BC;

  GroupNormActGrads out{Tensor::empty(x.shape()), Tensor::empty({C}), Tensor::empty({C}), Tensor(), Tensor()};
  if (kScaleShift) {
    out.dscale = Tensor::empty({d.B, C});
    out.dshift = Tensor::empty({d.B, C});
    float* ps = out.dscale.data();
    float* ph = out.dshift.data();
    for (int64_t i = 0; i < BC; ++i) {
      ps[i] = static_cast<float>(sums[2 * BC + i]);
      ph[i] = static_cast<float>(sums[3 * BC + i]);
    }
  }
  float* pdgamma = out.dgamma.data();
  float* pdbeta = out.dbeta.data();
  for (int64_t c = 0; c < C; ++c) {
    double sg = 0.0, sb = 0.0;
    for (int64_t b = 0; b < d.B; ++b) {
      sg += sdx[b * C + c] * prstd[b * d.G + c / d.D];
      sb += sdy[b * C + c];
    }
    pdgamma[c] = static_cast<float>(sg);
    pdbeta[c] = static_cast<float>(sb);
  }

  // dx = (rstd gamma) dh - k (x - mean) - o per (b, g), as in group_norm's backward.
  std::vector<float> k_bc(static_cast<std::size_t>(BC)), o_bc(k_bc.size());
  const double n = static_cast<double>(d.S * d.D);
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t g = 0; g < d.G; ++g) {
      double s1 = 0.0, s2 = 0.0;
      for (int64_t c = g * d.D; c < (g + 1) * d.D; ++c) {
        s1 += pg[c] * sdy[b * C + c];
        s2 += pg[c] * sdx[b * C + c];
      }
      const double r = prstd[b * d.G + g];
      const float kk = static_cast<float>(r * r * r * s2 / n);
      const float o = static_cast<float>(r * s1 / n);
      for (int64_t c = g * d.D; c < (g + 1) * d.D; ++c) {
        k_bc[b * C + c] = kk;
        o_bc[b * C + c] = o;
      }
    }

  // Pass 2: recompute dh and write dx.
  float* pdx = out.dx.data();
  auto dx_row = [&](int64_t b, int64_t off) {
    float* dr = pdx + off;
    const float* a = aff.scale.data() + b * C;
    const float* m = aff.mean.data() + b * C;
    const float* kr = k_bc.data() + b * C;
    const float* o = o_bc.data() + b * C;
    rg(b, off, [&](int64_t c, float xv, float, float, float dh) { dr[c] = a[c] * dh - kr[c] * (xv - m[c]) - o[c]; });
  };
  if (!dx_column_sums) {
    for_each_row(d, dx_row);
    return out;
  }
  // With the column sums of dx (a preceding conv's bias gradient): each row's sum taken as it is
  // written, in column_sums' fixed blocks and order (kernels/cpu/gemm.h), so the bits are the ones
  // column_sums(dx) gives, without its pass over dx.
  const int64_t rows = d.B * d.S, blocks = (rows + kColumnSumBlock - 1) / kColumnSumBlock;
  std::vector<double> partial(static_cast<std::size_t>(blocks * C), 0.0);
#pragma omp parallel for schedule(static) if (d.numel() > norm::kParallelMin)
  for (int64_t k = 0; k < blocks; ++k) {
    double* p = partial.data() + k * C;
    for (int64_t r = k * kColumnSumBlock; r < std::min(rows, (k + 1) * kColumnSumBlock); ++r) {
      dx_row(r / d.S, r * C);
      const float* row = pdx + r * C;
      for (int64_t c = 0; c < C; ++c) p[c] += row[c];
    }
  }
  fold_column_sums(partial.data(), blocks, C, dx_column_sums);
  return out;
}
}  // namespace

GroupNormActOut group_norm_act_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& scale, const Tensor& shift, int64_t groups, float eps) {
  const Dims d(x, groups);
  const int64_t C = d.C;
  const float* px = x.data();
  const std::vector<double> sums = channel_sums<2>(d, [px, C](int64_t, int64_t off, double* acc) {
    const float* r = px + off;
    for (int64_t c = 0; c < C; ++c) {
      const double v = r[c];
      acc[c] += v;
      acc[C + c] += v * v;
    }
  });
  return group_norm_act_forward_sums(x, gamma, beta, scale, shift, groups, eps, sums);
}

GroupNormActOut group_norm_act_forward_sums(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                            const Tensor& scale, const Tensor& shift, int64_t groups, float eps,
                                            const std::vector<double>& sums, Tensor* x_bf16) {
  const Dims d(x, groups);
  const int64_t C = d.C, BC = d.B * C;
  DD_CHECK(static_cast<int64_t>(sums.size()) == 2 * BC, "group_norm_act_forward_sums: ", sums.size(),
           " sums for x ", describe(x), "; expected 2 x B x C = ", 2 * BC);
  const float* px = x.data();

  GroupNormActOut out{Tensor::empty(x.shape()), Tensor::empty({d.B, d.G}), Tensor::empty({d.B, d.G})};
  float* pmean = out.mean.data();
  float* prstd = out.rstd.data();
  const float* pg = gamma.data();
  // group_norm's statistics and per-(b, c) factors, rounded as it rounds them.
  Affine aff{std::vector<float>(static_cast<std::size_t>(BC)), std::vector<float>(static_cast<std::size_t>(BC))};
  const double n = static_cast<double>(d.S * d.D);
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t g = 0; g < d.G; ++g) {
      double s = 0.0, q = 0.0;
      for (int64_t c = g * d.D; c < (g + 1) * d.D; ++c) {
        s += sums[b * C + c];
        q += sums[BC + b * C + c];
      }
      const double m = s / n;
      const double var = std::max(q / n - m * m, 0.0);  // biased, as nn.GroupNorm
      const double r = 1.0 / std::sqrt(var + static_cast<double>(eps));
      pmean[b * d.G + g] = static_cast<float>(m);
      prstd[b * d.G + g] = static_cast<float>(r);
      for (int64_t c = g * d.D; c < (g + 1) * d.D; ++c) {
        aff.mean[b * C + c] = static_cast<float>(m);
        aff.scale[b * C + c] = static_cast<float>(r * pg[c]);
      }
    }

  const bool ss = scale.defined();
  const float* pbeta = beta.data();
  const float* psc = ss ? scale.data() : nullptr;
  const float* psh = ss ? shift.data() : nullptr;
  float* py = out.y.data();
  bf16* pxb = nullptr;
  if (x_bf16) {
    *x_bf16 = Tensor::empty(x.shape(), Device::CPU, DType::BF16);
    pxb = x_bf16->data<bf16>();
  }
  for_each_row(d, [&](int64_t b, int64_t off) {
    const float* xr = px + off;
    float* yr = py + off;
    if (pxb)
      for (int64_t c = 0; c < C; ++c) pxb[off + c] = bf16{dtype_conv::f32_to_bf16(xr[c])};
    const float* m = aff.mean.data() + b * C;
    const float* k = aff.scale.data() + b * C;
    if (ss) {
      const float* sr = psc + b * C;
      const float* hr = psh + b * C;
      for (int64_t c = 0; c < C; ++c) {
        const float h = (xr[c] - m[c]) * k[c] + pbeta[c];
        yr[c] = silu_f(h * (sr[c] + 1.0f) + hr[c]);
      }
    } else {
      for (int64_t c = 0; c < C; ++c) yr[c] = silu_f((xr[c] - m[c]) * k[c] + pbeta[c]);
    }
  });
  return out;
}

GroupNormActGrads group_norm_act_backward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& scale, const Tensor& shift, const Tensor& mean,
                                          const Tensor& rstd, const Tensor& dy) {
  return group_norm_act_backward_dsum(x, gamma, beta, scale, shift, mean, rstd, dy, nullptr);
}

GroupNormActGrads group_norm_act_backward_dsum(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                               const Tensor& scale, const Tensor& shift, const Tensor& mean,
                                               const Tensor& rstd, const Tensor& dy, float* dx_column_sums) {
  const bool ss = scale.defined();
  if (x.dtype() == DType::BF16)
    return ss ? backward<true, bf16>(x, gamma, beta, scale, shift, mean, rstd, dy, dx_column_sums)
              : backward<false, bf16>(x, gamma, beta, scale, shift, mean, rstd, dy, dx_column_sums);
  return ss ? backward<true, float>(x, gamma, beta, scale, shift, mean, rstd, dy, dx_column_sums)
            : backward<false, float>(x, gamma, beta, scale, shift, mean, rstd, dy, dx_column_sums);
}

}  // namespace dd::kernels::cpu
