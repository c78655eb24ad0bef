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

#include "engine/rng.h"
#include "kernels/ddim_step.h"
#include "models/denoiser.h"
#include "models/diffusion.h"
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
};

kernels::DdimStepCoefs ddpm_coefs(const Schedule& s, const DdpmOptions& o, int t);

// x_T = gen.randn(shape), then one normal draw of x's size at every step with t > 0.
Tensor ddpm_sample_loop(const GaussianDiffusion& diffusion, Denoiser& model, const Shape& shape, Generator& gen,
                        const DdpmOptions& options, const std::function<void(int t, const Tensor& x)>& on_step = {},
                        Device dev = Device::CPU);

}  // namespace dd::models
