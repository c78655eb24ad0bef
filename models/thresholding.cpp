#include "models/thresholding.h"

#include <cmath>

#include "engine/error.h"
#include "kernels/threshold.h"

namespace dd::models {

void check_thresholding(const DynamicThresholding& th) {
  DD_CHECK(th.ratio >= 0.0 && th.ratio <= 1.0, "--dynamic-thresholding-ratio must lie in [0, 1], got ", th.ratio);
  DD_CHECK(th.max_value >= 1.0 && std::isfinite(th.max_value), "--sample-max-value must be >= 1, got ",
           th.max_value);
}

Tensor ddim_threshold_scales(const DynamicThresholding& th, const Tensor& x, const Tensor& out,
                             kernels::DdimStepCoefs c) {
  if (!th.enabled) return Tensor();
  check_thresholding(th);
  // The step's x0 before any clamp; no noise is drawn (sigma 0), the update is discarded.
  c.clip = 0.0f;
  c.sigma = 0.0f;
  Tensor x0;
  kernels::ddim_step(x, out, c, 0, PhiloxOffset(0), &x0);
  return kernels::dynamic_threshold_scale(x0, th.ratio, th.max_value);
}

Tensor dpm_threshold_scales(const DynamicThresholding& th, const Tensor& x, const Tensor& out,
                            kernels::DpmStepCoefs k) {
  if (!th.enabled) return Tensor();
  check_thresholding(th);
  k.c = 0.0f;  // m1 and m2 are not needed for m0
  k.d = 0.0f;
  Tensor m0;
  kernels::dpm_solver_step(x, out, Tensor(), Tensor(), k, &m0);
  return kernels::dynamic_threshold_scale(m0, th.ratio, th.max_value);
}

}  // namespace dd::models
