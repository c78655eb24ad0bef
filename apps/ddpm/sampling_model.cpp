#include "apps/ddpm/sampling_model.h"

#include "engine/error.h"
#include "kernels/loss.h"

namespace dd::ddpm {

SamplingModel open_sampling_model(const std::string& weights, Device dev) {
  SamplingModel m;
  m.model = models::load_model(weights, &m.cfg, dev, &m.sched);
  const models::ModelConfig& cfg = m.cfg;
  m.diffusion.emplace(m.sched ? m.sched->schedule()
                              : models::Schedule::make(models::parse_beta_schedule(cfg.diffusion.beta_schedule),
                                                       cfg.diffusion.timesteps, cfg.diffusion.rescale_zero_terminal_snr),
                      kernels::parse_loss_type(cfg.diffusion.loss_type), models::parse_objective(cfg.diffusion.objective));
  return m;
}

std::string SamplingModel::describe(const std::string& weights, Device dev) const {
  const std::string schedule =
      sched ? "scheduler_config.json: " + sched->beta_schedule + " betas, " + sched->variance_type +
                  (sched->clip_sample ? ", clip_sample" : "")
            : cfg.diffusion.beta_schedule + " schedule";
  return str_cat(weights, ": ", cfg.unet2d ? "UNet2DModel" : "U-Net", ", ", cfg.diffusion.image_size, "x",
                 cfg.diffusion.image_size, "x", cfg.channels(), " images, ", cfg.diffusion.timesteps, " timesteps (",
                 schedule, diffusion->schedule().zero_terminal_snr() ? ", zero terminal SNR" : "", "), ",
                 model.params->numel(), " parameters, device ", device_name(dev));
}

void apply_sampler_flags(const SamplerFlags& flags, const SamplingModel& m, SampleRequest& req) {
  flags.apply(req, m.cfg.diffusion.timesteps);
  if (m.sched) {
    const models::DiffusersScheduler& s = *m.sched;
    if (!flags.variance_type_given()) req.ddpm.variance_type = models::parse_variance_type(s.variance_type);
    if (!flags.clip_sample && !flags.no_clip) req.ddpm.clip_sample = s.clip_sample;
    req.ddpm.clip_sample_range = s.clip_sample_range;
    if (flags.spacing.empty()) req.ddpm.spacing = models::parse_timestep_spacing(s.timestep_spacing);
    if (!flags.thresholding && s.thresholding) {
      req.ddpm.thresholding.enabled = true;
      req.ddpm.thresholding.ratio = s.dynamic_thresholding_ratio;
      req.ddpm.thresholding.max_value = s.sample_max_value;
    }
  }
  if (flags.no_clip) req.ddpm.clip_sample = false;
}

}  // namespace dd::ddpm
