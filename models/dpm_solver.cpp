#include "models/dpm_solver.h"

#include <algorithm>
#include <cmath>

#include "autograd/var.h"
#include "engine/error.h"

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
double sigma_of(const Schedule& s, int t) {
  const double a = s.alphas_cumprod[static_cast<std::size_t>(t)];
  return static_cast<double>(static_cast<float>(std::sqrt((1.0 - a) / a)));
}
}  // namespace

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

kernels::DpmStepCoefs dpm_solver_coefs(const Schedule& s, const DpmSolverOptions& o, const std::vector<int>& ts,
                                       int i, int* order_out) {
  const int n = static_cast<int>(ts.size());
  DD_CHECK(i >= 0 && i < n, "dpm-solver: step ", i, " outside [0, ", n, ")");
  // diffusers: the last step is first order (final_sigmas_type "zero"); with lower_order_final and
  // fewer than 15 steps the one before it is at most second order; warm-up: order i + 1.
  const bool last = i == n - 1;
  const bool second_last = i == n - 2 && o.lower_order_final && n < 15;
  int order = std::min(o.order, i + 1);
  if (last) order = 1;
  if (second_last) order = std::min(order, 2);
  if (order_out) *order_out = order;

  const AlphaSigma s0 = at_sigma(sigma_of(s, ts[static_cast<std::size_t>(i)]));
  kernels::DpmStepCoefs k;
  k.alpha_s0 = static_cast<float>(s0.alpha);
  k.sigma_s0 = static_cast<float>(s0.sigma);
  if (last) {  // sigma_t = 0: alpha_t = 1, exp(-h) = 0, so the update is m0 itself
    k.a = 0.0f;
    k.b = 1.0f;
    return k;
  }
  const AlphaSigma t = at_sigma(sigma_of(s, ts[static_cast<std::size_t>(i + 1)]));
  const double h = t.lambda - s0.lambda, em1 = std::exp(-h) - 1.0;
  const double a = t.sigma / s0.sigma, p = -(t.alpha * em1);  // x_t = a x + p D0 + ...
  double b = p, c = 0.0, d = 0.0;
  if (order >= 2) {
    const AlphaSigma s1 = at_sigma(sigma_of(s, ts[static_cast<std::size_t>(i - 1)]));
    const double r0 = (s0.lambda - s1.lambda) / h;
    if (order == 2) {  // midpoint: - 0.5 (alpha_t (e^-h - 1)) D1, D1 = (m0 - m1) / r0
      const double q = 0.5 * p / r0;
      b += q;
      c -= q;
    } else {
      const AlphaSigma s2 = at_sigma(sigma_of(s, ts[static_cast<std::size_t>(i - 2)]));
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
  DD_CHECK(shape.size() == 4 && shape[3] == model.channels(), "dpm-solver: expected an NHWC shape with ",
           model.channels(), " channels, got ", shape_str(shape));
  const std::vector<int> ts = dpm_solver_timesteps(o, diffusion.T());
  ag::NoGrad no_grad;
  Tensor x = gen.randn(shape, dev);
  Tensor m1, m2, x0;  // the previous data predictions; x0 feeds a self-conditioning model
  const bool self_cond = model.self_condition();
  for (int i = 0; i < static_cast<int>(ts.size()); ++i) {
    const int t = ts[static_cast<std::size_t>(i)];
    const Tensor tt = Tensor::full({shape[0]}, static_cast<float>(t), dev);
    const Tensor out = diffusion.model_output(model, x, tt, self_cond ? x0 : Tensor());  // converted in the step
    Tensor m0;
    kernels::DpmStepCoefs k = dpm_solver_coefs(diffusion.schedule(), o, ts, i);
    k.output = diffusion.objective() == Objective::PredV    ? kernels::DpmStepCoefs::Output::V
               : diffusion.objective() == Objective::PredX0 ? kernels::DpmStepCoefs::Output::X0
                                                            : kernels::DpmStepCoefs::Output::Eps;
    x = kernels::dpm_solver_step(x, out, m1, m2, k, &m0);
    m2 = m1;
    m1 = m0;
    x0 = m0;
    if (on_step) on_step(t, x);
  }
  return x;
}

}  // namespace dd::models
