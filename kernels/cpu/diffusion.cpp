#include "kernels/diffusion.h"

#include <cstring>

#include "engine/rng.h"

namespace dd::kernels::cpu {

namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

// out[b, i] = f(b, flat index) over a [B, inner] view; each element is written
// once by one thread, so the result does not depend on the thread count.
template <typename F>
Tensor per_sample_map(const Tensor& like, F f) {
  Tensor out = Tensor::empty(like.shape());
  float* po = out.data();
  const int64_t B = like.dim(0), inner = like.numel() / B, n = like.numel();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t lo = b * inner, hi = lo + inner;
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) po[i] = f(b, i);
  }
  return out;
}
}  // namespace

Tensor q_sample(const Tensor& x0, const Tensor& noise, const Tensor& coef_a, const Tensor& coef_b) {
  const float *px = x0.data(), *pn = noise.data(), *pa = coef_a.data(), *pb = coef_b.data();
  return per_sample_map(x0, [=](int64_t b, int64_t i) { return pa[b] * px[i] + pb[b] * pn[i]; });
}

Tensor p_sample_step(const Tensor& x_t, const Tensor& eps, const Tensor& noise, const PSampleCoefs& c) {
  const float *px = x_t.data(), *pe = eps.data();
  const float *ra = c.sqrt_recip_alpha.data(), *be = c.beta.data(), *so = c.sqrt_one_minus_ac.data();
  // The seed's order: betas_t * eps, then / sqrt_one_minus, x - that, then * sqrt_recip_alpha.
  if (!noise.defined())
    return per_sample_map(x_t, [=](int64_t b, int64_t i) { return ra[b] * (px[i] - be[b] * pe[i] / so[b]); });
  const float *pn = noise.data(), *sg = c.sigma.data();
  return per_sample_map(
      x_t, [=](int64_t b, int64_t i) { return ra[b] * (px[i] - be[b] * pe[i] / so[b]) + sg[b] * pn[i]; });
}

Tensor predict_x0(const Tensor& x_t, const Tensor& eps, const Tensor& sqrt_recip_ac,
                  const Tensor& sqrt_recipm1_ac, bool clamp) {
  const float *px = x_t.data(), *pe = eps.data(), *ra = sqrt_recip_ac.data(), *rm = sqrt_recipm1_ac.data();
  if (!clamp) return per_sample_map(x_t, [=](int64_t b, int64_t i) { return ra[b] * px[i] - rm[b] * pe[i]; });
  return per_sample_map(x_t, [=](int64_t b, int64_t i) {
    const float v = ra[b] * px[i] - rm[b] * pe[i];
    // NaN passes through (as torch.clamp), so a diverged model is not hidden.
    return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
  });
}

// On the CPU the noise is materialised and fed to the unfused ops above, so the
// results equal randn + q_sample / p_sample_step bit for bit by construction
// (the fusion only pays on the GPU, where it saves a pass over memory).
QSampleOut q_sample_philox(const Tensor& x0, const Tensor& coef_a, const Tensor& coef_b, uint64_t seed,
                           PhiloxOffset offset) {
  QSampleOut out;
  out.noise = randn(x0.shape(), seed, offset.get());
  out.x_t = cpu::q_sample(x0, out.noise, coef_a, coef_b);
  return out;
}

Tensor p_sample_step_philox(const Tensor& x_t, const Tensor& eps, const PSampleCoefs& c, uint64_t seed,
                            PhiloxOffset offset) {
  Tensor out = cpu::p_sample_step(x_t, eps, randn(x_t.shape(), seed, offset.get()), c);
  const int64_t B = x_t.dim(0), inner = x_t.numel() / B;
  const float* sg = c.sigma.data();
  bool any_zero = false;
  for (int64_t b = 0; b < B; ++b) any_zero = any_zero || sg[b] == 0.0f;
  if (!any_zero) return out;
  // Samples with sigma == 0 take the noiseless mean, exactly as p_sample_step without noise.
  const Tensor mean = cpu::p_sample_step(x_t, eps, Tensor(), c);
  for (int64_t b = 0; b < B; ++b)
    if (sg[b] == 0.0f)
      std::memcpy(out.data() + b * inner, mean.data() + b * inner, static_cast<std::size_t>(inner) * sizeof(float));
  return out;
}

}  // namespace dd::kernels::cpu
