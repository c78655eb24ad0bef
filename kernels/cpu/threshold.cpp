#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/threshold.h"
#include "kernels/threshold_math.h"

namespace dd::kernels::cpu {

Tensor dynamic_threshold_scale(const Tensor& x0, double ratio, double max_value) {
  const int64_t B = x0.dim(0), n = x0.numel() / B;
  const QuantileRank r = quantile_rank(static_cast<float>(ratio), n);
  Tensor s = Tensor::empty({B});
  const float* px = x0.data();
#pragma omp parallel for schedule(static) if (B > 1 && n > (1 << 14))
  for (int64_t b = 0; b < B; ++b) {
    std::vector<float> a(static_cast<std::size_t>(n));
    bool nan = false;
    for (int64_t i = 0; i < n; ++i) {
      a[static_cast<std::size_t>(i)] = std::fabs(px[b * n + i]);
      nan = nan || std::isnan(a[static_cast<std::size_t>(i)]);
    }
    if (nan) {
      s.data()[b] = NAN;
      continue;
    }
    const auto lo = a.begin() + r.lo;
    std::nth_element(a.begin(), lo, a.end());
    const float v_lo = *lo;
    // The next order statistic is the smallest value right of lo (nth_element partitions around it).
    const float v_hi = r.hi == r.lo ? v_lo : *std::min_element(lo + 1, a.end());
    s.data()[b] = threshold_scale(v_lo, v_hi, r.w, static_cast<float>(max_value));
  }
  return s;
}

}  // namespace dd::kernels::cpu
