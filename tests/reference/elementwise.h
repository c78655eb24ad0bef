#pragma once
// Naive float64 references for same-shape arithmetic.
#include <vector>

namespace dd::ref {

template <typename F>
std::vector<double> zip(const std::vector<double>& a, const std::vector<double>& b, F f) {
  std::vector<double> y(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) y[i] = f(a[i], b[i]);
  return y;
}

inline std::vector<double> add(const std::vector<double>& a, const std::vector<double>& b) {
  return zip(a, b, [](double x, double y) { return x + y; });
}
inline std::vector<double> sub(const std::vector<double>& a, const std::vector<double>& b) {
  return zip(a, b, [](double x, double y) { return x - y; });
}
inline std::vector<double> mul(const std::vector<double>& a, const std::vector<double>& b) {
  return zip(a, b, [](double x, double y) { return x * y; });
}
inline std::vector<double> affine(const std::vector<double>& a, double alpha, double beta) {
  std::vector<double> y(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) y[i] = alpha * a[i] + beta;
  return y;
}

}  // namespace dd::ref
