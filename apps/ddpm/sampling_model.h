#pragma once
// A model opened for sampling, as sample_ddpm and ddpm_tool fid open it: our weights file, a train_ddpm
// run folder or a diffusers folder, with the diffusion its config (or scheduler_config.json) describes,
// and the sampler flags applied on top of a diffusers scheduler's own sampling settings.
#include <optional>
#include <string>

#include "apps/ddpm/sampler.h"
#include "apps/ddpm/sampler_flags.h"
#include "models/diffusers_folder.h"
#include "models/weights.h"

namespace dd::ddpm {

struct SamplingModel {
  models::AnyModel model;
  models::ModelConfig cfg;
  std::optional<models::DiffusersScheduler> sched;
  std::optional<models::GaussianDiffusion> diffusion;
  // "path: U-Net, 32x32x3 images, 1000 timesteps (linear schedule), N parameters, device cpu"
  std::string describe(const std::string& weights, Device dev) const;
};

SamplingModel open_sampling_model(const std::string& weights, Device dev);

// flags.apply, then (for a diffusers folder) DDPMPipeline's sampling where no flag says otherwise:
// the scheduler's variance type, clipping and its range, timestep spacing and thresholding.
void apply_sampler_flags(const SamplerFlags& flags, const SamplingModel& m, SampleRequest& req);

}  // namespace dd::ddpm
