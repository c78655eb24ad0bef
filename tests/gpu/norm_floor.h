#pragma once
// GroupNorm's dx is a difference of terms of size rstd * |gamma * dy| that
// cancel exactly when a group holds one element (one channel, one position):
// the CPU then returns 0 (or an ulp of those terms) and the GPU an fp32 ulp of
// them. Judging dx relative to its own largest element would demand 0 from
// fp32 arithmetic; it is judged at the size of the terms instead.
#include "kernels/group_norm.h"
#include <algorithm>
#include <cmath>

#include "engine/tensor.h"

namespace dd::test {

// max over elements of rstd[b, g] * |gamma[c] * dy| * (1 + max |scale|) (scale may be undefined).
inline double norm_dx_floor(const Tensor& gamma, const Tensor& rstd, const Tensor& dy, const Tensor& scale) {
  const std::vector<float> g = gamma.to_vector(), r = rstd.to_vector(), d = dy.to_vector();
  const int64_t C = static_cast<int64_t>(g.size()), B = dy.dim(0), G = rstd.dim(1), D = C / G;
  const int64_t per_b = dy.numel() / B;
  double s = 0.0;
  if (scale.defined())
    for (float v : scale.to_vector()) s = std::max(s, static_cast<double>(std::fabs(v)));
  double worst = 0.0;
  for (int64_t i = 0; i < dy.numel(); ++i) {
    const int64_t b = i / per_b, c = i % C;
    worst = std::max(worst, static_cast<double>(r[b * G + c / D]) * std::fabs(g[c] * d[i]));
  }
  return worst * (1.0 + s);
}

// Forces GroupNorm's path for its scope (kernels/group_norm.h): a block per (batch, group), or
// the two-pass channel sums; the default (Auto) after.
struct GnPerGroup {
  explicit GnPerGroup(bool on) {
    kernels::cuda::set_group_norm_path(on ? kernels::cuda::GroupNormPath::PerGroup : kernels::cuda::GroupNormPath::TwoPass);
  }
  ~GnPerGroup() { kernels::cuda::set_group_norm_path(kernels::cuda::GroupNormPath::Auto); }
};

}  // namespace dd::test
