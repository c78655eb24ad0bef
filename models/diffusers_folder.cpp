#include "models/diffusers_folder.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/durable_file.h"
#include "engine/error.h"
#include "engine/safetensors.h"

namespace dd::models {

namespace fs = std::filesystem;

namespace {
nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  DD_CHECK(in.good(), p.string(), ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    DD_FAIL(p.string(), ": not valid JSON: ", e.what());
  }
}

void write_text_atomic(const fs::path& p, const std::string& text) {
  write_file_durably(p.string(), {{text.data(), text.size()}}, "diffusers folder");
}
}  // namespace

Schedule DiffusersScheduler::schedule() const {
  std::vector<double> betas;
  if (beta_schedule == "linear") {
    betas = linspace(beta_start, beta_end, num_train_timesteps);
  } else {  // scaled_linear
    betas = linspace(std::sqrt(beta_start), std::sqrt(beta_end), num_train_timesteps);
    for (double& b : betas) b = b * b;
  }
  return Schedule::from_betas(rescale_betas_zero_snr ? rescale_zero_terminal_snr(betas) : std::move(betas));
}

nlohmann::json DiffusersScheduler::to_json() const {
  return {{"_class_name", "DDPMScheduler"},
          {"_diffusers_version", "0.31.0"},
          {"num_train_timesteps", num_train_timesteps},
          {"beta_schedule", beta_schedule},
          {"beta_start", beta_start},
          {"beta_end", beta_end},
          {"trained_betas", nullptr},
          {"variance_type", variance_type},
          {"clip_sample", clip_sample},
          {"clip_sample_range", clip_sample_range},
          {"prediction_type", prediction_type},
          {"timestep_spacing", timestep_spacing},
          {"thresholding", thresholding},
          {"dynamic_thresholding_ratio", dynamic_thresholding_ratio},
          {"sample_max_value", sample_max_value},
          {"steps_offset", 0},
          {"rescale_betas_zero_snr", rescale_betas_zero_snr}};
}

DiffusersScheduler DiffusersScheduler::from_json(const nlohmann::json& j, const std::string& source) {
  DD_CHECK(j.is_object(), source, ": expected a JSON object");
  DiffusersScheduler s;
  auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  try {
    if (has("num_train_timesteps")) s.num_train_timesteps = j["num_train_timesteps"].get<int>();
    if (has("beta_schedule")) s.beta_schedule = j["beta_schedule"].get<std::string>();
    if (has("beta_start")) s.beta_start = j["beta_start"].get<double>();
    if (has("beta_end")) s.beta_end = j["beta_end"].get<double>();
    if (has("variance_type")) s.variance_type = j["variance_type"].get<std::string>();
    if (has("clip_sample")) s.clip_sample = j["clip_sample"].get<bool>();
    if (has("clip_sample_range")) s.clip_sample_range = j["clip_sample_range"].get<double>();
    if (has("prediction_type")) s.prediction_type = j["prediction_type"].get<std::string>();
    if (has("timestep_spacing")) s.timestep_spacing = j["timestep_spacing"].get<std::string>();
    if (has("rescale_betas_zero_snr")) s.rescale_betas_zero_snr = j["rescale_betas_zero_snr"].get<bool>();
    if (has("thresholding")) s.thresholding = j["thresholding"].get<bool>();
    if (has("dynamic_thresholding_ratio")) s.dynamic_thresholding_ratio = j["dynamic_thresholding_ratio"].get<double>();
    if (has("sample_max_value")) s.sample_max_value = j["sample_max_value"].get<double>();
  } catch (const nlohmann::json::exception& e) {
    DD_FAIL(source, ": a key has the wrong type: ", e.what());
  }
  DD_CHECK(s.num_train_timesteps >= 1, source, ": num_train_timesteps must be >= 1");
  DD_CHECK(s.beta_schedule == "linear" || s.beta_schedule == "scaled_linear", source, ": beta_schedule '",
           s.beta_schedule, "' is not supported (linear or scaled_linear)");
  DD_CHECK(!has("trained_betas"), source, ": trained_betas is not supported");
  DD_CHECK(s.variance_type == "fixed_small" || s.variance_type == "fixed_large", source, ": variance_type '",
           s.variance_type, "' is not supported (fixed_small or fixed_large)");
  DD_CHECK(s.prediction_type == "epsilon", source, ": prediction_type '", s.prediction_type,
           "' is not supported (epsilon)");
  DD_CHECK(!s.thresholding || (s.dynamic_thresholding_ratio >= 0.0 && s.dynamic_thresholding_ratio <= 1.0 &&
                                s.sample_max_value >= 1.0),
           source, ": dynamic_thresholding_ratio must lie in [0, 1] and sample_max_value be >= 1");
  return s;
}

bool is_diffusers_folder(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return false;
  if (fs::exists(fs::path(path) / "unet" / "config.json")) return true;
  // A flat folder: its config.json must be a UNet2DModel's (a train_ddpm run folder has one too).
  const fs::path c = fs::path(path) / "config.json";
  if (!fs::exists(c)) return false;
  std::ifstream in(c);
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return Unet2DConfig::is_unet2d_json(j);
}

DiffusersFolder read_diffusers_folder(const std::string& path) {
  const fs::path root(path);
  DD_CHECK(fs::is_directory(root), path, ": not a directory");
  DiffusersFolder f;
  fs::path unet = root, sched;
  if (fs::exists(root / "unet" / "config.json")) {
    unet = root / "unet";
    sched = root / "scheduler" / "scheduler_config.json";
  } else {
    DD_CHECK(fs::exists(root / "config.json"), path,
             ": no config.json and no unet/config.json (expected diffusers' UNet2DModel folder or a pipeline folder)");
    sched = root / "scheduler_config.json";
    if (!fs::exists(sched)) sched = root / "scheduler" / "scheduler_config.json";
  }
  f.unet_dir = unet.string();
  f.config = Unet2DConfig::from_json(read_json(unet / "config.json"), (unet / "config.json").string());
  if (fs::exists(sched)) f.scheduler = DiffusersScheduler::from_json(read_json(sched), sched.string());
  const fs::path st = unet / "diffusion_pytorch_model.safetensors";
  if (!fs::exists(st)) {
    const fs::path bin = unet / "diffusion_pytorch_model.bin";
    DD_CHECK(!fs::exists(bin), bin.string(),
             ": PyTorch pickle weights are not read (only .safetensors). Convert them once with:\n  python -c \"import "
             "torch; from safetensors.torch import save_file; save_file(torch.load('",
             bin.string(), "', map_location='cpu'), '", st.string(), "')\"");
    DD_FAIL(unet.string(), ": no diffusion_pytorch_model.safetensors");
  }
  SafeTensorsFile file = load_safetensors(st.string());
  std::map<std::string, Tensor> tensors;
  for (const auto& kv : file.tensors) tensors[kv.first] = kv.second.to_f32();
  f.tensors = unet2d_canonical_state_dict(std::move(tensors));
  return f;
}

std::unique_ptr<Unet2D> load_unet2d(const std::string& path, DiffusersFolder* folder_out, Device dev) {
  DiffusersFolder f = read_diffusers_folder(path);
  Generator gen(0);
  auto model = std::make_unique<Unet2D>(f.config, gen);
  model->params().load_state_dict(f.tensors, f.unet_dir + "/diffusion_pytorch_model.safetensors", true);
  if (dev != Device::CPU) model->params().to(dev);
  if (folder_out) {
    f.tensors.clear();
    *folder_out = std::move(f);
  }
  return model;
}

void write_diffusers_folder(const std::string& dir, const ParamSet& params, const Unet2DConfig& config,
                            const DiffusersScheduler& scheduler) {
  const fs::path root(dir);
  fs::create_directories(root / "unet");
  fs::create_directories(root / "scheduler");
  SafeTensorsFile st;
  for (const auto& kv : params.state_dict()) st.put_f32(kv.first, kv.second);
  st.metadata["format"] = "pt";
  save_safetensors((root / "unet" / "diffusion_pytorch_model.safetensors").string(), st);
  write_text_atomic(root / "unet" / "config.json", config.to_json().dump(2) + "\n");
  write_text_atomic(root / "scheduler" / "scheduler_config.json", scheduler.to_json().dump(2) + "\n");
  const nlohmann::json index = {{"_class_name", "DDPMPipeline"},
                                {"_diffusers_version", "0.31.0"},
                                {"scheduler", {"diffusers", "DDPMScheduler"}},
                                {"unet", {"diffusers", "UNet2DModel"}}};
  write_text_atomic(root / "model_index.json", index.dump(2) + "\n");
}

}  // namespace dd::models
