#pragma once
// One multistep DPM-Solver++ update (Lu et al. 2022; diffusers' DPMSolverMultistepScheduler with
// algorithm_type "dpmsolver++", solver_type "midpoint", epsilon prediction). Every order is a linear
// combination of the sample and the data predictions, so one kernel serves orders 1-3:
//   m0  = (x - sigma_s0 * eps) / alpha_s0                 (this step's data prediction; written out)
//   out = a * x + b * m0 + c * m1 + d * m2                (m1, m2: the previous steps' predictions)
// The caller (models/dpm_solver.h) computes a..d in double from the step's log-SNRs and rounds them once.
#include "engine/tensor.h"

namespace dd::kernels {

struct DpmStepCoefs {
  float alpha_s0 = 1.0f, sigma_s0 = 0.0f;  // the current timestep's alpha_t, sigma_t
  float a = 1.0f, b = 0.0f, c = 0.0f, d = 0.0f;
  // A model predicting v: its output's data prediction is alpha_s0 * x - sigma_s0 * out (diffusers');
  // x0 prediction: the output itself. Both replace the eps form of m0 above.
  enum class Output { Eps, V, X0 } output = Output::Eps;
};

// m1 / m2 may be undefined when c / d are 0 (lower orders). Returns the next sample; *m0_out gets m0.
// thresh, when defined, is a [B] tensor of dynamic-threshold scales s (kernels/threshold.h): m0
// becomes clamp(m0, -s, s) / s before the update (diffusers' thresholding=True).
Tensor dpm_solver_step(const Tensor& x, const Tensor& eps, const Tensor& m1, const Tensor& m2, const DpmStepCoefs& k,
                       Tensor* m0_out, const Tensor& thresh = Tensor());

namespace cpu {
Tensor dpm_solver_step(const Tensor& x, const Tensor& eps, const Tensor& m1, const Tensor& m2, const DpmStepCoefs& k,
                       Tensor* m0_out, const Tensor& thresh = Tensor());
}
#ifdef DD_WITH_CUDA
namespace cuda {
Tensor dpm_solver_step(const Tensor& x, const Tensor& eps, const Tensor& m1, const Tensor& m2, const DpmStepCoefs& k,
                       Tensor* m0_out, const Tensor& thresh = Tensor());
}
#endif

}  // namespace dd::kernels
