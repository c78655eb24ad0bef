#pragma once
// The DPM-Solver++ step's element arithmetic, shared by the CPU and CUDA backends.
#include "engine/host_device.h"
#include "kernels/dpm_solver_step.h"

namespace dd::kernels {

DD_HOST_DEVICE inline float dpm_m0(const DpmStepCoefs& k, float x, float out) {
  switch (k.output) {
    case DpmStepCoefs::Output::V:
      return k.alpha_s0 * x - k.sigma_s0 * out;
    case DpmStepCoefs::Output::X0:
      return out;
    default:
      return (x - k.sigma_s0 * out) / k.alpha_s0;
  }
}

// s: the sample's dynamic-threshold scale, 0 = none (a NaN s gives NaN, as torch's clamp).
DD_HOST_DEVICE inline float dpm_threshold(float m0, float s) {
  return s != 0.0f ? (m0 < -s ? -s : (m0 > s ? s : m0)) / s : m0;
}
// m1 / m2 are read only when their coefficient is non-zero (they may be absent).
DD_HOST_DEVICE inline float dpm_next(const DpmStepCoefs& k, float x, float m0, float m1, float m2) {
  float out = k.a * x + k.b * m0;
  if (k.c != 0.0f) out += k.c * m1;
  if (k.d != 0.0f) out += k.d * m2;
  return out;
}

}  // namespace dd::kernels
