#pragma once
// The multistep DPM-Solver++ sampler (Lu et al. 2022) as diffusers' DPMSolverMultistepScheduler runs
// it (diffusers 0.31; algorithm_type "dpmsolver++", solver_type "midpoint", epsilon prediction,
// final_sigmas_type "zero"): orders 1-3 (2 by default, "2M"), lower_order_final, diffusers'
// timestep spacings for this scheduler (linspace by default), Karras et al.'s sigmas
// (use_karras_sigmas) and dynamic thresholding. Each step is one fused kernel
// (kernels/dpm_solver_step.h). It draws no noise: the result depends on x_T alone.
// At zero terminal SNR (abar_{T-1} = 0) the solver takes abar_{T-1} = 2^-24, as diffusers does, so
// the first sigma is finite.
#include <functional>
#include <vector>

#include "engine/rng.h"
#include "kernels/dpm_solver_step.h"
#include "models/denoiser.h"
#include "models/diffusion.h"
#include "models/thresholding.h"
#include "models/timestep_spacing.h"

namespace dd::models {

struct DpmSolverOptions {
  int steps = 20;
  int order = 2;  // solver_order
  bool lower_order_final = true;
  TimestepSpacing spacing = TimestepSpacing::Linspace;  // this scheduler's default
  int steps_offset = 0;
  // Karras et al. 2022's sigmas (rho 7) between the schedule's smallest and largest; the model is
  // evaluated at the timesteps nearest them (interpolated in log sigma, rounded), so timesteps may repeat.
  bool karras_sigmas = false;
  DynamicThresholding thresholding;
};

// The run: the model's timestep at each step and the sigmas = sqrt((1 - abar) / abar) the solver
// steps through (float32 values, as the scheduler keeps them), one more than the steps: the last is 0.
struct DpmSolverPlan {
  std::vector<int> timesteps;
  std::vector<double> sigmas;
};
DpmSolverPlan dpm_solver_plan(const Schedule& s, const DpmSolverOptions& o);

// DPMSolverMultistepScheduler.set_timesteps' list (lambda_min_clipped -inf):
//   linspace: linspace(0, T - 1, n + 1).round()[::-1][:-1]
//   leading:  (arange(n + 1) * (T // (n + 1))).round()[::-1][:-1] + steps_offset
//   trailing: arange(T, 0, -T / n).round() - 1
// (without Karras sigmas; dpm_solver_plan's timesteps otherwise).
std::vector<int> dpm_solver_timesteps(const DpmSolverOptions& o, int T);

// The coefficients of step i (0-based) of a run, of the order diffusers would take there.
kernels::DpmStepCoefs dpm_solver_coefs(const DpmSolverPlan& plan, const DpmSolverOptions& o, int i,
                                       int* order_out = nullptr);

// x_T = gen.randn(shape); on_step(t, x) sees the batch after the step at timestep t.
Tensor dpm_solver_sample_loop(const GaussianDiffusion& diffusion, Denoiser& model, const Shape& shape, Generator& gen,
                              const DpmSolverOptions& options,
                              const std::function<void(int t, const Tensor& x)>& on_step = {},
                              Device dev = Device::CPU);

}  // namespace dd::models
