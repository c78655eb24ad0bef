#pragma once
// The DDIM sampler (Song et al. 2021) as diffusers' DDIMScheduler runs it (diffusers 0.31, epsilon
// prediction): any number of steps out of T, eta (0 = deterministic), the timestep spacing,
// clip_sample and set_alpha_to_one. Each step is one fused kernel (kernels/ddim_step.h) whose noise,
// when eta > 0, is drawn in the kernel from the generator's Philox stream (the same numbers on the
// CPU and the GPU). A self-conditioning model gets the previous step's x0 estimate, as lucidrains'
// ddim_sample does.
#include <functional>

#include "engine/rng.h"
#include "kernels/ddim_step.h"
#include "models/denoiser.h"
#include "models/diffusion.h"
#include "models/thresholding.h"
#include "models/timestep_spacing.h"

namespace dd::models {

struct DdimOptions {
  int steps = 50;
  double eta = 0.0;
  TimestepSpacing spacing = TimestepSpacing::Leading;  // diffusers' default
  int steps_offset = 0;
  bool clip_sample = true;  // diffusers' default, and lucidrains' clip_denoised
  double clip_sample_range = 1.0;
  bool set_alpha_to_one = true;  // the last step's abar_prev: 1 (else abar_0)
  // Re-derive eps from the clipped x0 (diffusers' use_clipped_model_output=True, lucidrains' default):
  // with clipping on and this off, an imperfect model's chain saturates into noise.
  bool use_clipped_model_output = true;
  DynamicThresholding thresholding;  // replaces clip_sample when enabled, as in diffusers
};

// The per-step coefficients of the step from timestep t (diffusers' prev_timestep = t - T // steps,
// whatever the spacing), in double, rounded once to float.
// With a diffusion given, a model predicting x0 or v gets the conversion of its output into the step.
kernels::DdimStepCoefs ddim_coefs(const Schedule& s, const DdimOptions& o, int t);
kernels::DdimStepCoefs ddim_coefs(const GaussianDiffusion& d, const DdimOptions& o, int t);

// Random numbers: x_T = gen.randn(shape), then, when eta > 0, one normal draw of x's size per step
// (reserved whether or not that step's sigma is 0, so the stream does not depend on the values).
// on_step(t, x) sees the batch after the step at timestep t.
Tensor ddim_sample_loop(const GaussianDiffusion& diffusion, Denoiser& model, const Shape& shape, Generator& gen,
                        const DdimOptions& options, const std::function<void(int t, const Tensor& x)>& on_step = {},
                        Device dev = Device::CPU);

// One step from x at timestep t (no gradient); *x0_out, when given, receives the (clipped) x0 estimate.
Tensor ddim_step(const GaussianDiffusion& diffusion, Denoiser& model, const Tensor& x, int t, Generator& gen,
                 const DdimOptions& options, Tensor* x0_out = nullptr, const Tensor& x_self_cond = Tensor());

}  // namespace dd::models
