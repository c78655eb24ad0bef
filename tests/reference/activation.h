#pragma once
// Naive float64 references for the pointwise activations.
#include <cmath>
#include <vector>

namespace dd::ref {

inline std::vector<double> silu(const std::vector<double>& x) {
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] / (1.0 + std::exp(-x[i]));
  return y;
}

inline std::vector<double> gelu(const std::vector<double>& x) {
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
  return y;
}

inline std::vector<double> relu(const std::vector<double>& x) {
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] > 0 ? x[i] : 0.0;
  return y;
}

}  // namespace dd::ref
