#include "kernels/weight_standardize.h"

#include <cmath>

namespace dd::kernels::cpu {

namespace {
// Weights are small (<= a few M elements): one output channel per iteration,
// statistics in double so w_hat carries only its final float rounding.
constexpr int64_t kParallelMin = 1 << 15;

struct RowStats {
  double mean, rstd;
};

RowStats row_stats(const float* w, int64_t n, float eps) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += w[i];
  const double mean = s / static_cast<double>(n);
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += (w[i] - mean) * (w[i] - mean);
  return {mean, 1.0 / std::sqrt(ss / static_cast<double>(n) + static_cast<double>(eps))};
}
}  // namespace

Tensor weight_standardize_forward(const Tensor& w, float eps) {
  const int64_t rows = w.dim(0), n = w.numel() / rows;
  Tensor out = Tensor::empty(w.shape());
  const float* pw = w.data();
  float* po = out.data();
#pragma omp parallel for schedule(static) if (w.numel() > kParallelMin)
  for (int64_t o = 0; o < rows; ++o) {
    const float* src = pw + o * n;
    float* dst = po + o * n;
    const RowStats st = row_stats(src, n, eps);
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>((src[i] - st.mean) * st.rstd);
  }
  return out;
}

Tensor weight_standardize_backward(const Tensor& w, const Tensor& dw_hat, float eps) {
  const int64_t rows = w.dim(0), n = w.numel() / rows;
  Tensor dw = Tensor::empty(w.shape());
  const float* pw = w.data();
  const float* pg = dw_hat.data();
  float* pd = dw.data();
#pragma omp parallel for schedule(static) if (w.numel() > kParallelMin)
  for (int64_t o = 0; o < rows; ++o) {
    const float* src = pw + o * n;
    const float* g = pg + o * n;
    const RowStats st = row_stats(src, n, eps);
    double sg = 0.0, sgx = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      sg += g[i];
      sgx += g[i] * ((src[i] - st.mean) * st.rstd);
    }
    const double mg = sg / static_cast<double>(n), mgx = sgx / static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) {
      const double xhat = (src[i] - st.mean) * st.rstd;
      pd[o * n + i] = static_cast<float>(st.rstd * (g[i] - mg - xhat * mgx));
    }
  }
  return dw;
}

}  // namespace dd::kernels::cpu
