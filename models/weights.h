#pragma once
// The weights file: safetensors whose tensors are the seed module's state_dict (PyTorch names and
// layouts, F32) and whose __metadata__["config"] is a JSON object describing the model and the
// diffusion, so `Unet(**config).load_state_dict(tensors, strict=True)` works in PyTorch.
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "models/diffusers_folder.h"
#include "models/unet.h"
#include "models/unet2d.h"

namespace dd::models {

struct DiffusionConfig {
  int image_size = 32;
  int timesteps = 1000;
  std::string beta_schedule = "linear";
  bool rescale_zero_terminal_snr = false;  // Lin et al.; absent in older files = false
  std::string objective = "pred_noise";
  std::string loss_type = "huber";
};

struct ModelConfig {
  UnetConfig unet;
  // Set: the model is diffusers' UNet2DModel (models/unet2d.h) and `unet` is unused. The JSON then
  // holds {"family": "unet2d", "unet2d": <diffusers' config.json>, <diffusion keys>}.
  std::optional<Unet2DConfig> unet2d;
  DiffusionConfig diffusion;

  int channels() const { return unet2d ? unet2d->in_channels : unet.channels; }
  bool self_condition() const { return unet2d ? false : unet.self_condition; }
  const char* family() const { return unet2d ? "unet2d" : "unet"; }

  nlohmann::json to_json() const;
  // Missing keys take the defaults; `source` (a file name) prefixes every error.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
};

// Writes params' state_dict and the config (temp file + rename). extra_metadata goes into
// __metadata__ beside "config" (e.g. the training step).
void save_weights(const std::string& path, const ParamSet& params, const ModelConfig& config,
                  const std::map<std::string, std::string>& extra_metadata = {});

struct WeightsFile {
  ModelConfig config;
  std::map<std::string, Tensor> tensors;  // PyTorch layout, CPU
  std::map<std::string, std::string> metadata;
};
WeightsFile load_weights(const std::string& path);

// A model of either family and its parameters (unet2d set for the UNet2DModel family).
struct AnyModel {
  std::unique_ptr<Denoiser> net;
  ParamSet* params = nullptr;
  Unet2D* unet2d = nullptr;
};
// Builds the model cfg describes, initialised from gen.
AnyModel make_model(const ModelConfig& cfg, Generator& gen);
// Loads a weights file of ours (either family), a train_ddpm run folder (its model.safetensors) or a
// diffusers folder (models/diffusers_folder.h;
// its scheduler_config.json, when present, goes to *scheduler_out), strict.
AnyModel load_model(const std::string& path, ModelConfig* config_out = nullptr, Device dev = Device::CPU,
                    std::optional<DiffusersScheduler>* scheduler_out = nullptr);

// Builds the model the file describes and loads its tensors (strict).
std::unique_ptr<Unet> load_unet(const std::string& path, ModelConfig* config_out = nullptr, Device dev = Device::CPU);

}  // namespace dd::models
