#include "models/ddim.h"

#include <algorithm>
#include <cmath>

#include "autograd/var.h"
#include "engine/error.h"
#include "kernels/ddim_step.h"
#include "models/frozen_weights.h"

namespace dd::models {

namespace {
void check_options(const DdimOptions& o, int T) {
  DD_CHECK(o.steps >= 1 && o.steps <= T, "ddim: --steps ", o.steps, " must lie in [1, T = ", T, "]");
  DD_CHECK(o.eta >= 0.0 && std::isfinite(o.eta), "ddim: --eta must be >= 0, got ", o.eta);
  DD_CHECK(o.clip_sample_range > 0.0, "ddim: clip_sample_range must be positive, got ", o.clip_sample_range);
  DD_CHECK(o.steps_offset >= 0, "ddim: steps_offset must be >= 0, got ", o.steps_offset);
}
}  // namespace

kernels::DdimStepCoefs ddim_coefs(const Schedule& s, const DdimOptions& o, int t) {
  DD_CHECK(t >= 0 && t < s.T, "ddim: timestep ", t, " outside [0, ", s.T, ")");
  const int prev = t - s.T / o.steps;
  const double a = s.alphas_cumprod[static_cast<std::size_t>(t)];
  const double a_prev = prev >= 0 ? s.alphas_cumprod[static_cast<std::size_t>(prev)]
                                  : (o.set_alpha_to_one ? 1.0 : s.alphas_cumprod[0]);
  const double variance = ((1.0 - a_prev) / (1.0 - a)) * (1.0 - a / a_prev);
  const double sigma = o.eta * std::sqrt(variance);
  kernels::DdimStepCoefs c;
  c.sqrt_abar = static_cast<float>(std::sqrt(a));
  c.sqrt_one_minus_abar = static_cast<float>(std::sqrt(1.0 - a));
  c.sqrt_abar_prev = static_cast<float>(std::sqrt(a_prev));
  // 1 - abar_prev - sigma^2 >= 0 in exact arithmetic for eta <= 1; an eta above 1 can push it below.
  const double dir2 = 1.0 - a_prev - sigma * sigma;
  DD_CHECK(dir2 > -1e-12, "ddim: eta ", o.eta, " is too large at timestep ", t, " (1 - abar_prev - sigma^2 = ", dir2,
           " < 0)");
  c.dir = static_cast<float>(std::sqrt(std::max(0.0, dir2)));
  c.sigma = static_cast<float>(sigma);
  c.clip = o.clip_sample ? static_cast<float>(o.clip_sample_range) : 0.0f;
  c.rederive_eps = o.use_clipped_model_output;
  return c;
}

kernels::DdimStepCoefs ddim_coefs(const GaussianDiffusion& d, const DdimOptions& o, int t) {
  kernels::DdimStepCoefs c = ddim_coefs(d.schedule(), o, t);
  if (d.objective() != Objective::PredNoise) {
    const GaussianDiffusion::OutputConversion k = d.output_conversion(t);
    c.linear_output = true;
    c.x0_x = static_cast<float>(k.x0_x);
    c.x0_out = static_cast<float>(k.x0_out);
    c.eps_x = static_cast<float>(k.eps_x);
    c.eps_out = static_cast<float>(k.eps_out);
  }
  return c;
}

Tensor ddim_step(const GaussianDiffusion& diffusion, Denoiser& model, const Tensor& x, int t, Generator& gen,
                 const DdimOptions& o, Tensor* x0_out, const Tensor& x_self_cond) {
  check_options(o, diffusion.T());
  const Tensor tt = Tensor::full({x.dim(0)}, static_cast<float>(t), x.device());
  const Tensor out = diffusion.model_output(model, x, tt, x_self_cond);  // converted in the step
  // The draw is reserved whenever eta > 0 (not only where sigma > 0), so the stream's position
  // depends on the options and the shapes alone.
  const PhiloxOffset offset = o.eta > 0.0 ? gen.reserve_at(x.numel()) : PhiloxOffset(0);
  const kernels::DdimStepCoefs c = ddim_coefs(diffusion, o, t);
  return kernels::ddim_step(x, out, c, gen.seed(), offset, x0_out, ddim_threshold_scales(o.thresholding, x, out, c));
}

Tensor ddim_sample_loop(const GaussianDiffusion& diffusion, Denoiser& model, const Shape& shape, Generator& gen,
                        const DdimOptions& o, const std::function<void(int t, const Tensor& x)>& on_step,
                        Device dev) {
  const FrozenWeights frozen_weights;  // the weights stay fixed for the chain (models/frozen_weights.h)
  check_options(o, diffusion.T());
  DD_CHECK(shape.size() == 4 && shape[3] == model.channels(), "ddim: expected an NHWC shape with ", model.channels(),
           " channels, got ", shape_str(shape));
  const std::vector<int> ts = inference_timesteps(o.spacing, diffusion.T(), o.steps, o.steps_offset);
  Tensor x = gen.randn_at(shape, dev);  // relative to the anchor inside a captured chain
  Tensor x0;  // undefined at the first step, as lucidrains' x_start = None
  const bool self_cond = model.self_condition();
  for (int t : ts) {
    Tensor next_x0;
    x = ddim_step(diffusion, model, x, t, gen, o, self_cond ? &next_x0 : nullptr, self_cond ? x0 : Tensor());
    x0 = next_x0;
    if (on_step) on_step(t, x);
  }
  return x;
}

}  // namespace dd::models
