// sample_ddpm: draws images from a weights file with DDPM's Algorithm 2 and writes a PNG grid
// (optionally every image as its own PNG, and a strip of one image's denoising trajectory).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "apps/ddpm/options.h"
#include "apps/ddpm/sampler.h"
#include "apps/report/image_grid.h"
#include "engine/error.h"
#include "kernels/loss.h"
#include "models/diffusion.h"
#include "models/weights.h"

int main(int argc, char** argv) {
  std::string weights, out = "samples.png", each_dir, trajectory;
  int n = 16, nrow = 0, batch = 64, frames = 10;
  uint64_t seed = 0;
  std::string device = "auto", cuda_graphs = "auto", sampler = "ddpm", spacing;
  int steps = 0, order = 2;
  std::string variance_type = "fixed_small";
  bool clip_sample = false;
  double eta = 0.0;
  bool no_clip = false;
  CLI::App app{"Sample images from a trained DDPM (a safetensors file from train_ddpm or a PyTorch export)."};
  app.add_option("--weights", weights,
                 "model.safetensors (train_ddpm's) or a diffusers folder (e.g. google/ddpm-cifar10-32: config.json + "
                 "diffusion_pytorch_model.safetensors [+ scheduler_config.json], or a pipeline folder)")
      ->required();
  app.add_option("--n", n, "number of images")->capture_default_str();
  app.add_option("--out", out, "PNG grid to write")->capture_default_str();
  app.add_option("--nrow", nrow, "images per grid row (0 = about square)")->capture_default_str();
  app.add_option("--seed", seed, "noise seed")->capture_default_str();
  app.add_option("--batch-size", batch, "images denoised at once")->capture_default_str();
  app.add_option("--each-dir", each_dir, "also write every image as its own PNG into this folder");
  app.add_option("--trajectory", trajectory, "also write a strip of image 0's denoising trajectory to this PNG");
  app.add_option("--frames", frames, "frames in the trajectory strip")->capture_default_str();
  app.add_option("--device", device, "cpu, cuda or auto (cuda when a device is present)")->capture_default_str();
  app.add_option("--cuda-graphs", cuda_graphs,
                 "on, off or auto: replay each denoising step from one CUDA graph (auto = on for --device cuda)")
      ->capture_default_str();
  app.add_option("--sampler", sampler,
                 "ddpm (Algorithm 2 over all T steps; diffusers' DDPMScheduler), ddim (--steps steps; DDIMScheduler) "
                 "or dpmpp (DPM-Solver++ multistep, --steps steps, e.g. 20; DPMSolverMultistepScheduler)")
      ->capture_default_str();
  app.add_option("--steps", steps,
                 "denoising steps out of T (num_inference_steps); 0 = the sampler's default: ddpm all T, ddim 50, "
                 "dpmpp 20 (at most T)")
      ->capture_default_str();
  app.add_option("--variance-type", variance_type, "ddpm: fixed_small (posterior, default) or fixed_large (beta_t)")
      ->capture_default_str();
  app.add_flag("--clip-sample", clip_sample, "ddpm: clamp the x0 estimate to [-1, 1] (diffusers' clip_sample)");
  app.add_option("--order", order, "dpmpp: solver order 1, 2 (2M, the default) or 3")->capture_default_str();
  app.add_option("--eta", eta, "DDIM: eta, 0 = deterministic, 1 = DDPM-like noise")->capture_default_str();
  app.add_option("--timestep-spacing", spacing,
                 "ddim, dpmpp: leading, linspace or trailing (diffusers' timestep_spacing; default leading for "
                 "ddim, linspace for dpmpp, as diffusers)");
  app.add_flag("--no-clip-sample", no_clip, "DDIM, and DDPM from a diffusers folder whose scheduler clips: do not clamp the x0 estimate to [-1, 1] (clip_sample=False)");
  CLI11_PARSE(app, argc, argv);
  try {
    const dd::Device dev = dd::resolve_device(device);
    const bool graphs = dd::ddpm::resolve_cuda_graphs(cuda_graphs, dev);
    DD_CHECK(n > 0, "--n must be positive, got ", n);
    DD_CHECK(frames >= 2, "--frames must be at least 2, got ", frames);
    dd::models::ModelConfig cfg;
    // A weights file of ours, or a diffusers folder (flat or a pipeline's, with unet/ and scheduler/):
    // then its scheduler_config.json gives the schedule and, unless a flag says otherwise, the
    // DDPMPipeline's sampling (every step, its variance_type, clip_sample and timestep_spacing).
    std::optional<dd::models::DiffusersScheduler> sched;
    auto model = dd::models::load_model(weights, &cfg, dev, &sched);
    const auto objective = dd::models::parse_objective(cfg.diffusion.objective);
    const dd::models::GaussianDiffusion diffusion(
        sched ? sched->schedule()
              : dd::models::Schedule::make(dd::models::parse_beta_schedule(cfg.diffusion.beta_schedule),
                                           cfg.diffusion.timesteps),
        dd::kernels::parse_loss_type(cfg.diffusion.loss_type), objective);
    if (sched) {
      if (app.get_option("--variance-type")->count() == 0) variance_type = sched->variance_type;
      if (!clip_sample && !no_clip) clip_sample = sched->clip_sample;
    }
    if (no_clip) clip_sample = false;
    std::fprintf(stderr, "%s: %s, %dx%dx%d images, %d timesteps (%s), %lld parameters, device %s\n", weights.c_str(),
                 cfg.unet2d ? "UNet2DModel" : "U-Net", cfg.diffusion.image_size, cfg.diffusion.image_size,
                 cfg.channels(), cfg.diffusion.timesteps,
                 sched ? ("scheduler_config.json: " + sched->beta_schedule + " betas, " + sched->variance_type +
                          (sched->clip_sample ? ", clip_sample" : ""))
                             .c_str()
                       : (cfg.diffusion.beta_schedule + " schedule").c_str(),
                 static_cast<long long>(model.params->numel()), dd::device_name(dev));
    dd::ddpm::SampleRequest req;
    req.n = n;
    req.image_size = cfg.diffusion.image_size;
    req.batch_size = batch;
    req.seed = seed;
    req.trajectory_frames = trajectory.empty() ? 0 : frames;
    req.device = dev;
    req.cuda_graphs = graphs;
    DD_CHECK(sampler == "ddpm" || sampler == "ddim" || sampler == "dpmpp", "--sampler must be ddpm, ddim or dpmpp, got '",
             sampler, "'");
    req.sampler = sampler;
    DD_CHECK(steps >= 0, "--steps must be >= 0, got ", steps);
    const int T = cfg.diffusion.timesteps;
    req.ddim.steps = steps ? steps : std::min(50, T);
    req.ddim.eta = eta;
    if (!spacing.empty()) req.ddim.spacing = dd::models::parse_timestep_spacing(spacing);
    req.ddim.clip_sample = !no_clip;
    req.dpm.steps = steps ? steps : std::min(20, std::max(1, T / 2));
    req.ddpm.steps = steps;
    req.ddpm.variance_type = dd::models::parse_variance_type(variance_type);
    req.ddpm.clip_sample = clip_sample;
    if (sched) req.ddpm.clip_sample_range = sched->clip_sample_range;
    if (!spacing.empty())
      req.ddpm.spacing = dd::models::parse_timestep_spacing(spacing);
    else if (sched)
      req.ddpm.spacing = dd::models::parse_timestep_spacing(sched->timestep_spacing);
    req.dpm.order = order;
    if (!spacing.empty()) req.dpm.spacing = dd::models::parse_timestep_spacing(spacing);
    DD_CHECK(order >= 1 && order <= 3, "--order must be 1, 2 or 3, got ", order);
    DD_CHECK(steps <= T, "--steps ", steps, " must lie in [1, ", T, "] (the model's timesteps; 0 = the default)");
    const auto result = dd::ddpm::sample_images(*model.net, diffusion, req);
    if (nrow <= 0) nrow = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
    dd::report::write_image_grid(out, result.images, nrow);
    std::fprintf(stderr, "wrote %s\n", out.c_str());
    if (!each_dir.empty()) {
      std::filesystem::create_directories(each_dir);
      const auto& s = result.images.shape();
      for (int i = 0; i < n; ++i) {
        dd::Tensor one = dd::Tensor::empty({1, s[1], s[2], s[3]});
        const int64_t sz = one.numel();
        std::copy(result.images.data() + i * sz, result.images.data() + (i + 1) * sz, one.data());
        char name[32];
        std::snprintf(name, sizeof name, "/%05d.png", i);
        dd::report::write_image_grid(each_dir + name, one, 1, 0);
      }
      std::fprintf(stderr, "wrote %d images into %s\n", n, each_dir.c_str());
    }
    if (!trajectory.empty()) {
      const auto& s = result.images.shape();
      const int64_t f = static_cast<int64_t>(result.trajectory.size());
      dd::Tensor strip = dd::Tensor::empty({f, s[1], s[2], s[3]});
      for (int64_t i = 0; i < f; ++i)
        std::copy(result.trajectory[i].data(), result.trajectory[i].data() + result.trajectory[i].numel(),
                  strip.data() + i * result.trajectory[i].numel());
      dd::report::write_image_grid(trajectory, strip, static_cast<int>(f));
      std::fprintf(stderr, "wrote %s (%lld frames, noise to image)\n", trajectory.c_str(), static_cast<long long>(f));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sample_ddpm: error: %s\n", e.what());
    return 1;
  }
}
