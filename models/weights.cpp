#include "models/weights.h"

#include <filesystem>

#include "engine/error.h"
#include "engine/safetensors.h"

namespace dd::models {

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j;
  if (unet2d) {
    j["family"] = "unet2d";
    j["unet2d"] = unet2d->to_json();
  } else {
    j = unet.to_json();
  }
  j["image_size"] = diffusion.image_size;
  j["timesteps"] = diffusion.timesteps;
  j["beta_schedule"] = diffusion.beta_schedule;
  if (diffusion.rescale_zero_terminal_snr) j["rescale_zero_terminal_snr"] = true;
  j["objective"] = diffusion.objective;
  j["loss_type"] = diffusion.loss_type;
  return j;
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& source) {
  ModelConfig c;
  try {
    const bool is2d = j.contains("family") && j["family"] == "unet2d";
    DD_CHECK(!j.contains("family") || j["family"] == "unet" || is2d, "'family' must be unet or unet2d, got ",
             j["family"].dump());
    if (is2d) {
      DD_CHECK(j.contains("unet2d"), "family unet2d needs the 'unet2d' object (diffusers' config.json)");
      c.unet2d = Unet2DConfig::from_json(j["unet2d"], "the 'unet2d' config");
    } else {
      c.unet = UnetConfig::from_json(j);
    }
    auto get_int = [&](const char* key, int& dst) {
      if (!j.contains(key) || j[key].is_null()) return;
      DD_CHECK(j[key].is_number_integer(), "'", key, "' must be an integer, got ", j[key].dump());
      dst = j[key].get<int>();
    };
    auto get_str = [&](const char* key, std::string& dst) {
      if (!j.contains(key) || j[key].is_null()) return;
      DD_CHECK(j[key].is_string(), "'", key, "' must be a string, got ", j[key].dump());
      dst = j[key].get<std::string>();
    };
    get_int("image_size", c.diffusion.image_size);
    get_int("timesteps", c.diffusion.timesteps);
    get_str("beta_schedule", c.diffusion.beta_schedule);
    if (j.contains("rescale_zero_terminal_snr") && !j["rescale_zero_terminal_snr"].is_null()) {
      DD_CHECK(j["rescale_zero_terminal_snr"].is_boolean(), "'rescale_zero_terminal_snr' must be true or false, got ",
               j["rescale_zero_terminal_snr"].dump());
      c.diffusion.rescale_zero_terminal_snr = j["rescale_zero_terminal_snr"].get<bool>();
    }
    get_str("objective", c.diffusion.objective);
    get_str("loss_type", c.diffusion.loss_type);
    const int div = c.unet2d ? c.unet2d->size_divisor() : c.unet.size_divisor();
    DD_CHECK(c.diffusion.image_size > 0 && c.diffusion.image_size % div == 0, "image_size ", c.diffusion.image_size,
             " must be a positive multiple of ", div, " (one halving per level but the last)");
    DD_CHECK(c.diffusion.timesteps > 0, "timesteps must be positive, got ", c.diffusion.timesteps);
  } catch (const Error& e) {
    DD_FAIL(source, ": bad config: ", e.what());
  }
  return c;
}

void save_weights(const std::string& path, const ParamSet& params, const ModelConfig& config,
                  const std::map<std::string, std::string>& extra_metadata) {
  SafeTensorsFile f;
  f.metadata = extra_metadata;
  f.metadata["config"] = config.to_json().dump();
  f.metadata["format"] = "pt";
  for (const auto& kv : params.state_dict()) f.put_f32(kv.first, kv.second);
  save_safetensors(path, f);
}

WeightsFile load_weights(const std::string& path) {
  SafeTensorsFile f = load_safetensors(path);
  WeightsFile w;
  w.metadata = f.metadata;
  auto it = f.metadata.find("config");
  DD_CHECK(it != f.metadata.end(), path, ": no __metadata__[\"config\"]: not a weights file written by train_ddpm ",
           "or by the PyTorch export (it needs the model config as JSON)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(it->second);
  } catch (const std::exception& e) {
    DD_FAIL(path, ": __metadata__[\"config\"] is not valid JSON: ", e.what());
  }
  w.config = ModelConfig::from_json(j, path);
  for (const auto& kv : f.tensors) {
    DD_CHECK(kv.second.dtype == "F32", path, ": tensor '", kv.first, "' is ", kv.second.dtype,
             "; model weights must be F32");
    w.tensors[kv.first] = kv.second.to_f32();
  }
  return w;
}

AnyModel make_model(const ModelConfig& cfg, Generator& gen) {
  AnyModel m;
  if (cfg.unet2d) {
    auto net = std::make_unique<Unet2D>(*cfg.unet2d, gen);
    m.params = &net->params();
    m.unet2d = net.get();
    m.net = std::move(net);
  } else {
    auto net = std::make_unique<Unet>(cfg.unet, gen);
    m.params = &net->params();
    m.net = std::move(net);
  }
  return m;
}

AnyModel load_model(const std::string& path, ModelConfig* config_out, Device dev,
                    std::optional<DiffusersScheduler>* scheduler_out) {
  ModelConfig cfg;
  AnyModel m;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec) && !is_diffusers_folder(path)) {
    // A train_ddpm run folder: its weights file.
    const std::string w = path + "/model.safetensors";
    DD_CHECK(std::filesystem::exists(w), path, ": a folder that is neither a diffusers UNet2DModel/pipeline folder "
             "(config.json of a UNet2DModel, or unet/config.json) nor a train_ddpm run (model.safetensors)");
    return load_model(w, config_out, dev, scheduler_out);
  }
  if (is_diffusers_folder(path)) {
    DiffusersFolder f = read_diffusers_folder(path);
    cfg.unet2d = f.config;
    cfg.diffusion.image_size = f.config.sample_size;
    cfg.diffusion.timesteps = f.scheduler ? f.scheduler->num_train_timesteps : 1000;
    cfg.diffusion.beta_schedule = "linear";
    cfg.diffusion.objective = "pred_noise";
    cfg.diffusion.loss_type = "l2";
    Generator gen(0);
    m = make_model(cfg, gen);
    m.params->load_state_dict(f.tensors, f.unet_dir + "/diffusion_pytorch_model.safetensors", true);
    if (scheduler_out) *scheduler_out = f.scheduler;
  } else {
    WeightsFile w = load_weights(path);
    cfg = w.config;
    Generator gen(0);
    m = make_model(cfg, gen);
    m.params->load_state_dict(cfg.unet2d ? unet2d_canonical_state_dict(std::move(w.tensors)) : w.tensors, path, true);
    if (scheduler_out) scheduler_out->reset();
  }
  m.params->to(dev);
  if (config_out) *config_out = cfg;
  return m;
}

std::unique_ptr<Unet> load_unet(const std::string& path, ModelConfig* config_out, Device dev) {
  WeightsFile w = load_weights(path);
  DD_CHECK(!w.config.unet2d, path, ": holds a UNet2DModel (family unet2d), not the seed U-Net");
  Generator gen(0);
  auto model = std::make_unique<Unet>(w.config.unet, gen);
  model->params().load_state_dict(w.tensors, path, /*strict=*/true);
  model->params().to(dev);
  if (config_out) *config_out = w.config;
  return model;
}

}  // namespace dd::models
