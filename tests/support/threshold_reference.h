#pragma once
// Float64 reference for dynamic thresholding's per-sample scale (kernels/threshold.h): the sorted
// |x0| in double, torch.quantile's linear interpolation at torch's float32 rank, clamped to
// [1, max]. Shared by the CPU, emulator and GPU tests.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace dd::test {

inline std::vector<double> threshold_scale_reference(const Tensor& x0, double ratio, double max_value) {
  const std::vector<float> v = x0.to(Device::CPU).to_vector();
  const int64_t B = x0.dim(0), n = x0.numel() / B;
  // torch: rank = float32(q) * (n - 1) in float32, then floor / ceil and the fractional weight.
  const float rank = static_cast<float>(ratio) * static_cast<float>(n - 1);
  const int64_t lo = static_cast<int64_t>(std::floor(rank)), hi = static_cast<int64_t>(std::ceil(rank));
  const double w = static_cast<double>(rank) - static_cast<double>(lo);
  std::vector<double> out(static_cast<std::size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> a(static_cast<std::size_t>(n));
    bool nan = false;
    for (int64_t i = 0; i < n; ++i) {
      a[static_cast<std::size_t>(i)] = std::fabs(static_cast<double>(v[static_cast<std::size_t>(b * n + i)]));
      nan = nan || std::isnan(a[static_cast<std::size_t>(i)]);
    }
    if (nan) {
      out[static_cast<std::size_t>(b)] = NAN;
      continue;
    }
    std::sort(a.begin(), a.end());
    const double q = a[static_cast<std::size_t>(lo)] + w * (a[static_cast<std::size_t>(hi)] - a[static_cast<std::size_t>(lo)]);
    out[static_cast<std::size_t>(b)] = std::min(std::max(q, 1.0), max_value);
  }
  return out;
}

// |ours - ref| allowed: the float32 lerp of two float32 order statistics, a few ulps of the larger.
inline double threshold_scale_tolerance(double ref) { return 4.0 * 1.2e-7 * std::max(1.0, std::fabs(ref)); }

}  // namespace dd::test
