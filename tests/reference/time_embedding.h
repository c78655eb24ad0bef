#pragma once
// Naive float64 reference for SinusoidalPositionEmbeddings(dim): t [B] -> [B, dim].
#include <cmath>
#include <cstdint>
#include <vector>

namespace dd::ref {

inline std::vector<double> time_embedding(const std::vector<double>& t, int64_t dim) {
  const int64_t half = dim / 2;
  const double log_factor = std::log(10000.0) / static_cast<double>(half - 1);
  std::vector<double> y(t.size() * static_cast<std::size_t>(dim));
  for (std::size_t b = 0; b < t.size(); ++b)
    for (int64_t i = 0; i < half; ++i) {
      const double arg = t[b] * std::exp(-static_cast<double>(i) * log_factor);
      y[b * dim + i] = std::sin(arg);
      y[b * dim + half + i] = std::cos(arg);
    }
  return y;
}

}  // namespace dd::ref
