#pragma once
// Naive float64 reference for annotated-diffusion's weight standardisation:
// for each output channel o (the first dim), over all its n elements,
//   mean = sum / n, var = sum (w - mean)^2 / n (unbiased=False),
//   w_hat = (w - mean) * (var + eps)^-1/2.
#include <cmath>
#include <cstdint>
#include <vector>

namespace dd::ref {

inline std::vector<double> weight_standardize(int64_t out_channels, const std::vector<double>& w, double eps = 1e-5) {
  const std::size_t n = w.size() / static_cast<std::size_t>(out_channels);
  std::vector<double> y(w.size());
  for (std::size_t o = 0; o < static_cast<std::size_t>(out_channels); ++o) {
    double mean = 0.0;
    for (std::size_t i = 0; i < n; ++i) mean += w[o * n + i];
    mean /= static_cast<double>(n);
    double var = 0.0;
    for (std::size_t i = 0; i < n; ++i) var += (w[o * n + i] - mean) * (w[o * n + i] - mean);
    var /= static_cast<double>(n);
    for (std::size_t i = 0; i < n; ++i) y[o * n + i] = (w[o * n + i] - mean) / std::sqrt(var + eps);
  }
  return y;
}

}  // namespace dd::ref
