#include "models/dpm_solver.h"

#include <algorithm>
#include <cmath>

#include "autograd/var.h"
#include "engine/error.h"
#include "models/frozen_weights.h"

namespace dd::models {

namespace {
void check_options(const DpmSolverOptions& o, int T) {
  DD_CHECK(o.steps >= 1 && o.steps <= T, "dpm-solver: --steps ", o.steps, " must lie in [1, T = ", T, "]");
  DD_CHECK(o.order >= 1 && o.order <= 3, "dpm-solver: --order ", o.order, " must be 1, 2 or 3");
  DD_CHECK(o.steps_offset >= 0, "dpm-solver: steps_offset must be >= 0, got ", o.steps_offset);
}

// The scheduler keeps its sigmas = sqrt((1 - abar) / abar) as float32 and converts them back to
// alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t; ours start from the same float32 sigmas
// and carry on in double.
struct AlphaSigma {
  double alpha, sigma, lambda;
};
AlphaSigma at_sigma(double sigma) {
  AlphaSigma r;
  r.alpha = 1.0 / std::sqrt(sigma * sigma + 1.0);
  r.sigma = sigma * r.alpha;
  r.lambda = std::log(r.alpha) - std::log(r.sigma);  // +inf at sigma 0 (the final step)
  return r;
}
// abar clamped to 2^-24 where it is 0 (zero terminal SNR), as diffusers' scheduler does.
double solver_abar(const Schedule& s, int t) {
  const double a = s.alphas_cumprod[static_cast<std::size_t>(t)];
  return a == 0.0 ? std::ldexp(1.0, -24) : a;
}
double sigma_of(const Schedule& s, int t) {
  const double a = solver_abar(s, t);
  return static_cast<double>(static_cast<float>(std::sqrt((1.0 - a) / a)));
}

// diffusers' _sigma_to_t: the fractional timestep whose log sigma matches, interpolated between the
// neighbouring entries of log_sigmas (increasing with t), clamped to [0, T - 1].
double sigma_to_t(double sigma, const std::vector<double>& log_sigmas) {
  const double ls = std::log(std::max(sigma, 1e-10));
  const int n = static_cast<int>(log_sigmas.size());
  int low = 0;
  for (int i = 0; i < n; ++i)
    if (ls - log_sigmas[static_cast<std::size_t>(i)] >= 0.0) low = i;
  low = std::min(low, n - 2);
  const double lo = log_sigmas[static_cast<std::size_t>(low)], hi = log_sigmas[static_cast<std::size_t>(low + 1)];
  const double w = std::clamp((lo - ls) / (lo - hi), 0.0, 1.0);
  return (1.0 - w) * low + w * (low + 1);
}
}  // namespace

DpmSolverPlan dpm_solver_plan(const Schedule& s, const DpmSolverOptions& o) {
  DpmSolverPlan p;
  if (!o.karras_sigmas) {
    p.timesteps = dpm_solver_timesteps(o, s.T);
    for (int t : p.timesteps) p.sigmas.push_back(sigma_of(s, t));
    p.sigmas.push_back(0.0);
    return p;
  }
  check_options(o, s.T);
  DD_CHECK(s.T >= 2, "dpm-solver: Karras sigmas need T >= 2 timesteps");
  std::vector<double> log_sigmas(static_cast<std::size_t>(s.T));
  for (int t = 0; t < s.T; ++t) log_sigmas[static_cast<std::size_t>(t)] = std::log(sigma_of(s, t));
  const double rho = 7.0, sigma_min = sigma_of(s, 0), sigma_max = sigma_of(s, s.T - 1);
  const double min_inv = std::pow(sigma_min, 1.0 / rho), max_inv = std::pow(sigma_max, 1.0 / rho);
  const int n = o.steps;
  for (int i = 0; i < n; ++i) {
    // numpy's linspace(0, 1, n): i * (1 / (n - 1)), the last exactly 1.
    const double ramp = n == 1 ? 0.0 : (i == n - 1 ? 1.0 : i * (1.0 / (n - 1)));
    const double sigma = std::pow(max_inv + ramp * (min_inv - max_inv), rho);
    p.timesteps.push_back(static_cast<int>(std::nearbyint(sigma_to_t(sigma, log_sigmas))));
    p.sigmas.push_back(static_cast<double>(static_cast<float>(sigma)));
  }
  p.sigmas.push_back(0.0);
  return p;
}

std::vector<int> dpm_solver_timesteps(const DpmSolverOptions& o, int T) {
  check_options(o, T);
  const int n = o.steps;
  std::vector<int> out(static_cast<std::size_t>(n));
  switch (o.spacing) {
    case TimestepSpacing::Linspace: {
      // numpy: point j of linspace(0, T - 1, n + 1) is j * ((T - 1) / n), the last exactly T - 1;
      // reversed, the final 0 dropped: out[i] = round(point n - i).
      const double step = double(T - 1) / double(n);
      for (int i = 0; i < n; ++i) {
        const int j = n - i;
        out[static_cast<std::size_t>(i)] = static_cast<int>(std::nearbyint(j == n ? double(T - 1) : j * step));
      }
      break;
    }
    case TimestepSpacing::Leading: {
      const int ratio = T / (n + 1);
      for (int i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = (n - i) * ratio + o.steps_offset;
      break;
    }
    case TimestepSpacing::Trailing:
      return inference_timesteps(TimestepSpacing::Trailing, T, n, 0);
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    DD_CHECK(out[i] >= 0 && out[i] < T, "dpm-solver: timestep ", out[i], " outside [0, ", T, ")");
    // Two equal timesteps make a step of zero log-SNR (a division by zero in the multistep update).
    DD_CHECK(i == 0 || out[i] < out[i - 1], "dpm-solver: ", n, " steps of T = ", T, " with ",
             timestep_spacing_name(o.spacing), " spacing repeat timestep ", out[i], "; use fewer steps");
  }
  return out;
}

kernels::DpmStepCoefs dpm_solver_coefs(const DpmSolverPlan& plan, const DpmSolverOptions& o, int i,
                                       int* order_out) {
  const int n = static_cast<int>(plan.timesteps.size());
  DD_CHECK(plan.sigmas.size() == plan.timesteps.size() + 1, "dpm-solver: the plan needs one sigma more than steps");
  const auto sigma = [&](int j) { return plan.sigmas[static_cast<std::size_t>(j)]; };
  DD_CHECK(i >= 0 && i < n, "dpm-solver: step ", i, " outside [0, ", n, ")");
  // diffusers: the last step is first order (final_sigmas_type "zero"); with lower_order_final and
  // fewer than 15 steps the one before it is at most second order; warm-up: order i + 1.
  const bool last = i == n - 1;
  const bool second_last = i == n - 2 && o.lower_order_final && n < 15;
  int order = std::min(o.order, i + 1);
  if (last) order = 1;
  if (second_last) order = std::min(order, 2);
  if (order_out) *order_out = order;

  const AlphaSigma s0 = at_sigma(sigma(i));
  kernels::DpmStepCoefs k;
  k.alpha_s0 = static_cast<float>(s0.alpha);
  k.sigma_s0 = static_cast<float>(s0.sigma);
  if (last) {  // sigma_t = 0: alpha_t = 1, exp(-h) = 0, so the update is m0 itself
    k.a = 0.0f;
    k.b = 1.0f;
    return k;
  }
  const AlphaSigma t = at_sigma(sigma(i + 1));
  const double h = t.lambda - s0.lambda, em1 = std::exp(-h) - 1.0;
  const double a = t.sigma / s0.sigma, p = -(t.alpha * em1);  // x_t = a x + p D0 + ...
  double b = p, c = 0.0, d = 0.0;
  if (order >= 2) {
    const AlphaSigma s1 = at_sigma(sigma(i - 1));
    const double r0 = (s0.lambda - s1.lambda) / h;
    if (order == 2) {  // midpoint: - 0.5 (alpha_t (e^-h - 1)) D1, D1 = (m0 - m1) / r0
      const double q = 0.5 * p / r0;
      b += q;
      c -= q;
    } else {
      const AlphaSigma s2 = at_sigma(sigma(i - 2));
      const double r1 = (s1.lambda - s2.lambda) / h;
      const double Q = t.alpha * (em1 / h + 1.0), R = -(t.alpha * ((em1 + h) / (h * h) - 0.5));
      const double kk = r0 / (r0 + r1);
      // D1_0 = (m0 - m1) / r0, D1_1 = (m1 - m2) / r1, D1 = D1_0 + kk (D1_0 - D1_1), D2 = (D1_0 - D1_1) / (r0 + r1)
      b += Q * (1.0 + kk) / r0 + R / (r0 * (r0 + r1));
      c += Q * (-(1.0 + kk) / r0 - kk / r1) + R * (-1.0 / r0 - 1.0 / r1) / (r0 + r1);
      d += Q * kk / r1 + R / (r1 * (r0 + r1));
    }
  }
  k.a = static_cast<float>(a);
  k.b = static_cast<float>(b);
  k.c = static_cast<float>(c);
  k.d = static_cast<float>(d);
  return k;
}

Tensor dpm_solver_sample_loop(const GaussianDiffusion& diffusion, Denoiser& model, const Shape& shape, Generator& gen,
                              const DpmSolverOptions& o, const std::function<void(int t, const Tensor& x)>& on_step,
                              Device dev) {
  const FrozenWeights frozen_weights;  // the weights stay fixed for the chain (models/frozen_weights.h)
  DD_CHECK(shape.size() == 4 && shape[3] == model.channels(), "dpm-solver: expected an NHWC shape with ",
           model.channels(), " channels, got ", shape_str(shape));
  const DpmSolverPlan plan = dpm_solver_plan(diffusion.schedule(), o);
  const std::vector<int>& ts = plan.timesteps;
  ag::NoGrad no_grad;
  Tensor x = gen.randn_at(shape, dev);  // relative to the anchor inside a captured chain
  Tensor m1, m2, x0;  // the previous data predictions; x0 feeds a self-conditioning model
  const bool self_cond = model.self_condition();
  for (int i = 0; i < static_cast<int>(ts.size()); ++i) {
    const int t = ts[static_cast<std::size_t>(i)];
    const Tensor tt = Tensor::full({shape[0]}, static_cast<float>(t), dev);
    const Tensor out = diffusion.model_output(model, x, tt, self_cond ? x0 : Tensor());  // converted in the step
    Tensor m0;
    kernels::DpmStepCoefs k = dpm_solver_coefs(plan, o, i);
    k.output = diffusion.objective() == Objective::PredV    ? kernels::DpmStepCoefs::Output::V
               : diffusion.objective() == Objective::PredX0 ? kernels::DpmStepCoefs::Output::X0
                                                            : kernels::DpmStepCoefs::Output::Eps;
    x = kernels::dpm_solver_step(x, out, m1, m2, k, &m0, dpm_threshold_scales(o.thresholding, x, out, k));
    m2 = m1;
    m1 = m0;
    x0 = m0;
    if (on_step) on_step(t, x);
  }
  return x;
}

}  // namespace dd::models
