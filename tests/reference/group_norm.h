#pragma once
// Naive float64 reference for nn.GroupNorm(G, C, eps) on a channels-last
// tensor viewed as [B, S, C] (S = all spatial positions): per (b, g) the mean
// and biased variance over S x (C/G) elements, y = (x - mean) / sqrt(var + eps) * gamma + beta.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace dd::ref {

struct GroupNormStats {
  std::vector<double> mean, rstd;  // [B, G]
};

inline GroupNormStats group_norm_stats(const std::vector<double>& x, int64_t B, int64_t S, int64_t C,
                                       int64_t G, double eps) {
  const int64_t D = C / G;
  GroupNormStats st;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      double sum = 0.0;
      for (int64_t s = 0; s < S; ++s)
        for (int64_t c = g * D; c < (g + 1) * D; ++c) sum += x[(b * S + s) * C + c];
      const double mean = sum / static_cast<double>(S * D);
      double sq = 0.0;
      for (int64_t s = 0; s < S; ++s)
        for (int64_t c = g * D; c < (g + 1) * D; ++c) {
          const double v = x[(b * S + s) * C + c] - mean;
          sq += v * v;
        }
      const double var = sq / static_cast<double>(S * D);
      st.mean.push_back(mean);
      st.rstd.push_back(1.0 / std::sqrt(var + eps));
    }
  return st;
}

// Condition number of the normalization in float32: xhat = (x - mean) * rstd
// computed from a float mean errs by ~u (|x| + |mean|) rstd, i.e. u times this
// (largest over the groups) in units of xhat. A group whose values nearly agree
// (std << |mean|) makes it large.
inline double group_norm_condition(const std::vector<double>& x, int64_t B, int64_t S, int64_t C, int64_t G,
                                   double eps = 1e-5) {
  const GroupNormStats st = group_norm_stats(x, B, S, C, G, eps);
  const int64_t D = C / G;
  double kappa = 0.0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t bg = b * G + c / D;
        kappa = std::max(kappa, (std::fabs(x[(b * S + s) * C + c]) + std::fabs(st.mean[bg])) * st.rstd[bg]);
      }
  return kappa;
}

inline std::vector<double> group_norm(const std::vector<double>& x, const std::vector<double>& gamma,
                                      const std::vector<double>& beta, int64_t B, int64_t S, int64_t C,
                                      int64_t G, double eps = 1e-5) {
  const GroupNormStats st = group_norm_stats(x, B, S, C, G, eps);
  const int64_t D = C / G;
  std::vector<double> y(x.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t i = (b * S + s) * C + c, bg = b * G + c / D;
        y[i] = (x[i] - st.mean[bg]) * st.rstd[bg] * gamma[c] + beta[c];
      }
  return y;
}

}  // namespace dd::ref
