#pragma once
// The DDIM step's element arithmetic, shared by the CPU and CUDA backends (kernels/ddim_step.h).
#include "engine/host_device.h"
#include "kernels/ddim_step.h"

namespace dd::kernels {

// The eps the step uses: the model output itself, or its conversion (linear_output).
DD_HOST_DEVICE inline float ddim_eps(const DdimStepCoefs& c, float x, float out) {
  return c.linear_output ? c.eps_x * x + c.eps_out * out : out;
}

// s: the sample's dynamic-threshold scale (kernels/threshold.h), 0 = none; it replaces clipping.
DD_HOST_DEVICE inline float ddim_x0(const DdimStepCoefs& c, float x, float eps, float s = 0.0f) {
  float x0 = c.linear_output ? c.x0_x * x + c.x0_out * eps : (x - c.sqrt_one_minus_abar * eps) / c.sqrt_abar;
  if (s != 0.0f)  // a NaN s (a NaN in the sample) gives NaN, as torch's quantile and clamp
    x0 = (x0 < -s ? -s : (x0 > s ? s : x0)) / s;
  else if (c.clip > 0.0f)
    x0 = x0 < -c.clip ? -c.clip : (x0 > c.clip ? c.clip : x0);
  return x0;
}

// The eps the update's direction term uses: ddim_eps, or re-derived from the (clipped) x0.
DD_HOST_DEVICE inline float ddim_dir_eps(const DdimStepCoefs& c, float x, float out, float x0) {
  return c.rederive_eps ? (x - c.sqrt_abar * x0) / c.sqrt_one_minus_abar : ddim_eps(c, x, out);
}

// z: the element's normal draw (ignored when sigma == 0).
DD_HOST_DEVICE inline float ddim_prev(const DdimStepCoefs& c, float x0, float eps, float x, float z) {
  float prev = c.sqrt_abar_prev * x0 + c.dir * eps;
  if (c.x_coef != 0.0f) prev += c.x_coef * x;
  return c.sigma > 0.0f ? prev + c.sigma * z : prev;
}

}  // namespace dd::kernels
