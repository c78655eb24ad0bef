#pragma once
// The per-sample arithmetic of DDPM (seed 003): forward noising, the reverse
// (Algorithm 2) step and the x0 estimate from predicted noise. Every tensor is
// [B, ...] with one float32 coefficient per sample ([B] tensors), so samples in
// one batch may sit at different timesteps (training draws t per sample).
// The arithmetic follows the seed's PyTorch expressions operation by operation
// in float32 (the compiler may fuse a multiply-add), so results agree with torch
// to a few float32 ulps plus the rounding of the coefficients.
#include <cstdint>

#include "engine/philox.h"
#include "engine/tensor.h"

namespace dd::kernels {

// q_sample: coef_a[b] * x0 + coef_b[b] * noise
// (coef_a = sqrt(abar_t), coef_b = sqrt(1 - abar_t)).
Tensor q_sample(const Tensor& x0, const Tensor& noise, const Tensor& coef_a, const Tensor& coef_b);

// The coefficients of one reverse step, each [B].
struct PSampleCoefs {
  Tensor sqrt_recip_alpha;   // 1 / sqrt(alpha_t)
  Tensor beta;               // beta_t
  Tensor sqrt_one_minus_ac;  // sqrt(1 - abar_t)
  Tensor sigma;              // sqrt(posterior_variance_t); 0 where t == 0
};

// Algorithm 2: mean = sqrt_recip_alpha * (x_t - beta * eps / sqrt_one_minus_ac),
// returned as is when noise is undefined (t == 0), else mean + sigma * noise.
Tensor p_sample_step(const Tensor& x_t, const Tensor& eps, const Tensor& noise, const PSampleCoefs& c);

// x0 = sqrt_recip_ac * x_t - sqrt_recipm1_ac * eps, clamped to [-1, 1] when asked
// (sqrt_recip_ac = 1/sqrt(abar_t), sqrt_recipm1_ac = sqrt(1/abar_t - 1)).
Tensor predict_x0(const Tensor& x_t, const Tensor& eps, const Tensor& sqrt_recip_ac,
                  const Tensor& sqrt_recipm1_ac, bool clamp);

// The same steps with their Gaussian noise drawn inside the op from the Philox
// stream at (seed, offset) (engine/rng.h: element i uses block offset + i / 4,
// lane i % 4), so the result equals randn(shape, seed, offset) fed to the op
// above. The caller reserves philox_blocks(numel) blocks (Generator::reserve). The offset may
// be relative to a device counter (engine/philox.h), read in the kernel: a captured graph's draw.
//
// q_sample_philox: x_t = coef_a[b] * x0 + coef_b[b] * noise; returns both.
struct QSampleOut {
  Tensor x_t, noise;
};
QSampleOut q_sample_philox(const Tensor& x0, const Tensor& coef_a, const Tensor& coef_b, uint64_t seed,
                           PhiloxOffset offset);
// p_sample_step with noise; a sample whose sigma[b] == 0 gets the mean alone
// (exactly p_sample_step without noise).
Tensor p_sample_step_philox(const Tensor& x_t, const Tensor& eps, const PSampleCoefs& c, uint64_t seed,
                            PhiloxOffset offset);

namespace cpu {
Tensor q_sample(const Tensor& x0, const Tensor& noise, const Tensor& coef_a, const Tensor& coef_b);
Tensor p_sample_step(const Tensor& x_t, const Tensor& eps, const Tensor& noise, const PSampleCoefs& c);
Tensor predict_x0(const Tensor& x_t, const Tensor& eps, const Tensor& sqrt_recip_ac,
                  const Tensor& sqrt_recipm1_ac, bool clamp);
QSampleOut q_sample_philox(const Tensor& x0, const Tensor& coef_a, const Tensor& coef_b, uint64_t seed,
                           PhiloxOffset offset);
Tensor p_sample_step_philox(const Tensor& x_t, const Tensor& eps, const PSampleCoefs& c, uint64_t seed,
                            PhiloxOffset offset);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor q_sample(const Tensor& x0, const Tensor& noise, const Tensor& coef_a, const Tensor& coef_b);
Tensor p_sample_step(const Tensor& x_t, const Tensor& eps, const Tensor& noise, const PSampleCoefs& c);
Tensor predict_x0(const Tensor& x_t, const Tensor& eps, const Tensor& sqrt_recip_ac,
                  const Tensor& sqrt_recipm1_ac, bool clamp);
QSampleOut q_sample_philox(const Tensor& x0, const Tensor& coef_a, const Tensor& coef_b, uint64_t seed,
                           PhiloxOffset offset);
Tensor p_sample_step_philox(const Tensor& x_t, const Tensor& eps, const PSampleCoefs& c, uint64_t seed,
                            PhiloxOffset offset);
}  // namespace cuda
#endif

}  // namespace dd::kernels
