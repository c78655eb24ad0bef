#pragma once
// The float32 arithmetic of torch.quantile's linear interpolation and the clamp to [1, max], shared by
// the CPU and CUDA backends (kernels/threshold.h).
#include <cstdint>

#include "engine/host_device.h"

namespace dd::kernels {

struct QuantileRank {
  int64_t lo, hi;  // order statistics (0-based) below and above the rank
  float w;         // rank - lo
};

DD_HOST_DEVICE inline QuantileRank quantile_rank(float ratio, int64_t n) {
  const float rank = ratio * static_cast<float>(n - 1);
  QuantileRank r;
  r.lo = static_cast<int64_t>(rank);  // rank >= 0: truncation is floor
  r.w = rank - static_cast<float>(r.lo);
  r.hi = r.w > 0.0f ? r.lo + 1 : r.lo;
  if (r.hi > n - 1) r.hi = n - 1;
  return r;
}

// torch's lerp, then clamp(s, 1, max) (NaN stays NaN, as torch.clamp).
DD_HOST_DEVICE inline float threshold_scale(float v_lo, float v_hi, float w, float max_value) {
  const float q = w < 0.5f ? v_lo + w * (v_hi - v_lo) : v_hi - (v_hi - v_lo) * (1.0f - w);
  if (q != q) return q;
  return q < 1.0f ? 1.0f : (q > max_value ? max_value : q);
}

}  // namespace dd::kernels
