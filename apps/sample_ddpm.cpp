// sample_ddpm: draws images from a weights file with DDPM's Algorithm 2 and writes a PNG grid
// (optionally every image as its own PNG, and a strip of one image's denoising trajectory).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "apps/ddpm/interrupt.h"
#include "apps/ddpm/options.h"
#include "apps/ddpm/sampler.h"
#include "apps/ddpm/sampler_flags.h"
#include "apps/report/image_grid.h"
#include "engine/error.h"
#include "kernels/loss.h"
#include "models/diffusion.h"
#include "models/weights.h"

int main(int argc, char** argv) {
  std::string weights, out = "samples.png", each_dir, trajectory;
  int n = 16, nrow = 0, batch = 64, frames = 10;
  uint64_t seed = 0;
  std::string device = "auto", cuda_graphs = "auto";
  dd::ddpm::SamplerFlags flags;
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
  flags.add_to(app);
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
                                           cfg.diffusion.timesteps, cfg.diffusion.rescale_zero_terminal_snr),
        dd::kernels::parse_loss_type(cfg.diffusion.loss_type), objective);
    std::fprintf(stderr, "%s: %s, %dx%dx%d images, %d timesteps (%s%s), %lld parameters, device %s\n", weights.c_str(),
                 cfg.unet2d ? "UNet2DModel" : "U-Net", cfg.diffusion.image_size, cfg.diffusion.image_size,
                 cfg.channels(), cfg.diffusion.timesteps,
                 sched ? ("scheduler_config.json: " + sched->beta_schedule + " betas, " + sched->variance_type +
                          (sched->clip_sample ? ", clip_sample" : ""))
                             .c_str()
                       : (cfg.diffusion.beta_schedule + " schedule").c_str(),
                 diffusion.schedule().zero_terminal_snr() ? ", zero terminal SNR" : "",
                 static_cast<long long>(model.params->numel()), dd::device_name(dev));
    dd::ddpm::SampleRequest req;
    req.n = n;
    req.image_size = cfg.diffusion.image_size;
    req.batch_size = batch;
    req.seed = seed;
    req.trajectory_frames = trajectory.empty() ? 0 : frames;
    req.device = dev;
    req.cuda_graphs = graphs;
    flags.apply(req, cfg.diffusion.timesteps);
    if (sched) {
      // DDPMPipeline's sampling unless a flag says otherwise: the scheduler's variance type,
      // clipping (and its range), timestep spacing and thresholding.
      if (app.get_option("--variance-type")->count() == 0)
        req.ddpm.variance_type = dd::models::parse_variance_type(sched->variance_type);
      if (!flags.clip_sample && !flags.no_clip) req.ddpm.clip_sample = sched->clip_sample;
      req.ddpm.clip_sample_range = sched->clip_sample_range;
      if (flags.spacing.empty()) req.ddpm.spacing = dd::models::parse_timestep_spacing(sched->timestep_spacing);
      if (!flags.thresholding && sched->thresholding) {
        req.ddpm.thresholding.enabled = true;
        req.ddpm.thresholding.ratio = sched->dynamic_thresholding_ratio;
        req.ddpm.thresholding.max_value = sched->sample_max_value;
      }
    }
    if (flags.no_clip) req.ddpm.clip_sample = false;
    dd::ddpm::InterruptGuard interrupt_guard;  // SIGINT/SIGTERM: stop after the current step, write nothing
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
  } catch (const dd::ddpm::Interrupted& e) {
    std::fprintf(stderr, "\nsample_ddpm: %s; nothing written\n", e.what());
    return dd::ddpm::stop_exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sample_ddpm: error: %s\n", e.what());
    return 1;
  }
}
