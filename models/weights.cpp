#include "models/weights.h"

#include "engine/error.h"
#include "engine/safetensors.h"

namespace dd::models {

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j = unet.to_json();
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
    c.unet = UnetConfig::from_json(j);
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
    DD_CHECK(c.diffusion.image_size > 0 && c.diffusion.image_size % c.unet.size_divisor() == 0,
             "image_size ", c.diffusion.image_size, " must be a positive multiple of ", c.unet.size_divisor(),
             " for dim_mults of length ", c.unet.dim_mults.size());
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

std::unique_ptr<Unet> load_unet(const std::string& path, ModelConfig* config_out, Device dev) {
  WeightsFile w = load_weights(path);
  Generator gen(0);
  auto model = std::make_unique<Unet>(w.config.unet, gen);
  model->params().load_state_dict(w.tensors, path, /*strict=*/true);
  model->params().to(dev);
  if (config_out) *config_out = w.config;
  return model;
}

}  // namespace dd::models
