#pragma once
// Scalar activation formulas shared by the CPU and CUDA backends, so both
// evaluate the same expression.
#include <cmath>

#if defined(__CUDACC__)
#define DD_HD __host__ __device__ __forceinline__
#else
#define DD_HD inline
#endif

namespace dd::kernels {

// e^x for SiLU. On the device: CUDA's expf. On the CPU: a branch-free expf
// (Cody-Waite reduction by ln 2, a degree-6 minimax polynomial, 2^n by exponent
// bits) that the compiler vectorizes inside `omp simd` loops, where glibc's
// scalar expf call blocked vectorization and took most of the fused
// GroupNorm->SiLU time. Within 2 ulp of expf for x in [-87, 88]; outside, x is
// clamped there (e^-87 = 1.6e-38 and e^88 = 1.7e38 leave SiLU's result
// unchanged or below 1e-36).
DD_HD float silu_exp_f(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int bits = (static_cast<int>(n) + 127) << 23;
  return y * __builtin_bit_cast(float, bits);
#endif
}

DD_HD float silu_f(float x) { return x / (1.0f + silu_exp_f(-x)); }
DD_HD float silu_grad_f(float x, float dy) {
  float s = 1.0f / (1.0f + silu_exp_f(-x));
  return dy * s * (1.0f + x * (1.0f - s));
}
// Phi(x) as erfc(-x/sqrt2)/2 rather than (1 + erf(x/sqrt2))/2: the same
// function, but without the cancellation that costs ~1e-4 relative accuracy
// for x < -2.
DD_HD float gelu_f(float x) { return 0.5f * x * erfcf(-x * 0.70710678118654752f); }
DD_HD float gelu_grad_f(float x, float dy) {
  float cdf = 0.5f * erfcf(-x * 0.70710678118654752f);
  float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
  return dy * (cdf + x * pdf);
}

// x > 0 ? x : 0 would turn NaN into 0; torch.relu keeps NaN (a diverged input must show).
DD_HD float relu_f(float x) { return x < 0.0f ? 0.0f : x; }
DD_HD float relu_grad_f(float x, float dy) { return x > 0.0f ? dy : 0.0f; }

}  // namespace dd::kernels
