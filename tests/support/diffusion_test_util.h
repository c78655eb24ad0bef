#pragma once
// Small helpers shared by the diffusion tests (tests/test_diffusion*.cpp).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/tensor.h"
#include "tests/support/compare.h"

namespace dd::test {

inline std::vector<double> gather(const std::vector<double>& buf, const std::vector<int64_t>& t) {
  std::vector<double> v;
  for (int64_t ti : t) v.push_back(buf[static_cast<std::size_t>(ti)]);
  return v;
}
// The value a float32 coefficient tensor holds, as double (so the reference
// judges the arithmetic, not the coefficients' rounding).
inline std::vector<double> as_f32(const std::vector<double>& v) {
  std::vector<double> r;
  for (double x : v) r.push_back(static_cast<double>(static_cast<float>(x)));
  return r;
}
inline Tensor coef_tensor(const std::vector<double>& v) { return from_double({static_cast<int64_t>(v.size())}, v); }
inline std::vector<double> sqrt_all(std::vector<double> v) {
  for (double& x : v) x = std::sqrt(x);
  return v;
}
// Largest |v|: the scale the terms of an x0 estimate had before clamping.
inline double max_abs(const std::vector<double>& v) {
  double m = 1.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}
inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

}  // namespace dd::test
