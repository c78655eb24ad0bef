// sample_ddpm: draws images from a weights file with DDPM's Algorithm 2 (or DDIM, DPM-Solver++, respaced
// DDPM) and writes a PNG grid, optionally a strip of one image's denoising trajectory, and with
// --each-dir every image as its own PNG: a streamed job of any size (50,000 for FID) that continues where
// it stopped when rerun (apps/ddpm/sample_job.h).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "apps/ddpm/interrupt.h"
#include "apps/ddpm/sample_job.h"
#include "apps/ddpm/sampling_model.h"
#include "apps/ddpm/options.h"
#include "apps/ddpm/sampler.h"
#include "apps/ddpm/sampler_flags.h"
#include "apps/report/image_grid.h"
#include "engine/context.h"
#include "engine/error.h"
#include "kernels/conv_autotune.h"

int main(int argc, char** argv) {
  std::string weights, out = "samples.png", each_dir, trajectory;
  int n = 16, nrow = 0, batch = 64, frames = 10;
  uint64_t seed = 0;
  std::string device = "auto", cuda_graphs = "auto", precision = "fp32";
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
  app.add_option("--each-dir", each_dir,
                 "write every image as its own PNG into this folder, batch by batch; rerunning the same command "
                 "continues an interrupted job (the grid is written only for --n <= 1024 drawn in one go)");
  app.add_option("--trajectory", trajectory, "also write a strip of image 0's denoising trajectory to this PNG");
  app.add_option("--frames", frames, "frames in the trajectory strip")->capture_default_str();
  app.add_option("--device", device, "cpu, cuda or auto (cuda when a device is present)")->capture_default_str();
  app.add_option("--cuda-graphs", cuda_graphs,
                 "on, off or auto: replay each denoising step from one CUDA graph (auto = on for --device cuda)")
      ->capture_default_str();
  app.add_option("--precision", precision,
                 "fp32, tf32 or bf16: how convolutions, attention and GEMMs round their operands (fp32 "
                 "accumulation always; under bf16 the activations only convolutions read are stored in bf16; "
                 "see README 'Precision')")
      ->capture_default_str();
  bool conv_autotune = false;
  app.add_flag("--conv-autotune", conv_autotune,
               "time every tile of the tensor-core convolutions (tf32, bf16 on CUDA) per shape on the first step "
               "and run the fastest, as cudnn.benchmark (README 'Precision')");
  flags.add_to(app);
  CLI11_PARSE(app, argc, argv);
  try {
    dd::current_context().set_precision(dd::parse_precision(precision));
    dd::kernels::set_conv_autotune(conv_autotune);
    const dd::Device dev = dd::resolve_device(device);
    const bool graphs = dd::ddpm::resolve_cuda_graphs(cuda_graphs, dev);
    DD_CHECK(n > 0, "--n must be positive, got ", n);
    DD_CHECK(frames >= 2, "--frames must be at least 2, got ", frames);
    // A weights file of ours, a run folder, or a diffusers folder (flat or a pipeline's, with unet/ and
    // scheduler/): then its scheduler_config.json gives the schedule and, unless a flag says otherwise,
    // the DDPMPipeline's sampling (every step, its variance_type, clip_sample and timestep_spacing).
    dd::ddpm::SamplingModel m = dd::ddpm::open_sampling_model(weights, dev);
    const dd::models::ModelConfig& cfg = m.cfg;
    std::fprintf(stderr, "%s\n", m.describe(weights, dev).c_str());
    dd::ddpm::SampleRequest req;
    req.n = n;
    req.image_size = cfg.diffusion.image_size;
    req.batch_size = batch;
    req.seed = seed;
    req.trajectory_frames = trajectory.empty() ? 0 : frames;
    req.device = dev;
    req.cuda_graphs = graphs;
    dd::ddpm::apply_sampler_flags(flags, m, req);
    dd::ddpm::InterruptGuard interrupt_guard;  // SIGINT/SIGTERM: stop after the current step, write nothing
    bool grid = true;
    dd::ddpm::SampleJob job;  // outlives sample_images, whose on_batch writes through it
    if (!each_dir.empty()) {
      job.dir = each_dir;
      job.n = n;
      job.batch_size = batch;
      job.identity = {{"weights", std::filesystem::absolute(weights).lexically_normal().string()},
                      {"n", n},
                      {"batch_size", batch},
                      {"seed", seed},
                      {"image_size", cfg.diffusion.image_size},
                      {"sampler", flags.to_json()}};
      // Another precision draws other images: a job keeps its own (fp32 jobs of older versions have no key).
      if (precision != "fp32") job.identity["precision"] = precision;
      // Tuned kernels may round GroupNorm's sums in another order: a job keeps to one or the other.
      if (conv_autotune) job.identity["conv_autotune"] = true;
      req.first_batch = job.prepare(stderr);
      if (req.first_batch >= job.batches()) {
        std::fprintf(stderr, "%s: all %d images are already there\n", each_dir.c_str(), n);
        return 0;
      }
      req.n = n - static_cast<int>(req.first_batch) * batch;
      // Images stay in memory only for a grid of a small job drawn in one go.
      grid = req.first_batch == 0 && n <= 1024;
      req.keep_images = grid;
      if (req.first_batch > 0) req.trajectory_frames = 0;
      req.on_batch = [&job](int64_t b, const dd::Tensor& images) { job.write_batch(b, images); };
    }
    const auto result = dd::ddpm::sample_images(*m.model.net, *m.diffusion, req);
    if (conv_autotune) {
      const dd::kernels::ConvAutotuneStats t = dd::kernels::conv_autotune_stats();
      std::fprintf(stderr, "conv autotune: %lld shapes timed in %.1f s, %lld calls answered from the table\n",
                   static_cast<long long>(t.tuned), t.seconds, static_cast<long long>(t.hits));
    }
    if (!each_dir.empty()) std::fprintf(stderr, "wrote %d images into %s\n", n, each_dir.c_str());
    if (grid) {
      if (nrow <= 0) nrow = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
      dd::report::write_image_grid(out, result.images, nrow);
      std::fprintf(stderr, "wrote %s\n", out.c_str());
    }
    if (!trajectory.empty() && !result.trajectory.empty()) {
      const auto& s = result.trajectory[0].shape();
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
    if (each_dir.empty())
      std::fprintf(stderr, "\nsample_ddpm: %s; nothing written\n", e.what());
    else
      std::fprintf(stderr, "\nsample_ddpm: %s; the finished batches are in %s: the same command continues the job\n",
                   e.what(), each_dir.c_str());
    return dd::ddpm::stop_exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sample_ddpm: error: %s\n", e.what());
    return 1;
  }
}
