#include "models/ddpm_sampler.h"

#include <algorithm>
#include <cmath>

#include "autograd/var.h"
#include "engine/error.h"
#include "models/frozen_weights.h"

namespace dd::models {

VarianceType parse_variance_type(const std::string& name) {
  if (name == "fixed_small") return VarianceType::FixedSmall;
  if (name == "fixed_large") return VarianceType::FixedLarge;
  DD_FAIL("unknown variance type '", name, "' (expected fixed_small or fixed_large)");
}

std::vector<int> respaced_timesteps(const std::string& spec, int T) {
  DD_CHECK(T >= 1, "respacing: T must be >= 1, got ", T);
  std::vector<int> out;
  auto parse_count = [&](const std::string& text) {
    std::size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DD_CHECK(used == text.size() && !text.empty() && v >= 1, "respacing '", spec,
             "': expected ddimN or comma-separated positive step counts (improved-diffusion's), got '", text, "'");
    return v;
  };
  if (spec.rfind("ddim", 0) == 0) {
    const int want = parse_count(spec.substr(4));
    for (int stride = 1; stride < T || (stride == 1 && T == 1); ++stride) {
      if ((T + stride - 1) / stride == want) {
        for (int t = 0; t < T; t += stride) out.push_back(t);
        break;
      }
    }
    DD_CHECK(!out.empty(), "respacing '", spec, "': no integer stride gives exactly ", want, " of T = ", T,
             " timesteps");
  } else {
    std::vector<int> counts;
    std::size_t start = 0;
    while (true) {
      const std::size_t comma = spec.find(',', start);
      counts.push_back(parse_count(spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    // T split into equal sections (the first T % sections one longer), each spaced evenly with a
    // fractional stride accumulated in double and rounded half to even (Python's round).
    const int sections = static_cast<int>(counts.size());
    const int size_per = T / sections, extra = T % sections;
    int start_idx = 0;
    for (int i = 0; i < sections; ++i) {
      const int size = size_per + (i < extra ? 1 : 0), count = counts[static_cast<std::size_t>(i)];
      DD_CHECK(size >= count, "respacing '", spec, "': section ", i, " has ", size, " timesteps, fewer than ", count);
      const double stride = count <= 1 ? 1.0 : double(size - 1) / double(count - 1);
      double cur = 0.0;
      for (int k = 0; k < count; ++k) {
        out.push_back(start_idx + static_cast<int>(std::nearbyint(cur)));
        cur += stride;
      }
      start_idx += size;
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  std::reverse(out.begin(), out.end());
  return out;
}

namespace {
int steps_of(const DdpmOptions& o, int T) {
  if (!o.timesteps.empty()) {
    for (std::size_t i = 0; i < o.timesteps.size(); ++i) {
      const int t = o.timesteps[i];
      DD_CHECK(t >= 0 && t < T && (i == 0 || t < o.timesteps[i - 1]), "ddpm: custom timestep ", t, " at ", i,
               " must lie in [0, ", T, ") and below the one before it");
    }
    return static_cast<int>(o.timesteps.size());
  }
  const int n = o.steps == 0 ? T : o.steps;
  DD_CHECK(n >= 1 && n <= T, "ddpm: --steps ", o.steps, " must lie in [1, T = ", T, "] (0 = all)");
  DD_CHECK(o.clip_sample_range > 0.0, "ddpm: clip_sample_range must be positive, got ", o.clip_sample_range);
  return n;
}
}  // namespace

kernels::DdimStepCoefs ddpm_coefs(const Schedule& s, const DdpmOptions& o, int t) {
  return ddpm_coefs(s, o, t, t - s.T / steps_of(o, s.T));
}

kernels::DdimStepCoefs ddpm_coefs(const Schedule& s, const DdpmOptions& o, int t, int prev) {
  steps_of(o, s.T);
  DD_CHECK(t >= 0 && t < s.T && prev < t, "ddpm: step from timestep ", t, " to ", prev, " outside [0, ", s.T, ")");
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
  const FrozenWeights frozen_weights;  // the weights stay fixed for the chain (models/frozen_weights.h)
  DD_CHECK(shape.size() == 4 && shape[3] == model.channels(), "ddpm: expected an NHWC shape with ", model.channels(),
           " channels, got ", shape_str(shape));
  const int n = steps_of(o, diffusion.T());
  const std::vector<int> ts = o.timesteps.empty() ? inference_timesteps(o.spacing, diffusion.T(), n) : o.timesteps;
  ag::NoGrad no_grad;
  Tensor x = gen.randn_at(shape, dev);  // relative to the anchor inside a captured chain
  Tensor x0;
  const bool self_cond = model.self_condition();
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const int t = ts[i];
    // diffusers' previous_timestep: the next custom timestep, else t - T // steps.
    const int prev = o.timesteps.empty() ? t - diffusion.T() / n : (i + 1 < ts.size() ? ts[i + 1] : -1);
    const Tensor tt = Tensor::full({shape[0]}, static_cast<float>(t), dev);
    const Tensor out = diffusion.model_output(model, x, tt, self_cond ? x0 : Tensor());  // converted in the step
    kernels::DdimStepCoefs c = ddpm_coefs(diffusion.schedule(), o, t, prev);
    if (diffusion.objective() != Objective::PredNoise) {
      const GaussianDiffusion::OutputConversion k = diffusion.output_conversion(t);
      c.linear_output = true;
      c.x0_x = static_cast<float>(k.x0_x);
      c.x0_out = static_cast<float>(k.x0_out);
      c.eps_x = static_cast<float>(k.eps_x);
      c.eps_out = static_cast<float>(k.eps_out);
    }
    const PhiloxOffset offset = c.sigma > 0.0f ? gen.reserve_at(x.numel()) : PhiloxOffset(0);
    Tensor next_x0;
    x = kernels::ddim_step(x, out, c, gen.seed(), offset, self_cond ? &next_x0 : nullptr,
                           ddim_threshold_scales(o.thresholding, x, out, c));
    x0 = next_x0;
    if (on_step) on_step(t, x);
  }
  return x;
}

}  // namespace dd::models
