#pragma once
// Naive float64 reference for torch.nn.functional.linear: x [m, k], w [n, k],
// bias [n] or empty; y = x w^T + b.
#include <cstdint>
#include <vector>

namespace dd::ref {

inline std::vector<double> linear(int64_t m, int64_t k, int64_t n, const std::vector<double>& x,
                                  const std::vector<double>& w, const std::vector<double>& bias) {
  std::vector<double> y(static_cast<std::size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(j)];
      for (int64_t t = 0; t < k; ++t)
        s += x[static_cast<std::size_t>(i * k + t)] * w[static_cast<std::size_t>(j * k + t)];
      y[static_cast<std::size_t>(i * n + j)] = s;
    }
  return y;
}

}  // namespace dd::ref
