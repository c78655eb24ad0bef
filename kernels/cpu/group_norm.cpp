#include "kernels/group_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/channel_sums.h"

namespace dd::kernels::cpu {

using norm::channel_sums;
using norm::Dims;
using norm::for_each_row;

GroupNormOut group_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                float eps, bool y_bf16) {
  const Dims d(x, groups);
  const int64_t C = d.C;
  const float* px = x.data();
  // sums[0, b, c] = sum_s x, sums[1, b, c] = sum_s x^2.
  const std::vector<double> sums = channel_sums<2>(d, [px, C](int64_t, int64_t off, double* acc) {
    const float* r = px + off;
    for (int64_t c = 0; c < C; ++c) {
      const double v = r[c];
      acc[c] += v;
      acc[C + c] += v * v;
    }
  });
  const double* sx = sums.data();
  const double* sxx = sx + d.B * C;

  GroupNormOut out{Tensor::empty(x.shape()), Tensor::empty({d.B, d.G}), Tensor::empty({d.B, d.G})};
  float* pmean = out.mean.data();
  float* prstd = out.rstd.data();
  const float* pg = gamma.data();
  const float* pbeta = beta.data();
  // y = (x - mean) * (rstd * gamma) + beta, with both factors per (b, c).
  // Subtracting the mean first (rather than folding it into a shift, as
  // PyTorch does) keeps inputs with |mean| >> std accurate.
  std::vector<float> mean_bc(static_cast<std::size_t>(d.B * C)), scale_bc(mean_bc.size());
  const double n = static_cast<double>(d.S * d.D);
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t g = 0; g < d.G; ++g) {
      double s = 0.0, q = 0.0;
      for (int64_t c = g * d.D; c < (g + 1) * d.D; ++c) {
        s += sx[b * C + c];
        q += sxx[b * C + c];
      }
      const double m = s / n;
      const double var = std::max(q / n - m * m, 0.0);  // biased, as nn.GroupNorm
      const double r = 1.0 / std::sqrt(var + static_cast<double>(eps));
      pmean[b * d.G + g] = static_cast<float>(m);
      prstd[b * d.G + g] = static_cast<float>(r);
      for (int64_t c = g * d.D; c < (g + 1) * d.D; ++c) {
        mean_bc[b * C + c] = static_cast<float>(m);
        scale_bc[b * C + c] = static_cast<float>(r * pg[c]);
      }
    }

  float* py = out.y.data();
  for_each_row(d, [&](int64_t b, int64_t off) {
    const float* xr = px + off;
    float* yr = py + off;
    const float* m = mean_bc.data() + b * C;
    const float* k = scale_bc.data() + b * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - m[c]) * k[c] + pbeta[c];
  });
  if (y_bf16) out.y = out.y.to(DType::BF16);
  return out;
}

namespace {
// XT: float, or bf16 for x's bf16 copy (kernels/group_norm.h), read as its values.
template <typename XT>
GroupNormGrads backward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                        const Tensor& dy) {
  using dtype_conv::to_f32;
  const Dims d(x, mean.dim(1));
  const int64_t C = d.C;
  const XT* px = x.data<XT>();
  const float* pdy = dy.data();
  const float* pg = gamma.data();
  const float* pmean = mean.data();
  const float* prstd = rstd.data();

  std::vector<double> mean_bc(static_cast<std::size_t>(d.B * C));
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t c = 0; c < C; ++c) mean_bc[b * C + c] = pmean[b * d.G + c / d.D];

  // sdx[b, c] = sum_s dy * (x - mean), sdy[b, c] = sum_s dy: every sum the
  // three gradients need. Centring before multiplying avoids the cancellation
  // of sum(dy x) - mean sum(dy).
  const std::vector<double> sums = channel_sums<2>(d, [&mean_bc, px, pdy, C](int64_t b, int64_t off, double* acc) {
    const XT* xr = px + off;
    const float* gr = pdy + off;
    const double* m = mean_bc.data() + b * C;
    for (int64_t c = 0; c < C; ++c) {
      const double g = gr[c];
      acc[c] += g * (static_cast<double>(to_f32(xr[c])) - m[c]);
      acc[C + c] += g;
    }
  });
  const double* sdx = sums.data();
  const double* sdy = sdx + d.B * C;

  GroupNormGrads out{Tensor::empty(x.shape()), Tensor::empty({C}), Tensor::empty({C})};
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

  // With xhat = (x - mean) rstd and dxhat = gamma dy, over the n elements of a group:
  //   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
  //      = (rstd gamma) dy - rstd^3 mean(dxhat (x - mean)) (x - mean) - rstd mean(dxhat).
  std::vector<float> a_bc(static_cast<std::size_t>(d.B * C)), k_bc(a_bc.size()), o_bc(a_bc.size()),
      m_bc(a_bc.size());
  const double n = static_cast<double>(d.S * d.D);
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t g = 0; g < d.G; ++g) {
      double s1 = 0.0, s2 = 0.0;
      for (int64_t c = g * d.D; c < (g + 1) * d.D; ++c) {
        s1 += pg[c] * sdy[b * C + c];
        s2 += pg[c] * sdx[b * C + c];
      }
      const double r = prstd[b * d.G + g];
      const float k = static_cast<float>(r * r * r * s2 / n);
      const float o = static_cast<float>(r * s1 / n);
      for (int64_t c = g * d.D; c < (g + 1) * d.D; ++c) {
        a_bc[b * C + c] = static_cast<float>(r * pg[c]);
        k_bc[b * C + c] = k;
        o_bc[b * C + c] = o;
        m_bc[b * C + c] = pmean[b * d.G + g];
      }
    }

  float* pdx = out.dx.data();
  for_each_row(d, [&](int64_t b, int64_t off) {
    const XT* xr = px + off;
    const float* gr = pdy + off;
    float* dr = pdx + off;
    const float* a = a_bc.data() + b * C;
    const float* k = k_bc.data() + b * C;
    const float* o = o_bc.data() + b * C;
    const float* m = m_bc.data() + b * C;
    for (int64_t c = 0; c < C; ++c) dr[c] = a[c] * gr[c] - k[c] * (to_f32(xr[c]) - m[c]) - o[c];
  });
  return out;
}
}  // namespace

GroupNormGrads group_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& dy) {
  if (x.dtype() == DType::BF16) return backward<bf16>(x, gamma, mean, rstd, dy);
  return backward<float>(x, gamma, mean, rstd, dy);
}

}  // namespace dd::kernels::cpu
