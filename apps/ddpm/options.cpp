#include "apps/ddpm/options.h"

#include <set>

#include "engine/cuda_graph.h"
#include "engine/error.h"

namespace dd::ddpm {

nlohmann::json TrainOptions::to_json() const {
  return {{"data", data},
          {"image_size", image_size},
          {"channels", channels},
          {"random_flip", random_flip},
          {"model", model},
          {"unet2d_config", unet2d_config},
          {"dropout", dropout},
          {"dim", dim},
          {"dim_mults", dim_mults},
          {"resnet_block_groups", resnet_block_groups},
          {"self_condition", self_condition},
          {"timesteps", timesteps},
          {"beta_schedule", beta_schedule},
          {"rescale_zero_terminal_snr", rescale_zero_terminal_snr},
          {"loss", loss},
          {"objective", objective},
          {"min_snr_gamma", min_snr_gamma},
          {"offset_noise", offset_noise},
          {"steps", steps},
          {"batch_size", batch_size},
          {"grad_accum", grad_accum},
          {"lr", lr},
          {"grad_clip", grad_clip},
          {"weight_decay", weight_decay},
          {"lr_warmup_steps", lr_warmup_steps},
          {"lr_schedule", lr_schedule},
          {"ema_decay", ema_decay},
          {"ema_every", ema_every},
          {"ema_start", ema_start},
          {"out", out},
          {"sample_every", sample_every},
          {"save_every", save_every},
          {"keep_checkpoints", keep_checkpoints},
          {"n_samples", n_samples},
          {"sample_sampler", sample_sampler},
          {"sample_steps", sample_steps},
          {"sample_eta", sample_eta},
          {"fid_every", fid_every},
          {"fid_samples", fid_samples},
          {"fid_ref", fid_ref},
          {"fid_inception", fid_inception},
          {"fid_batch", fid_batch},
          {"log_every", log_every},
          {"seed", seed},
          {"device", device},
          {"threads", threads},
          {"cuda_graphs", cuda_graphs},
          {"precision", precision},
          {"conv_autotune", conv_autotune}};
}

TrainOptions TrainOptions::from_json(const nlohmann::json& j) {
  TrainOptions o;
  try {
    // Absent keys keep their defaults, so checkpoints of older versions still load.
    auto get = [&](const char* key, auto& dst) {
      if (j.contains(key)) j.at(key).get_to(dst);
    };
    get("data", o.data);
    get("image_size", o.image_size);
    get("channels", o.channels);
    get("random_flip", o.random_flip);
    get("model", o.model);
    if (j.contains("unet2d_config")) o.unet2d_config = j.at("unet2d_config");
    get("dropout", o.dropout);
    get("dim", o.dim);
    get("dim_mults", o.dim_mults);
    get("resnet_block_groups", o.resnet_block_groups);
    get("self_condition", o.self_condition);
    get("timesteps", o.timesteps);
    get("beta_schedule", o.beta_schedule);
    get("rescale_zero_terminal_snr", o.rescale_zero_terminal_snr);
    get("loss", o.loss);
    get("objective", o.objective);
    get("min_snr_gamma", o.min_snr_gamma);
    get("offset_noise", o.offset_noise);
    get("steps", o.steps);
    get("batch_size", o.batch_size);
    get("grad_accum", o.grad_accum);
    get("lr", o.lr);
    get("grad_clip", o.grad_clip);
    get("weight_decay", o.weight_decay);
    get("lr_warmup_steps", o.lr_warmup_steps);
    get("lr_schedule", o.lr_schedule);
    get("ema_decay", o.ema_decay);
    get("ema_every", o.ema_every);
    get("ema_start", o.ema_start);
    get("out", o.out);
    get("sample_every", o.sample_every);
    get("save_every", o.save_every);
    get("keep_checkpoints", o.keep_checkpoints);
    get("n_samples", o.n_samples);
    get("sample_sampler", o.sample_sampler);
    get("sample_steps", o.sample_steps);
    get("sample_eta", o.sample_eta);
    get("fid_every", o.fid_every);
    get("fid_samples", o.fid_samples);
    get("fid_ref", o.fid_ref);
    get("fid_inception", o.fid_inception);
    get("fid_batch", o.fid_batch);
    get("log_every", o.log_every);
    get("seed", o.seed);
    get("device", o.device);
    get("threads", o.threads);
    get("cuda_graphs", o.cuda_graphs);
    get("precision", o.precision);
    get("conv_autotune", o.conv_autotune);
  } catch (const nlohmann::json::exception& e) {
    DD_FAIL("training options: ", e.what());
  }
  return o;
}

void apply_ddpm_cifar10_preset(TrainOptions& o, const std::vector<std::string>& explicit_keys) {
  const std::set<std::string> given(explicit_keys.begin(), explicit_keys.end());
  auto set = [&](const char* key, auto& dst, auto value) {
    if (!given.count(key)) dst = value;
  };
  set("lr", o.lr, 2e-4);
  set("lr_warmup_steps", o.lr_warmup_steps, int64_t{5000});
  set("lr_schedule", o.lr_schedule, std::string("constant"));
  set("grad_clip", o.grad_clip, 1.0);
  set("ema_decay", o.ema_decay, 0.9999);
  set("ema_every", o.ema_every, 1);
  set("ema_start", o.ema_start, int64_t{0});
  set("batch_size", o.batch_size, 128);
  set("random_flip", o.random_flip, true);
  set("dropout", o.dropout, 0.1);
  set("steps", o.steps, int64_t{800000});
  set("timesteps", o.timesteps, 1000);
  set("beta_schedule", o.beta_schedule, std::string("linear"));
  set("loss", o.loss, std::string("l2"));
  set("objective", o.objective, std::string("pred_noise"));
}

bool resumable_override(const std::string& key) {
  static const std::set<std::string> ok{"steps", "out", "sample_every", "save_every", "keep_checkpoints", "n_samples",
                                        "sample_sampler", "sample_steps", "sample_eta", "fid_every", "fid_samples", "fid_ref",
                                        "fid_inception", "fid_batch",
                                        "log_every", "device", "threads", "cuda_graphs",
                                        "precision", "conv_autotune"};
  return ok.count(key) != 0;
}

bool resolve_cuda_graphs(const std::string& value, Device dev) {
  DD_CHECK(value == "on" || value == "off" || value == "auto", "--cuda-graphs must be on, off or auto, got '",
           value, "'");
  if (value == "auto") return dev == Device::CUDA && cuda_graphs_supported();
  if (value == "off") return false;
  DD_CHECK(dev == Device::CUDA, "--cuda-graphs on needs --device cuda (the run is on ", device_name(dev), ")");
  DD_CHECK(cuda_graphs_supported(), "--cuda-graphs on: this build has no CUDA backend");
  return true;
}

}  // namespace dd::ddpm
