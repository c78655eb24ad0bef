#include "kernels/ddim_step.h"

#include "engine/rng.h"
#include "kernels/ddim_step_math.h"

namespace dd::kernels::cpu {

Tensor ddim_step(const Tensor& x_t, const Tensor& eps, const DdimStepCoefs& c, uint64_t seed, PhiloxOffset offset,
                 Tensor* x0_out, const Tensor& thresh) {
  const int64_t n = x_t.numel(), per_sample = n / x_t.dim(0);
  const float* ps = thresh.defined() ? thresh.data() : nullptr;
  Tensor out = Tensor::empty(x_t.shape());
  Tensor x0 = x0_out ? Tensor::empty(x_t.shape()) : Tensor();
  const Tensor z = c.sigma > 0.0f ? randn(x_t.shape(), seed, offset.get()) : Tensor();
  const float* px = x_t.data();
  const float* pe = eps.data();
  const float* pz = z.defined() ? z.data() : nullptr;
  float* po = out.data();
  float* p0 = x0.defined() ? x0.data() : nullptr;
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const float e = ddim_x0(c, px[i], pe[i], ps ? ps[i / per_sample] : 0.0f);
    if (p0) p0[i] = e;
    po[i] = ddim_prev(c, e, ddim_dir_eps(c, px[i], pe[i], e), px[i], pz ? pz[i] : 0.0f);
  }
  if (x0_out) *x0_out = x0;
  return out;
}

}  // namespace dd::kernels::cpu
