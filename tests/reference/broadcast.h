#pragma once
// Naive float64 references for [B, C] vectors broadcast over the positions of
// x [B, positions..., C] (PyTorch: x op v[:, :, None, None] in NCHW).
#include <cstdint>
#include <algorithm>
#include <cmath>
#include <vector>

namespace dd::ref {

// Element i of x belongs to batch item i / (P * C) and channel i % C.
inline std::vector<double> add_bc(const std::vector<double>& x, const std::vector<double>& v, int64_t B,
                                  int64_t C) {
  const int64_t per_b = static_cast<int64_t>(x.size()) / B;
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const int64_t b = static_cast<int64_t>(i) / per_b, c = static_cast<int64_t>(i) % C;
    y[i] = x[i] + v[static_cast<std::size_t>(b * C + c)];
  }
  return y;
}

inline std::vector<double> mul_bc(const std::vector<double>& x, const std::vector<double>& v, int64_t B,
                                  int64_t C) {
  const int64_t per_b = static_cast<int64_t>(x.size()) / B;
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const int64_t b = static_cast<int64_t>(i) / per_b, c = static_cast<int64_t>(i) % C;
    y[i] = x[i] * v[static_cast<std::size_t>(b * C + c)];
  }
  return y;
}

// The seed's Block: x * (scale + 1) + shift.
inline std::vector<double> scale_shift(const std::vector<double>& x, const std::vector<double>& scale,
                                       const std::vector<double>& shift, int64_t B, int64_t C) {
  std::vector<double> scale1(scale.size());
  for (std::size_t i = 0; i < scale.size(); ++i) scale1[i] = scale[i] + 1.0;
  return add_bc(mul_bc(x, scale1, B, C), shift, B, C);
}

// The size of scale_shift's terms, max |x (scale + 1)| + |shift|: the scale its fp32 error is
// judged at, since the result itself may cancel to near 0 (a one-element input, say).
inline double scale_shift_terms(const std::vector<double>& x, const std::vector<double>& scale,
                                const std::vector<double>& shift, int64_t B, int64_t C) {
  const int64_t per_b = static_cast<int64_t>(x.size()) / B;
  double t = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t bc = static_cast<std::size_t>(static_cast<int64_t>(i) / per_b * C + static_cast<int64_t>(i) % C);
    t = std::max(t, std::fabs(x[i] * (scale[bc] + 1.0)) + std::fabs(shift[bc]));
  }
  return t;
}

}  // namespace dd::ref
