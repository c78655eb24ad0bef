// Our whole training step, as apps/ddpm/trainer.cpp runs it (host batch copied to the device,
// p_losses with the huber loss, backward, clip_grad_norm 1.0, Adam lr 1e-3, EMA 0.995 every 10
// steps after 100), for a preset: img/s, ms/step, peak memory. --sample: Algorithm-2 sampling.
//   bench_train_step --preset cifar|fmnist [--steps N] [--json FILE]
//   bench_train_step --sample [--images 256] [--timesteps 1000] [--json FILE]
// Presets: cifar = dim 64, dim_mults 1,2,4,8, 3 channels, 32x32, batch 128 (35.7M parameters);
//          fmnist = dim 32, dim_mults 1,2,4, 1 channel, 28x28, batch 64.
// Peak memory: the caching allocator's peak bytes in use on the GPU; peak RSS on the CPU (so run
// one preset per process).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "apps/ddpm/loss_ring.h"
#include "autograd/adam.h"
#include "bench/bench_common.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "kernels/elementwise.h"
#include "models/diffusion.h"
#include "models/ema.h"
#include "models/unet.h"

using namespace dd;
using namespace dd::bench;
using clk = std::chrono::steady_clock;

namespace {
struct Preset {
  std::string name;
  models::UnetConfig cfg;
  int image = 0, batch = 0;
};

Preset preset(const std::string& name) {
  Preset p;
  p.name = name;
  if (name == "cifar") {
    p.cfg.dim = 64;
    p.cfg.dim_mults = {1, 2, 4, 8};
    p.cfg.channels = 3;
    p.image = 32;
    p.batch = 128;
  } else if (name == "fmnist") {
    p.cfg.dim = 32;
    p.cfg.dim_mults = {1, 2, 4};
    p.cfg.channels = 1;
    p.image = 28;
    p.batch = 64;
  } else {
    DD_FAIL("--preset must be cifar or fmnist, got '", name, "'");
  }
  return p;
}

void sync(Device d) {
  if (d == Device::CUDA) cuda_mem::synchronize();
}

double peak_mib(Device d) {
  return d == Device::CUDA ? double(cuda_mem::stats().peak_in_use) / (1 << 20) : peak_rss_mib();
}

void append_json(const std::string& path, const std::string& line) {
  if (path.empty()) return;
  std::ofstream f(path, std::ios::app);
  f << line << "\n";
}
}  // namespace

int main(int argc, char** argv) try {
  Args a = parse_args(argc, argv);
  require_device(a);
  const Device dev = a.device();
  const std::string json = a.get("--json", "");
  const bool sampling = std::find(a.rest.begin(), a.rest.end(), "--sample") != a.rest.end();
  const Preset p = preset(sampling ? "cifar" : a.get("--preset", "cifar"));

  Generator gen(0);
  models::Unet model(p.cfg, gen);
  model.params().to(dev);
  const double n_params = double(model.params().numel());

  if (sampling) {
    const int n = std::stoi(a.get("--images", a.cpu ? "4" : "256"));
    const int T = std::stoi(a.get("--timesteps", a.cpu ? "10" : "1000"));
    const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, T));
    print_header(str_cat("Sampling, CIFAR-10 preset: ", n, " images x ", T, " DDPM steps (one batch)"), a);
    ag::NoGrad no_grad;
    {  // one warm-up step: first-use costs (allocator, cuBLAS handle) stay out of the figure
      const models::GaussianDiffusion warm(models::Schedule::make(models::BetaSchedule::Linear, 1));
      warm.p_sample_loop(model, {n, p.image, p.image, 3}, gen, {}, dev);
      sync(dev);
    }
    if (dev == Device::CUDA) cuda_mem::reset_peak();
    const auto t0 = clk::now();
    Tensor x = diffusion.p_sample_loop(model, {n, p.image, p.image, 3}, gen, {}, dev);
    sync(dev);
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    DD_CHECK(std::isfinite(kernels::sum(x)), "sampling produced non-finite images");
    const double ms_step = 1e3 * s / T;
    table_header({"sampler", "images x steps", "total s", "ms / step", "image-steps / s", "peak MiB",
                  "256 x 1000 at this rate (s)"});
    table_row({"ours fp32", str_cat(n, " x ", T), fmt(s), fmt(ms_step), fmt(n * T / s, 4), fmt(peak_mib(dev), 4),
               fmt(256.0 * 1000.0 / (n * T / s), 4)});
    append_json(json, str_cat("{\"kind\": \"sample\", \"device\": \"", a.cpu ? "cpu" : "cuda", "\", \"images\": ", n,
                              ", \"timesteps\": ", T, ", \"seconds\": ", s, ", \"peak_mib\": ", peak_mib(dev), "}"));
    return 0;
  }

  const int batch = a.batch_or(p.batch, p.batch);
  const int warm = a.warmup_or(3, 1);
  const int steps = std::stoi(a.get("--steps", a.cpu ? "3" : "20"));
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 1000),
                                            kernels::LossType::Huber);
  const std::vector<ag::Var> params = model.params().vars();
  kernels::AdamHyper hyper;
  hyper.lr = 1e-3f;
  // As the trainer: parameters, gradients, moments and the EMA shadow in flat arenas.
  model.params().zero_grad();
  const Tensor param_arena = model.params().param_arena(), grad_arena = model.params().grad_arena();
  ag::Adam adam(params, hyper, param_arena, grad_arena);
  models::Ema ema(params, models::EmaConfig{}, param_arena);
  // A few host batches in [-1, 1]-ish, cycled: the loader's output, without the disk.
  std::vector<Tensor> host_batches;
  for (int i = 0; i < 4; ++i) host_batches.push_back(random_tensor({batch, p.image, p.image, p.cfg.channels}, Device::CPU, 40 + i, 0.5f));

  int64_t step = 0;
  double last_loss = 0;
  // As the trainer: the clip factor stays on the device and the losses are read back in batches
  // (here once per timed run), so nothing in a step waits for the GPU.
  ddpm::LossRing losses(dev, 1024);
  auto check_losses = [&] {
    const std::vector<float> lvs = losses.drain();
    for (std::size_t i = 0; i < lvs.size(); ++i)
      DD_CHECK(std::isfinite(lvs[i]), "the loss is not finite at step ", step - int64_t(lvs.size()) + int64_t(i) + 1);
    if (!lvs.empty()) last_loss = lvs.back();
  };
  auto train_step = [&] {
    Tensor x0 = host_batches[step % host_batches.size()].to(dev);
    ag::Var loss = diffusion.p_losses(model, x0, gen);
    ag::Tape::current().backward(loss);
    adam.step(ag::clip_grad_norm_factor(params, 1.0, grad_arena));
    model.params().zero_grad();
    ag::Tape::current().clear();
    ema.update(step + 1);
    losses.push(loss.value());
    ++step;
  };
  for (int i = 0; i < warm; ++i) train_step();
  check_losses();
  sync(dev);
  if (dev == Device::CUDA) cuda_mem::reset_peak();
  std::vector<double> per_step;
  const cuda_mem::Stats before = cuda_mem::stats();
  const auto t0 = clk::now();
  for (int i = 0; i < steps; ++i) {
    const auto ts = clk::now();
    train_step();  // on the GPU: the host's enqueue time (the queue's depth bounds how far it runs ahead)
    per_step.push_back(std::chrono::duration<double, std::milli>(clk::now() - ts).count());
  }
  const cuda_mem::Stats after = cuda_mem::stats();
  check_losses();
  sync(dev);
  const double total_ms = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
  const double ms = total_ms / steps;
  print_header(str_cat("Training step, ", p.name == "cifar" ? "CIFAR-10" : "Fashion-MNIST", " preset (ours, fp32)"), a);
  std::printf("%sM parameters, batch %d, %dx%dx%d; %d warm-up steps, %d timed; loss at the last step %s.\n\n",
              fmt(n_params / 1e6, 4).c_str(), batch, p.image, p.image, p.cfg.channels, warm, steps,
              fmt(last_loss, 4).c_str());
  table_header({"trainer", "ms / step (mean)", dev == Device::CUDA ? "host ms / step (median)" : "ms / step (median)",
                "img/s", "peak MiB", "host syncs / step"});
  table_row({"ours fp32", fmt(ms), fmt(median(per_step)), fmt(batch / (ms * 1e-3), 4), fmt(peak_mib(dev), 4),
             fmt(double(after.host_syncs - before.host_syncs) / steps, 3)});
  append_json(json, str_cat("{\"kind\": \"train\", \"preset\": \"", p.name, "\", \"device\": \"", a.cpu ? "cpu" : "cuda",
                            "\", \"batch\": ", batch, ", \"ms_step\": ", ms, ", \"peak_mib\": ", peak_mib(dev),
                            ", \"steps\": ", steps, "}"));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_train_step: %s\n", e.what());
  return 2;
}
