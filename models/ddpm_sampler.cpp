#include "models/ddpm_sampler.h"

#include <algorithm>
#include <cmath>

#include "autograd/var.h"
#include "engine/error.h"

namespace dd::models {

VarianceType parse_variance_type(const std::string& name) {
  if (name == "fixed_small") return VarianceType::FixedSmall;
  if (name == "fixed_large") return VarianceType::FixedLarge;
  DD_FAIL("unknown variance type '", name, "' (expected fixed_small or fixed_large)");
}

namespace {
int steps_of(const DdpmOptions& o, int T) {
  const int n = o.steps == 0 ? T : o.steps;
  DD_CHECK(n >= 1 && n <= T, "ddpm: --steps ", o.steps, " must lie in [1, T = ", T, "] (0 = all)");
  DD_CHECK(o.clip_sample_range > 0.0, "ddpm: clip_sample_range must be positive, got ", o.clip_sample_range);
  return n;
}
}  // namespace

kernels::DdimStepCoefs ddpm_coefs(const Schedule& s, const DdpmOptions& o, int t) {
  const int n = steps_of(o, s.T);
  DD_CHECK(t >= 0 && t < s.T, "ddpm: timestep ", t, " outside [0, ", s.T, ")");
  const int prev = t - s.T / n;
  const double a = s.alphas_cumprod[static_cast<std::size_t>(t)];
  const double a_prev = prev >= 0 ? s.alphas_cumprod[static_cast<std::size_t>(prev)] : 1.0;
  const double beta_prod = 1.0 - a, beta_prod_prev = 1.0 - a_prev;
  const double cur_alpha = a / a_prev, cur_beta = 1.0 - cur_alpha;
  double variance = o.variance_type == VarianceType::FixedLarge ? cur_beta
                                                                : std::max(beta_prod_prev / beta_prod * cur_beta, 1e-20);
  kernels::DdimStepCoefs c;
  c.sqrt_abar = static_cast<float>(std::sqrt(a));
  c.sqrt_one_minus_abar = static_cast<float>(std::sqrt(beta_prod));
  c.sqrt_abar_prev = static_cast<float>(std::sqrt(a_prev) * cur_beta / beta_prod);  // c1
  c.dir = 0.0f;
  c.x_coef = static_cast<float>(std::sqrt(cur_alpha) * beta_prod_prev / beta_prod);  // c2
  c.sigma = t > 0 ? static_cast<float>(std::sqrt(variance)) : 0.0f;
  c.clip = o.clip_sample ? static_cast<float>(o.clip_sample_range) : 0.0f;
  return c;
}

Tensor ddpm_sample_loop(const GaussianDiffusion& diffusion, Denoiser& model, const Shape& shape, Generator& gen,
                        const DdpmOptions& o, const std::function<void(int t, const Tensor& x)>& on_step, Device dev) {
  DD_CHECK(shape.size() == 4 && shape[3] == model.channels(), "ddpm: expected an NHWC shape with ", model.channels(),
           " channels, got ", shape_str(shape));
  const int n = steps_of(o, diffusion.T());
  const std::vector<int> ts = inference_timesteps(o.spacing, diffusion.T(), n);
  ag::NoGrad no_grad;
  Tensor x = gen.randn(shape, dev);
  Tensor x0;
  const bool self_cond = model.self_condition();
  for (int t : ts) {
    const Tensor tt = Tensor::full({shape[0]}, static_cast<float>(t), dev);
    const Tensor out = diffusion.model_output(model, x, tt, self_cond ? x0 : Tensor());  // converted in the step
    kernels::DdimStepCoefs c = ddpm_coefs(diffusion.schedule(), o, t);
    if (diffusion.objective() != Objective::PredNoise) {
      const GaussianDiffusion::OutputConversion k = diffusion.output_conversion(t);
      c.linear_output = true;
      c.x0_x = static_cast<float>(k.x0_x);
      c.x0_out = static_cast<float>(k.x0_out);
      c.eps_x = static_cast<float>(k.eps_x);
      c.eps_out = static_cast<float>(k.eps_out);
    }
    const uint64_t offset = c.sigma > 0.0f ? gen.reserve(x.numel()) : 0;
    Tensor next_x0;
    x = kernels::ddim_step(x, out, c, gen.seed(), offset, self_cond ? &next_x0 : nullptr);
    x0 = next_x0;
    if (on_step) on_step(t, x);
  }
  return x;
}

}  // namespace dd::models
