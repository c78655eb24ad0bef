#pragma once
// Dynamic thresholding (Saharia et al. 2022, Imagen; diffusers' _threshold_sample): per sample, s is
// the `ratio` quantile of |x0| over all of the sample's elements, clamped to [1, max_value]; the
// samplers then use clamp(x0, -s, s) / s in place of clip_sample (their step kernels take s).
// This op computes s. The quantile is torch.quantile's "linear" one, in its float32 arithmetic:
//   rank = float(ratio) * (n - 1)   (float32), lo = floor(rank), hi = ceil(rank), w = rank - lo
//   q = v_lo + w (v_hi - v_lo) if w < 0.5 else v_hi - (v_hi - v_lo)(1 - w)   (torch's lerp)
// with v the sample's |x0| sorted. A sample holding a NaN gets s = NaN (torch's quantile is NaN).
#include "engine/tensor.h"

namespace dd::kernels {

// x0: [B, ...] float32, at least one element per sample; ratio in [0, 1]; max_value >= 1.
// Returns s: [B] float32 on x0's device.
Tensor dynamic_threshold_scale(const Tensor& x0, double ratio, double max_value);

namespace cpu {
Tensor dynamic_threshold_scale(const Tensor& x0, double ratio, double max_value);
}
#ifdef DD_WITH_CUDA
namespace cuda {
// One block per sample: the two order statistics by bisection over the bit patterns of |x0|
// (monotone for non-negative floats), each probe a block-wide count; no sort, no atomics.
Tensor dynamic_threshold_scale(const Tensor& x0, double ratio, double max_value);
}
#endif

}  // namespace dd::kernels
