#include "apps/ddpm/sampler_flags.h"

#include <CLI/CLI.hpp>

#include <algorithm>

#include "engine/error.h"

namespace dd::ddpm {

void SamplerFlags::add_to(CLI::App& app) {
  app.add_option("--sampler", sampler,
                 "ddpm (Algorithm 2 over all T steps; diffusers' DDPMScheduler), ddim (--steps steps; "
                 "DDIMScheduler), dpmpp (DPM-Solver++ multistep, --steps steps, e.g. 20; "
                 "DPMSolverMultistepScheduler) or respaced (DDPM over improved-diffusion's respaced timesteps, "
                 "--steps N or --respacing)")
      ->capture_default_str();
  app.add_option("--steps", steps,
                 "denoising steps out of T (num_inference_steps); 0 = the sampler's default: ddpm all T, ddim 50, "
                 "dpmpp 20, respaced 100")
      ->capture_default_str();
  app.add_option("--respacing", respacing,
                 "respaced: improved-diffusion's timestep_respacing, e.g. ddim50, 250 or 10,15,20 (default: --steps "
                 "evenly spaced)");
  variance_option_ = app.add_option("--variance-type", variance_type,
                 "ddpm, respaced: fixed_small (posterior, default) or fixed_large (beta_t; diffusers' variance_type)")
      ->capture_default_str();
  app.add_flag("--clip-sample", clip_sample,
               "ddpm, respaced: clamp the x0 estimate to [-1, 1] (diffusers' clip_sample)");
  app.add_option("--eta", eta, "ddim: eta, 0 = deterministic, 1 = DDPM-like noise")->capture_default_str();
  app.add_option("--timestep-spacing", spacing,
                 "ddim, dpmpp, ddpm with --steps: leading, linspace or trailing (diffusers' timestep_spacing; default "
                 "leading for ddim and ddpm, linspace for dpmpp, as diffusers)");
  app.add_flag("--no-clip-sample", no_clip, "ddim: do not clamp the x0 estimate to [-1, 1] (clip_sample=False)");
  app.add_option("--order", order, "dpmpp: solver order 1, 2 (2M) or 3 (diffusers' solver_order)")
      ->capture_default_str();
  app.add_flag("--karras-sigmas", karras_sigmas, "dpmpp: Karras et al.'s sigmas (diffusers' use_karras_sigmas)");
  app.add_flag("--dynamic-thresholding", thresholding,
               "ddpm, respaced, ddim, dpmpp: Imagen's dynamic thresholding of x0 in place of clipping (diffusers' "
               "thresholding=True)");
  app.add_option("--dynamic-thresholding-ratio", thresholding_ratio,
                 "the quantile of |x0| per image (diffusers' dynamic_thresholding_ratio)")
      ->capture_default_str();
  app.add_option("--sample-max-value", sample_max_value,
                 "the largest threshold (diffusers' sample_max_value; 1 for images in [-1, 1])")
      ->capture_default_str();
}

void SamplerFlags::apply(SampleRequest& req, int T) const {
  DD_CHECK(sampler == "ddpm" || sampler == "ddim" || sampler == "dpmpp" || sampler == "respaced",
           "--sampler must be ddpm, ddim, dpmpp or respaced, got '", sampler, "'");
  DD_CHECK(steps >= 0 && steps <= T, "--steps ", steps, " must lie in [1, ", T,
           "] (the model's timesteps; 0 = the default)");
  DD_CHECK(order >= 1 && order <= 3, "--order must be 1, 2 or 3, got ", order);
  DD_CHECK(respacing.empty() || sampler == "respaced", "--respacing needs --sampler respaced");
  DD_CHECK(!karras_sigmas || sampler == "dpmpp", "--karras-sigmas needs --sampler dpmpp");
  models::DynamicThresholding th;
  th.enabled = thresholding;
  th.ratio = thresholding_ratio;
  th.max_value = sample_max_value;
  models::check_thresholding(th);

  req.sampler = sampler == "respaced" ? "ddpm" : sampler;
  req.ddim.steps = steps ? steps : std::min(50, T);
  req.ddim.eta = eta;
  req.ddim.clip_sample = !no_clip;
  req.ddim.thresholding = th;
  req.dpm.steps = steps ? steps : std::min(20, std::max(1, T / 2));
  req.dpm.order = order;
  req.dpm.karras_sigmas = karras_sigmas;
  req.dpm.thresholding = th;
  req.ddpm.steps = sampler == "respaced" ? 0 : steps;
  req.ddpm.variance_type = models::parse_variance_type(variance_type);
  req.ddpm.clip_sample = clip_sample;
  req.ddpm.thresholding = th;
  if (sampler == "respaced")
    req.ddpm.timesteps =
        models::respaced_timesteps(respacing.empty() ? std::to_string(steps ? steps : std::min(100, T)) : respacing, T);
  if (!spacing.empty()) {
    const models::TimestepSpacing s = models::parse_timestep_spacing(spacing);
    req.ddim.spacing = s;
    req.ddpm.spacing = s;
    req.dpm.spacing = s;
  }
}

bool SamplerFlags::variance_type_given() const { return variance_option_ && variance_option_->count() > 0; }

nlohmann::json SamplerFlags::to_json() const {
  return {{"sampler", sampler},
          {"steps", steps},
          {"spacing", spacing},
          {"respacing", respacing},
          {"variance_type", variance_type},
          {"clip_sample", clip_sample},
          {"no_clip", no_clip},
          {"eta", eta},
          {"order", order},
          {"karras_sigmas", karras_sigmas},
          {"thresholding", thresholding},
          {"thresholding_ratio", thresholding_ratio},
          {"sample_max_value", sample_max_value}};
}

}  // namespace dd::ddpm
