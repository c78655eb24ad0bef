#pragma once
// The per-element Adam arithmetic, shared by the CPU and CUDA backends.
#include <cmath>

#include "kernels/adam.h"

#if defined(__CUDACC__)
#define DD_ADAM_HD __host__ __device__ __forceinline__
#else
#define DD_ADAM_HD inline
#endif

namespace dd::kernels {

// at::lerp's formula: exact at both ends, split at weight 0.5.
DD_ADAM_HD float lerp_f(float a, float b, float w) {
  return w < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

DD_ADAM_HD void adam_element(float& p, float g, float& m, float& v, const AdamStepScalars& s) {
  if (s.decay != 1.0f) p = p * s.decay;  // AdamW: torch decays the parameter before the update
  if (s.weight_decay != 0.0f) g = g + s.weight_decay * p;
  m = lerp_f(m, g, s.lerp_weight);
  v = v * s.beta2 + s.one_minus_beta2 * g * g;
  float denom = sqrtf(v) / s.bc2_sqrt + s.eps;
  p = p + (-s.step_size) * (m / denom);
}

}  // namespace dd::kernels
