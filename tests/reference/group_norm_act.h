#pragma once
// Naive float64 reference for the fused GroupNorm -> scale/shift -> SiLU op
// (the seed U-Net Block): y = silu(group_norm(x) * (scale + 1) + shift) on a
// channels-last tensor viewed as [B, S, C]; without scale/shift (both empty)
// y = silu(group_norm(x)). Built from the references of the three ops.
#include <cstdint>
#include <vector>

#include "tests/reference/activation.h"
#include "tests/reference/broadcast.h"
#include "tests/reference/group_norm.h"

namespace dd::ref {

inline std::vector<double> group_norm_act(const std::vector<double>& x, const std::vector<double>& gamma,
                                          const std::vector<double>& beta, const std::vector<double>& scale,
                                          const std::vector<double>& shift, int64_t B, int64_t S, int64_t C,
                                          int64_t G, double eps = 1e-5) {
  std::vector<double> h = group_norm(x, gamma, beta, B, S, C, G, eps);
  if (!scale.empty()) h = scale_shift(h, scale, shift, B, C);
  return silu(h);
}

}  // namespace dd::ref
