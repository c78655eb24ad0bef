#pragma once
// The ancestral DDPM sampler with diffusers' DDPMScheduler options (diffusers 0.31, epsilon
// prediction): variance_type fixed_small (the posterior variance, the seed's) or fixed_large (beta_t,
// the DDPM paper's CIFAR-10 setting), clip_sample, and any number of steps out of T with a timestep
// spacing (fewer steps respace the chain: each step goes from t to t - T // steps, its beta being
// 1 - abar_t / abar_prev, as diffusers and improved-diffusion's respacing compute it). The step is
// the x0 form: x0 = (x - sqrt(1 - abar) eps) / sqrt(abar), clipped, then the posterior mean
// c1 x0 + c2 x plus sigma z (one fused kernel, kernels/ddim_step.h, noise drawn in it).
// GaussianDiffusion::p_sample_loop (Algorithm 2 in eps form, CUDA-graph capable) remains the
// default; with fixed_small, no clipping and all T steps the two agree to float rounding.
#include <functional>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "kernels/ddim_step.h"
#include "models/denoiser.h"
#include "models/diffusion.h"
#include "models/thresholding.h"
#include "models/timestep_spacing.h"

namespace dd::models {

enum class VarianceType { FixedSmall, FixedLarge };
// "fixed_small", "fixed_large"; anything else throws.
VarianceType parse_variance_type(const std::string& name);

struct DdpmOptions {
  int steps = 0;  // 0 = all T
  TimestepSpacing spacing = TimestepSpacing::Leading;
  VarianceType variance_type = VarianceType::FixedSmall;
  bool clip_sample = false;  // the seed's sampler does not clip; diffusers' DDPMScheduler does by default
  double clip_sample_range = 1.0;
  DynamicThresholding thresholding;  // replaces clip_sample when enabled, as in diffusers
  // Custom timesteps (diffusers' set_timesteps(timesteps=...)), strictly decreasing; each step goes
  // to the next one in the list (to abar = 1 after the last): improved-diffusion's respacing.
  // Empty: `steps` and `spacing` choose them, and a step goes to t - T // steps.
  std::vector<int> timesteps;
};

// improved-diffusion's space_timesteps(T, section_counts) for one section: "ddimN" (stride T // N
// from 0, as its DDIM respacing; N must divide into T with exactly N values) or "N" (N timesteps
// evenly spaced over [0, T - 1], the fractional stride rounded), returned from the noisiest down.
std::vector<int> respaced_timesteps(const std::string& spec, int T);

// The step from t to prev (-1: to abar = 1); ddpm_coefs(s, o, t) takes prev = t - T // steps.
kernels::DdimStepCoefs ddpm_coefs(const Schedule& s, const DdpmOptions& o, int t, int prev);
kernels::DdimStepCoefs ddpm_coefs(const Schedule& s, const DdpmOptions& o, int t);

// x_T = gen.randn(shape), then one normal draw of x's size at every step with t > 0.
Tensor ddpm_sample_loop(const GaussianDiffusion& diffusion, Denoiser& model, const Shape& shape, Generator& gen,
                        const DdpmOptions& options, const std::function<void(int t, const Tensor& x)>& on_step = {},
                        Device dev = Device::CPU);

}  // namespace dd::models
