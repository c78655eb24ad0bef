#include "kernels/group_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace dd::kernels::cpu {

namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
// A partial sum covers a fixed number of spatial rows, chosen from the shape
// alone (never from the thread count), and partials are combined in order: the
// statistics are bitwise the same on every run and with any number of threads.
constexpr int64_t kChunkElems = 1 << 14;
constexpr int64_t kMinChunkRows = 32;

// x viewed as [B, S, C] with C = G groups of D channels.
struct Dims {
  int64_t B, S, C, G, D;
  Dims(const Tensor& x, int64_t groups)
      : B(x.dim(0)), S(x.numel() / (x.dim(0) * x.dim(-1))), C(x.dim(-1)), G(groups), D(x.dim(-1) / groups) {}
  int64_t numel() const { return B * S * C; }
};

// Per-(b, c) sums over the spatial positions, in double. row(b, offset, pa, pb)
// adds the C terms of the position starting at element `offset` into pa and pb.
// NHWC keeps channels contiguous, so the inner loop over c vectorizes; chunks of
// rows (rather than groups) are the parallel unit, which keeps every core busy
// even for GroupNorm(1, C) on a single image.
template <typename Row>
void channel_sums(const Dims& d, Row row, std::vector<double>& sum_a, std::vector<double>& sum_b) {
  const int64_t C = d.C;
  const int64_t rows = std::max(kMinChunkRows, kChunkElems / C);
  const int64_t per_b = (d.S + rows - 1) / rows;
  const int64_t chunks = d.B * per_b;
  std::vector<double> part(static_cast<std::size_t>(chunks * 2 * C));
#pragma omp parallel for schedule(static) if (d.numel() > kParallelMin && chunks > 1)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t b = k / per_b, s0 = (k % per_b) * rows, s1 = std::min(d.S, s0 + rows);
    double* pa = part.data() + k * 2 * C;
    double* pb = pa + C;
    std::fill(pa, pa + 2 * C, 0.0);
    for (int64_t s = s0; s < s1; ++s) row(b, (b * d.S + s) * C, pa, pb);
  }
  sum_a.assign(static_cast<std::size_t>(d.B * C), 0.0);
  sum_b.assign(static_cast<std::size_t>(d.B * C), 0.0);
#pragma omp parallel for schedule(static) if (chunks * C > kParallelMin && d.B > 1)
  for (int64_t b = 0; b < d.B; ++b) {
    double* oa = sum_a.data() + b * C;
    double* ob = sum_b.data() + b * C;
    for (int64_t k = b * per_b; k < (b + 1) * per_b; ++k) {
      const double* pa = part.data() + k * 2 * C;
      const double* pb = pa + C;
      for (int64_t c = 0; c < C; ++c) {
        oa[c] += pa[c];
        ob[c] += pb[c];
      }
    }
  }
}

// Each (b, s) row of out gets f(b, row offset); rows are independent.
template <typename F>
void for_each_row(const Dims& d, F f) {
#pragma omp parallel for schedule(static) if (d.numel() > kParallelMin)
  for (int64_t r = 0; r < d.B * d.S; ++r) f(r / d.S, r * d.C);
}
}  // namespace

GroupNormOut group_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                float eps) {
  const Dims d(x, groups);
  const int64_t C = d.C;
  const float* px = x.data();
  std::vector<double> sx, sxx;
  channel_sums(
      d,
      [px, C](int64_t, int64_t off, double* pa, double* pb) {
        const float* r = px + off;
        for (int64_t c = 0; c < C; ++c) {
          const double v = r[c];
          pa[c] += v;
          pb[c] += v * v;
        }
      },
      sx, sxx);

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
  return out;
}

GroupNormGrads group_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& dy) {
  const Dims d(x, mean.dim(1));
  const int64_t C = d.C;
  const float* px = x.data();
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
  std::vector<double> sdx, sdy;
  channel_sums(
      d,
      [&mean_bc, px, pdy, C](int64_t b, int64_t off, double* pa, double* pb) {
        const float* xr = px + off;
        const float* gr = pdy + off;
        const double* m = mean_bc.data() + b * C;
        for (int64_t c = 0; c < C; ++c) {
          const double g = gr[c];
          pa[c] += g * (static_cast<double>(xr[c]) - m[c]);
          pb[c] += g;
        }
      },
      sdx, sdy);

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
    const float* xr = px + off;
    const float* gr = pdy + off;
    float* dr = pdx + off;
    const float* a = a_bc.data() + b * C;
    const float* k = k_bc.data() + b * C;
    const float* o = o_bc.data() + b * C;
    const float* m = m_bc.data() + b * C;
    for (int64_t c = 0; c < C; ++c) dr[c] = a[c] * gr[c] - k[c] * (xr[c] - m[c]) - o[c];
  });
  return out;
}

}  // namespace dd::kernels::cpu
