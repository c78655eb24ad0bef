#pragma once
// diffusers' folder format for UNet2DModel checkpoints (google/ddpm-cifar10-32 as published):
//   flat:      DIR/config.json, DIR/diffusion_pytorch_model.safetensors [, DIR/scheduler_config.json]
//   pipeline:  DIR/model_index.json, DIR/unet/{config.json, diffusion_pytorch_model.safetensors},
//              DIR/scheduler/scheduler_config.json
// Read (a .bin gets an error with the one-line torch conversion) and written (what
// UNet2DModel.from_pretrained / DDPMPipeline.from_pretrained open).
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "models/schedule.h"
#include "models/unet2d.h"

namespace dd::models {

// DDPMScheduler's scheduler_config.json (the keys the DDPM sampler uses).
struct DiffusersScheduler {
  int num_train_timesteps = 1000;
  std::string beta_schedule = "linear";  // linear or scaled_linear
  double beta_start = 1e-4, beta_end = 0.02;
  std::string variance_type = "fixed_small";  // fixed_small or fixed_large
  bool clip_sample = true;
  double clip_sample_range = 1.0;
  std::string prediction_type = "epsilon";
  std::string timestep_spacing = "leading";
  bool rescale_betas_zero_snr = false;  // the betas rescaled to zero terminal SNR (models/schedule.h)
  bool thresholding = false;            // dynamic thresholding (models/thresholding.h)
  double dynamic_thresholding_ratio = 0.995, sample_max_value = 1.0;

  // betas as diffusers builds them (linspace, in double here; rescaled when rescale_betas_zero_snr).
  Schedule schedule() const;
  nlohmann::json to_json() const;
  static DiffusersScheduler from_json(const nlohmann::json& j, const std::string& source);
};

// True when path is a directory holding unet/config.json, or a config.json of a UNet2DModel.
bool is_diffusers_folder(const std::string& path);

struct DiffusersFolder {
  std::string unet_dir;  // where config.json and the weights are
  Unet2DConfig config;
  std::optional<DiffusersScheduler> scheduler;
  std::map<std::string, Tensor> tensors;  // canonical names (unet2d_canonical_state_dict), PyTorch layout
};
DiffusersFolder read_diffusers_folder(const std::string& path);

// Builds the model the folder describes and loads its weights (strict).
std::unique_ptr<Unet2D> load_unet2d(const std::string& path, DiffusersFolder* folder_out = nullptr,
                                    Device dev = Device::CPU);

// Writes the pipeline layout (model_index.json for DDPMPipeline, unet/, scheduler/); every file
// through a temporary file and a rename.
void write_diffusers_folder(const std::string& dir, const ParamSet& params, const Unet2DConfig& config,
                            const DiffusersScheduler& scheduler);

}  // namespace dd::models
