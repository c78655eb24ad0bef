// ddpm_tool: the PyTorch boundary. `forward` runs the U-Net on tensors from a safetensors file
// (NCHW, as PyTorch holds them); `info` prints a weights file's config and parameter count;
// `schedule` prints the model's noise schedule at the timesteps a sampler would visit; `fid` and
// `fid-stats` score samples as pytorch-fid does (apps/ddpm/fid_commands.h).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <vector>

#include "apps/ddpm/fid_commands.h"
#include "apps/ddpm/sampler.h"
#include "apps/ddpm/sampler_flags.h"
#include "autograd/var.h"
#include "engine/context.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "kernels/conv_autotune.h"
#include "models/dpm_solver.h"
#include "models/schedule.h"
#include "models/timestep_spacing.h"
#include "models/torch_layout.h"
#include "models/weights.h"

namespace {

using namespace dd;

int run_forward(const std::string& weights, const std::string& input, const std::string& output,
                const std::string& device, const std::string& precision) {
  current_context().set_precision(parse_precision(precision));
  const Device dev = resolve_device(device);
  models::AnyModel model = models::load_model(weights, nullptr, dev);
  SafeTensorsFile in = load_safetensors(input);
  const Tensor x = in.at("x").to_f32();
  DD_CHECK(x.ndim() == 4, input, ": 'x' must be [B, C, H, W], got ", shape_str(x.shape()));
  const std::vector<int64_t> t = in.at("t").to_i64();
  DD_CHECK(static_cast<int64_t>(t.size()) == x.dim(0) && in.at("t").shape.size() == 1, input,
           ": 't' must be [B] = [", x.dim(0), "], got ", shape_str(in.at("t").shape));
  std::vector<float> tf(t.begin(), t.end());
  ag::Var sc;
  if (in.contains("x_self_cond")) {
    const Tensor s = in.at("x_self_cond").to_f32();
    DD_CHECK(s.shape() == x.shape(), input, ": 'x_self_cond' must have x's shape ", shape_str(x.shape()), ", got ",
             shape_str(s.shape()));
    sc = ag::Var(models::nchw_to_nhwc(s).to(dev));
  }
  ag::NoGrad no_grad;
  ag::Var y = model.net->forward(ag::Var(models::nchw_to_nhwc(x).to(dev)), Tensor::from_vector({x.dim(0)}, tf, dev), sc);
  SafeTensorsFile out;
  out.put_f32("model_output", models::nhwc_to_nchw(y.value()));
  save_safetensors(output, out);
  std::printf("wrote %s: model_output %s (device %s)\n", output.c_str(), shape_str(out.at("model_output").shape).c_str(),
              device_name(dev));
  return 0;
}

int run_info(const std::string& weights) {
  models::ModelConfig cfg;
  std::optional<models::DiffusersScheduler> sched;
  models::AnyModel model = models::load_model(weights, &cfg, Device::CPU, &sched);
  std::printf("%s\nfamily: %s\nconfig: %s\n", weights.c_str(), cfg.unet2d ? "unet2d (diffusers' UNet2DModel)" : "unet",
              cfg.to_json().dump(2).c_str());
  if (sched) std::printf("scheduler: %s\n", sched->to_json().dump(2).c_str());
  std::printf("parameters: %lld in %zu tensors\n", static_cast<long long>(model.params->numel()),
              model.params->all().size());
  return 0;
}

// A run folder (its model.safetensors: the EMA weights when EMA is on) or a weights file, as a
// diffusers DDPMPipeline folder.
int run_export(const std::string& run, const std::string& out, const std::string& variance_type, bool clip) {
  std::string path = run;
  if (std::filesystem::is_directory(run) && !models::is_diffusers_folder(run)) path = run + "/model.safetensors";
  models::ModelConfig cfg;
  models::AnyModel model = models::load_model(path, &cfg);
  DD_CHECK(cfg.unet2d, path, ": the seed U-Net (family unet) has no diffusers counterpart; export-diffusers takes a ",
           "UNet2DModel run (train_ddpm --model ddpm-cifar10 or --model-config)");
  DD_CHECK(cfg.diffusion.objective == "pred_noise", path, ": objective ", cfg.diffusion.objective,
           " is not exported (DDPMScheduler's prediction_type epsilon needs pred_noise)");
  models::DiffusersScheduler s;
  s.num_train_timesteps = cfg.diffusion.timesteps;
  DD_CHECK(cfg.diffusion.beta_schedule == "linear" || cfg.diffusion.beta_schedule == "quadratic", path,
           ": beta schedule ", cfg.diffusion.beta_schedule,
           " has no DDPMScheduler counterpart (linear -> linear, quadratic -> scaled_linear)");
  s.beta_schedule = cfg.diffusion.beta_schedule == "linear" ? "linear" : "scaled_linear";
  s.variance_type = variance_type;
  s.clip_sample = clip;
  models::DiffusersScheduler::from_json(s.to_json(), "--variance-type");  // validates
  models::Unet2DConfig u = *cfg.unet2d;
  u.sample_size = cfg.diffusion.image_size;
  models::write_diffusers_folder(out, *model.params, u, s);
  std::printf("wrote %s: model_index.json, unet/ (%lld parameters), scheduler/ (%s, %d steps, %s%s)\n", out.c_str(),
              static_cast<long long>(model.params->numel()), s.beta_schedule.c_str(), s.num_train_timesteps,
              s.variance_type.c_str(), s.clip_sample ? ", clip_sample" : "");
  return 0;
}

// abar_t, SNR = abar / (1 - abar) and its log at the timesteps the sampler visits, in order.
int run_schedule(const std::string& weights, const ddpm::SamplerFlags& flags) {
  models::ModelConfig cfg;
  models::load_model(weights, &cfg);
  const int T = cfg.diffusion.timesteps;
  const models::GaussianDiffusion diffusion(models::Schedule::make(
      models::parse_beta_schedule(cfg.diffusion.beta_schedule), T, cfg.diffusion.rescale_zero_terminal_snr));
  const models::Schedule& s = diffusion.schedule();
  ddpm::SampleRequest req;
  flags.apply(req, T);
  const std::vector<int> ts = ddpm::sampler_timesteps(diffusion, req);
  std::printf("%s: %s schedule%s, T = %d; sampler %s, %zu steps\n", weights.c_str(),
              cfg.diffusion.beta_schedule.c_str(), s.zero_terminal_snr() ? " (zero terminal SNR)" : "", T,
              flags.sampler.c_str(), ts.size());
  std::printf("%6s %6s %14s %14s %14s %10s\n", "step", "t", "beta_t", "abar_t", "snr", "log_snr");
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const double a = s.alphas_cumprod[static_cast<std::size_t>(ts[i])];
    std::printf("%6zu %6d %14.8g %14.8g %14.8g %10.4f\n", i, ts[i], s.betas[static_cast<std::size_t>(ts[i])], a,
                a / (1.0 - a), std::log(a / (1.0 - a)));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tools for DDPM weights files (safetensors, PyTorch state_dict names and layouts)."};
  app.require_subcommand(1);
  std::string weights, input, output, info_weights, device = "auto", precision = "fp32";
  auto* fwd = app.add_subcommand("forward", "run the U-Net: IN holds x [B,C,H,W] F32, t [B] I64 (and optionally "
                                            "x_self_cond); OUT gets model_output [B,C,H,W] F32");
  fwd->add_option("--weights", weights, "model.safetensors or a diffusers folder")->required();
  fwd->add_option("--input", input, "IN.safetensors")->required();
  fwd->add_option("--output", output, "OUT.safetensors")->required();
  fwd->add_option("--device", device, "cpu, cuda or auto (cuda when a device is present)")->capture_default_str();
  fwd->add_option("--precision", precision, "fp32, tf32 or bf16 (as sample_ddpm's)")->capture_default_str();
  bool conv_autotune = false;
  fwd->add_flag("--conv-autotune", conv_autotune, "the tensor-core convolutions autotuned per shape (as sample_ddpm's)");
  auto* info = app.add_subcommand("info", "print the config and the parameter count");
  info->add_option("weights", info_weights, "model.safetensors or a diffusers folder")->required();
  std::string sched_weights;
  ddpm::SamplerFlags sched_flags;
  auto* sched = app.add_subcommand("schedule", "print beta, abar, SNR and log-SNR at the timesteps a sampler visits "
                                               "(the sampler flags of sample_ddpm)");
  sched->add_option("weights", sched_weights, "model.safetensors")->required();
  sched_flags.add_to(*sched);
  std::string export_run, export_out, export_variance = "fixed_large";
  bool export_no_clip = false;
  auto* exp = app.add_subcommand("export-diffusers",
                                 "write a UNet2DModel run as a diffusers DDPMPipeline folder (model_index.json, unet/, "
                                 "scheduler/) that UNet2DModel/DDPMPipeline.from_pretrained open");
  exp->add_option("run", export_run, "run folder (its model.safetensors) or weights file")->required();
  exp->add_option("out", export_out, "folder to write")->required();
  exp->add_option("--variance-type", export_variance, "the scheduler's variance_type: fixed_large (the paper's "
                                                      "CIFAR-10 sampling) or fixed_small")
      ->capture_default_str();
  exp->add_flag("--no-clip-sample", export_no_clip, "clip_sample false in the scheduler config");
  ddpm::FidCommand fid_cmd;
  CLI::App* fid = fid_cmd.add_to(app);
  ddpm::FidStatsCommand fid_stats_cmd;
  CLI::App* fid_stats = fid_stats_cmd.add_to(app);
  CLI11_PARSE(app, argc, argv);
  try {
    if (*fid) return fid_cmd.run();
    if (*fid_stats) return fid_stats_cmd.run();
    if (*exp) return run_export(export_run, export_out, export_variance, !export_no_clip);
    kernels::set_conv_autotune(conv_autotune);
    if (*fwd) return run_forward(weights, input, output, device, precision);
    if (*sched) return run_schedule(sched_weights, sched_flags);
    return run_info(info_weights);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ddpm_tool: error: %s\n", e.what());
    return 1;
  }
}
