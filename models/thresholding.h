#pragma once
// Dynamic thresholding for the samplers (Saharia et al. 2022; diffusers' thresholding=True,
// dynamic_thresholding_ratio, sample_max_value): each step's x0 estimate is clamped to [-s, s] and
// divided by s, s being a per-sample quantile of |x0| clamped to [1, max_value]. It replaces
// clip_sample where both are set, as in diffusers. The scales come from kernels/threshold.h; the
// x0 they are taken from is computed by the step's own kernel, so the quantile sees the x0 the step
// then thresholds.
#include "engine/tensor.h"
#include "kernels/ddim_step.h"
#include "kernels/dpm_solver_step.h"

namespace dd::models {

struct DynamicThresholding {
  bool enabled = false;
  double ratio = 0.995;     // diffusers' dynamic_thresholding_ratio
  double max_value = 1.0;   // diffusers' sample_max_value
};

// Throws naming the flag for a ratio outside [0, 1] or a max_value below 1.
void check_thresholding(const DynamicThresholding& th);

// The [B] scales for a DDIM/DDPM step (kernels::ddim_step) or a DPM-Solver++ step from x and the
// model output; undefined when thresholding is off.
Tensor ddim_threshold_scales(const DynamicThresholding& th, const Tensor& x, const Tensor& out,
                             kernels::DdimStepCoefs c);
Tensor dpm_threshold_scales(const DynamicThresholding& th, const Tensor& x, const Tensor& out,
                            kernels::DpmStepCoefs k);

}  // namespace dd::models
