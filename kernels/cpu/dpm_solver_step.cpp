#include "kernels/dpm_solver_step.h"

#include "kernels/dpm_solver_math.h"

namespace dd::kernels::cpu {

Tensor dpm_solver_step(const Tensor& x, const Tensor& eps, const Tensor& m1, const Tensor& m2, const DpmStepCoefs& k,
                       Tensor* m0_out, const Tensor& thresh) {
  const int64_t n = x.numel(), per_sample = n / x.dim(0);
  const float* ps = thresh.defined() ? thresh.data() : nullptr;
  Tensor out = Tensor::empty(x.shape()), m0 = Tensor::empty(x.shape());
  const float* px = x.data();
  const float* pe = eps.data();
  const float* p1 = m1.defined() ? m1.data() : nullptr;
  const float* p2 = m2.defined() ? m2.data() : nullptr;
  float* po = out.data();
  float* pm = m0.data();
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const float m = dpm_threshold(dpm_m0(k, px[i], pe[i]), ps ? ps[i / per_sample] : 0.0f);
    pm[i] = m;
    po[i] = dpm_next(k, px[i], m, p1 ? p1[i] : 0.0f, p2 ? p2[i] : 0.0f);
  }
  if (m0_out) *m0_out = m0;
  return out;
}

}  // namespace dd::kernels::cpu
