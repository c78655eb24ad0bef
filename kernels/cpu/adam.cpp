#include "kernels/adam_math.h"

namespace dd::kernels::cpu {

void adam_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamStepScalars& s) {
  float* p = param.data();
  const float* g = grad.data();
  float* pm = m.data();
  float* pv = v.data();
  const int64_t n = param.numel();
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) adam_element(p[i], g[i], pm[i], pv[i], s);
}

void adam_update_serial(float* p, const float* g, float* pm, float* pv, int64_t n, const AdamStepScalars& s) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) adam_element(p[i], g[i], pm[i], pv[i], s);
}

}  // namespace dd::kernels::cpu
