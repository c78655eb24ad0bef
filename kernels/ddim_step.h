#pragma once
// One DDIM step (Song et al. 2021; diffusers' DDIMScheduler.step for epsilon prediction), the same
// timestep for the whole batch, so its coefficients are scalars:
//   x0   = (x_t - sqrt(1 - abar_t) * eps) / sqrt(abar_t)        clamped to [-clip, clip] when clip > 0
//   prev = sqrt(abar_prev) * x0 + dir * eps (+ x_coef * x_t) (+ sigma * z)
// with dir = sqrt(1 - abar_prev - sigma^2), sigma = eta * sqrt(variance); z is the Philox stream at
// (seed, offset) as randn's (engine/rng.h), drawn in the kernel only when sigma > 0. The coefficients
// are computed in double by the caller and rounded to float once; the element arithmetic is float32
// in diffusers' operation order. With dir = 0 and x_coef set it is DDPM's step in x0 form (diffusers'
// DDPMScheduler): prev = c1 * x0 + c2 * x_t + sigma * z, the posterior mean from the clipped x0.
#include <cstdint>

#include "engine/philox.h"
#include "engine/tensor.h"

namespace dd::kernels {

struct DdimStepCoefs {
  float sqrt_abar = 1.0f;          // sqrt(abar_t)
  float sqrt_one_minus_abar = 0.0f;  // sqrt(1 - abar_t)
  float sqrt_abar_prev = 1.0f;     // sqrt(abar_prev)
  float dir = 0.0f;                // sqrt(1 - abar_prev - sigma^2)
  float sigma = 0.0f;              // eta * sqrt(variance); 0: no noise, nothing drawn
  float clip = 0.0f;               // clip_sample_range; 0 = no clipping
  float x_coef = 0.0f;             // DDPM's current_sample_coeff; 0 for DDIM
  // A model that predicts x0 or v (diffusers' prediction_type "sample" / "v_prediction"): the kernel's
  // "eps" operand is the model's output, and x0 = x0_x * x + x0_out * out, eps = eps_x * x + eps_out * out
  // (the formulas diffusers evaluates) replace the eps-form x0 above.
  bool linear_output = false;
  // Recompute eps from the clipped x0: eps = (x - sqrt(abar) x0) / sqrt(1 - abar) (diffusers'
  // use_clipped_model_output=True, lucidrains' rederive_pred_noise). Without it a clipped x0 and the
  // raw eps disagree, and an imperfect model's chain ends in saturated noise.
  bool rederive_eps = false;
  float x0_x = 0.0f, x0_out = 0.0f, eps_x = 0.0f, eps_out = 0.0f;
};

// Returns prev; *x0_out (when given) receives the (clipped) x0 estimate. thresh, when defined, is a
// [B] tensor of dynamic-threshold scales s (kernels/threshold.h; x_t is [B, ...]): x0 becomes
// clamp(x0, -s, s) / s in place of clipping (diffusers' thresholding=True).
Tensor ddim_step(const Tensor& x_t, const Tensor& eps, const DdimStepCoefs& c, uint64_t seed, PhiloxOffset offset,
                 Tensor* x0_out = nullptr, const Tensor& thresh = Tensor());

namespace cpu {
Tensor ddim_step(const Tensor& x_t, const Tensor& eps, const DdimStepCoefs& c, uint64_t seed, PhiloxOffset offset,
                 Tensor* x0_out, const Tensor& thresh = Tensor());
}
#ifdef DD_WITH_CUDA
namespace cuda {
Tensor ddim_step(const Tensor& x_t, const Tensor& eps, const DdimStepCoefs& c, uint64_t seed, PhiloxOffset offset,
                 Tensor* x0_out, const Tensor& thresh = Tensor());
}
#endif

}  // namespace dd::kernels
