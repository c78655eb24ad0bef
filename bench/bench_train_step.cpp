// Our whole training step, as apps/ddpm/trainer.cpp runs it (host batch copied to the device,
// p_losses with the huber loss, backward, clip_grad_norm 1.0, Adam lr 1e-3, EMA 0.995 every 10
// steps after 100), for a preset: img/s, ms/step, host enqueue ms/step, launches/step, host
// syncs/step, peak memory. On the GPU, eager and replayed from a CUDA graph (--no-graphs: eager
// only), checked bitwise against each other first. --sample: Algorithm-2 sampling, likewise.
//   bench_train_step --preset cifar|fmnist [--steps N] [--json FILE] [--no-graphs] [--precision LIST] [--profile]
//                    [--keep-qkv] [--keep-fp32] [--keep-fp32-h] [--conv-autotune [--autotune-table FILE]]
// --conv-autotune (GPU): the tensor-core convs run the options timed fastest per shape
// (kernels/conv_autotune.h), tuned during the first warm-up step; --autotune-table writes the choices.
// --profile (with --cpu): a table of wall time per kernel entry point over the timed steps, or
// over the sampling chain with --sample (kernels/op_profile.h), the rest of the step as `other`.
// --precision: a comma list of fp32, tf32, bf16 (engine/context.h's policy), each timed in turn
// (default fp32,tf32,bf16 on the GPU, fp32 on the CPU, where the others only add rounding passes).
//   bench_train_step --sample [--images 256] [--timesteps 1000] [--json FILE] [--precision LIST]
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
#include "apps/ddpm/train_step.h"
#include "autograd/adam.h"
#include "autograd/conv2d_keep.h"
#include "bench/bench_common.h"
#include "engine/context.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "kernels/conv_autotune.h"
#include "kernels/elementwise.h"
#include "kernels/op_profile.h"
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

// --profile's table: wall time per kernel entry point over `units` steps, per step; the rest of
// `unit_ms` as `other`.
void print_profile(const std::vector<kernels::op_profile::Entry>& ops, const std::string& what, int units,
                   double unit_ms) {
  std::printf("\n\n**Where the time goes (%s; --profile):** wall time per kernel entry point over %d steps, per "
              "step. An op whose kernel calls another entry point counts in both; `other` is the time outside "
              "every entry point (autograd, allocation, host work).\n\n",
              what.c_str(), units);
  table_header({"op", "calls / step", "ms / step", "% of step"});
  double in_ops = 0;
  for (const kernels::op_profile::Entry& e : ops) {
    in_ops += e.seconds;
    table_row({e.op, fmt(double(e.calls) / units, 4), fmt(1e3 * e.seconds / units),
               fmt(100.0 * 1e3 * e.seconds / units / unit_ms, 3)});
  }
  const double other_ms = unit_ms - 1e3 * in_ops / units;
  table_row({"other", "-", fmt(other_ms), fmt(100.0 * other_ms / unit_ms, 3)});
}

int main(int argc, char** argv) try {
  Args a = parse_args(argc, argv);
  require_device(a);
  const Device dev = a.device();
  const std::string json = a.get("--json", "");
  const bool sampling = std::find(a.rest.begin(), a.rest.end(), "--sample") != a.rest.end();
  const bool no_graphs = std::find(a.rest.begin(), a.rest.end(), "--no-graphs") != a.rest.end();
  // Per-op wall time of the timed steps (CPU only: CUDA launches return before their kernels run).
  const bool profile = std::find(a.rest.begin(), a.rest.end(), "--profile") != a.rest.end();
  DD_CHECK(!profile || a.cpu, "bench_train_step: --profile times the CPU backend's ops; add --cpu");
  // The linear attention keeps its qkv instead of recomputing it (models::set_recompute_qkv): the
  // recomputation's price in time and its saving in memory, side by side.
  if (std::find(a.rest.begin(), a.rest.end(), "--keep-qkv") != a.rest.end()) models::set_recompute_qkv(false);
  // Under bf16 the tape keeps bf16 copies (autograd/conv2d_keep.h): --keep-fp32 keeps fp32 values
  // instead, for the convs' inputs and the Blocks' standardised weights
  // (ag::set_keep_bf16_conv_inputs) and for the GroupNorms' inputs, the Blocks' conv outputs among
  // them (ag::set_keep_bf16_norm_inputs); --keep-fp32-h only for the latter: what each saves, and
  // costs, side by side.
  const bool keep_fp32 = std::find(a.rest.begin(), a.rest.end(), "--keep-fp32") != a.rest.end();
  if (keep_fp32) ag::set_keep_bf16_conv_inputs(false);
  if (keep_fp32 || std::find(a.rest.begin(), a.rest.end(), "--keep-fp32-h") != a.rest.end())
    ag::set_keep_bf16_norm_inputs(false);
  const bool autotune = std::find(a.rest.begin(), a.rest.end(), "--conv-autotune") != a.rest.end();
  DD_CHECK(!autotune || !a.cpu, "bench_train_step: --conv-autotune tunes the tensor-core convolutions of the GPU; "
                                "drop --cpu");
  kernels::set_conv_autotune(autotune);
  const std::string autotune_table = a.get("--autotune-table", "");
  const std::string tuned = autotune ? " tuned" : "";
  auto report_autotune = [&] {
    if (!autotune) return;
    const kernels::ConvAutotuneStats s = kernels::conv_autotune_stats();
    std::printf("\nconv autotune: %lld shapes and directions timed in %.2f s (%lld runs, in the first warm-up step of "
                "each precision), %lld calls answered from the table.\n",
                static_cast<long long>(s.tuned), s.seconds, static_cast<long long>(s.timed_runs),
                static_cast<long long>(s.hits));
    if (autotune_table.empty()) return;
    std::ofstream out(autotune_table);
    out << kernels::conv_autotune_table();
    DD_CHECK(out.good(), "bench_train_step: --autotune-table ", autotune_table, ": write failed");
  };
  const Preset p = preset(sampling ? "cifar" : a.get("--preset", "cifar"));

  Generator gen(0);
  models::Unet model(p.cfg, gen);
  model.params().to(dev);
  const double n_params = double(model.params().numel());

  std::vector<Precision> precisions;
  {
    std::string list = a.get("--precision", a.cpu ? "fp32" : "fp32,tf32,bf16");
    for (size_t at = 0; at <= list.size();) {
      const size_t comma = std::min(list.find(',', at), list.size());
      precisions.push_back(parse_precision(list.substr(at, comma - at), "--precision"));
      at = comma + 1;
    }
  }
  if (sampling) {
    const int n = std::stoi(a.get("--images", a.cpu ? "4" : "256"));
    const int T = std::stoi(a.get("--timesteps", a.cpu ? "10" : "1000"));
    const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, T));
    print_header(str_cat("Sampling, CIFAR-10 preset: ", n, " images x ", T, " DDPM steps (one batch)"), a);
    ag::NoGrad no_grad;
    table_header({"sampler", "images x steps", "total s", "ms / step", "image-steps / s", "peak MiB",
                  "256 x 1000 at this rate (s)", "launches / step"});
    std::vector<std::pair<std::string, std::pair<std::vector<kernels::op_profile::Entry>, double>>> sample_ops;
    for (const Precision prec : precisions) {
      const PrecisionScope scope(prec);
      {  // one warm-up step in each precision: first-use costs (allocator, cuBLAS handle, the convs'
         // autotuning) stay out of the figure
        const models::GaussianDiffusion warm(models::Schedule::make(models::BetaSchedule::Linear, 1));
        warm.p_sample_loop(model, {n, p.image, p.image, 3}, gen, {}, dev);
        sync(dev);
      }
      std::vector<float> first;
      for (bool graphs : {false, true}) {
        if (graphs && (dev != Device::CUDA || no_graphs)) break;
        Generator g(7);
        if (dev == Device::CUDA) cuda_mem::reset_peak();
        const cuda_mem::Stats before = cuda_mem::stats();
        if (profile) {
          kernels::op_profile::reset();
          kernels::op_profile::enable(true);
        }
        const auto t0 = clk::now();
        Tensor x = graphs ? diffusion.p_sample_loop_graphed(model, {n, p.image, p.image, 3}, g, {}, dev)
                          : diffusion.p_sample_loop(model, {n, p.image, p.image, 3}, g, {}, dev);
        sync(dev);
        const double s = std::chrono::duration<double>(clk::now() - t0).count();
        if (profile) {
          kernels::op_profile::enable(false);
          sample_ops.push_back({str_cat("sampling, ", n, " images, ours ", precision_name(prec), ", CPU"),
                                {kernels::op_profile::snapshot(), 1e3 * s / T}});
        }
        const cuda_mem::Stats after = cuda_mem::stats();
        const std::vector<float> xs = x.to_vector();
        for (float v : xs) DD_CHECK(std::isfinite(v), "sampling produced non-finite images in ", precision_name(prec));
        if (graphs)  // validated before it is reported: the graphed chain is the eager chain, bit for bit
          DD_CHECK(xs == first, "the CUDA-graph sampler and the eager sampler disagree in ", precision_name(prec),
                   " (they must be bitwise equal)");
        else
          first = xs;
        const double ms_step = 1e3 * s / T;
        table_row({str_cat("ours ", precision_name(prec), tuned, graphs ? ", CUDA graph" : ", eager"), str_cat(n, " x ", T),
                   fmt(s), fmt(ms_step), fmt(n * T / s, 4), fmt(peak_mib(dev), 4), fmt(256.0 * 1000.0 / (n * T / s), 4),
                   fmt(double(after.launches - before.launches) / T, 4)});
        append_json(json, str_cat("{\"kind\": \"sample\", \"device\": \"", a.cpu ? "cpu" : "cuda", "\", \"images\": ", n,
                                  ", \"timesteps\": ", T, ", \"seconds\": ", s, ", \"cuda_graphs\": ",
                                  graphs ? "true" : "false", ", \"peak_mib\": ", peak_mib(dev), ", \"precision\": \"",
                                  precision_name(prec), "\", \"conv_autotune\": ", autotune ? "true" : "false", "}"));
      }
    }
    for (const auto& [what, ops] : sample_ops) print_profile(ops.first, what, T, ops.second);
    std::printf("\n");
    report_autotune();
    return 0;
  }

  const int batch = a.batch_or(p.batch, p.batch);
  const int warm = a.warmup_or(3, 1);
  const int steps = std::stoi(a.get("--steps", a.cpu ? "3" : "20"));
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 1000),
                                            kernels::LossType::Huber);
  // A few host batches in [-1, 1]-ish, cycled: the loader's output, without the disk.
  std::vector<Tensor> host_batches;
  for (int i = 0; i < 4; ++i) host_batches.push_back(random_tensor({batch, p.image, p.image, p.cfg.channels}, Device::CPU, 40 + i, 0.5f));

  struct Run {
    Precision precision = Precision::FP32;
    bool graphs = false;
    double ms = 0, host_ms = 0, peak = 0, syncs = 0, launches = 0, last_loss = 0;
    double tensors_peak = 0;  // CPU: the live tensors' peak bytes (MiB), RSS aside
    double tensors_kept = 0;  // eager: the live tensors' bytes (MiB) as the backward starts, at most
    long long graph_nodes = 0;
    std::vector<float> losses;  // every step's, to check the modes against each other
    std::vector<kernels::op_profile::Entry> ops;  // --profile (CPU): per op over the timed steps
  };
  // The trainer's step (ddpm::TrainStep: eager, or replayed from a CUDA graph), from the same
  // weights, batches and generator in each mode.
  auto run_mode = [&](bool graphs, Precision prec) {
    const PrecisionScope scope(prec);
    Run r;
    r.graphs = graphs;
    r.precision = prec;
    Generator init(0), noise_gen(1);
    models::Unet m(p.cfg, init);
    m.params().to(dev);
    m.params().zero_grad();
    const std::vector<ag::Var> params = m.params().vars();
    kernels::AdamHyper hyper;
    hyper.lr = 1e-3f;
    // As the trainer: parameters, gradients, moments and the EMA shadow in flat arenas.
    ag::Adam adam(params, hyper, m.params().param_arena(), m.params().grad_arena());
    models::Ema ema(params, models::EmaConfig{}, m.params().param_arena());
    ddpm::TrainStep step_fn(ddpm::TrainStepParts{&m, &m.params(), &diffusion, &noise_gen, &adam, 1.0}, dev, graphs);
    // What the tape holds for the backward, the training state beside it: the bytes of live tensors
    // (the caching allocator's in use on the GPU, the counted CPU tensors). Eager steps only: a
    // captured step runs no host code between its forward and its backward.
    if (!graphs)
      step_fn.set_data_parallel(0, 1, {}, [&r, dev] {
        const std::size_t in_use = dev == Device::CUDA ? cuda_mem::stats().in_use : host_mem::stats().in_use;
        r.tensors_kept = std::max(r.tensors_kept, double(in_use) / (1 << 20));
      });
    // As the trainer: losses read back in batches (here once per timed run), so nothing in a step
    // waits for the GPU.
    ddpm::LossRing ring(dev, 1024);
    int64_t step = 0;
    auto drain = [&] {
      for (float lv : ring.drain()) {
        DD_CHECK(std::isfinite(lv), "the loss is not finite (cuda graphs ", graphs ? "on" : "off", ")");
        r.losses.push_back(lv);
      }
    };
    auto one = [&] {
      const Tensor loss = step_fn.run(host_batches[step % host_batches.size()]);
      ema.update(step + 1);
      ring.push(loss);
      ++step;
    };
    // The peak counts from here: a graph's private pool is allocated while the second warm-up step
    // is captured, and is reserved but not in use during the replays (the first GPU run's graphed
    // rows, reset after the warm-up, showed 851 MiB against the eager 4,137).
    if (dev == Device::CUDA) cuda_mem::reset_peak();
    host_mem::reset_peak();
    for (int i = 0; i < warm; ++i) one();  // in graph mode the first is eager and the second captures
    drain();
    sync(dev);
    std::vector<double> per_step;
    const cuda_mem::Stats before = cuda_mem::stats();
    if (profile) {
      kernels::op_profile::reset();
      kernels::op_profile::enable(true);
    }
    const auto t0 = clk::now();
    for (int i = 0; i < steps; ++i) {
      const auto ts = clk::now();
      one();  // on the GPU: the host's enqueue time (the queue's depth bounds how far it runs ahead)
      per_step.push_back(std::chrono::duration<double, std::milli>(clk::now() - ts).count());
    }
    if (profile) {
      kernels::op_profile::enable(false);
      r.ops = kernels::op_profile::snapshot();
    }
    const cuda_mem::Stats after = cuda_mem::stats();
    drain();
    sync(dev);
    r.ms = std::chrono::duration<double, std::milli>(clk::now() - t0).count() / steps;
    r.host_ms = median(per_step);
    r.peak = peak_mib(dev);
    r.tensors_peak = double(host_mem::stats().peak_in_use) / (1 << 20);
    r.syncs = double(after.host_syncs - before.host_syncs) / steps;
    r.launches = double(after.launches - before.launches) / steps;
    r.graph_nodes = step_fn.graph_nodes();
    r.last_loss = r.losses.empty() ? 0.0 : r.losses.back();
    return r;
  };
  std::vector<Run> runs;
  for (const Precision prec : precisions) {
    runs.push_back(run_mode(false, prec));
    if (dev == Device::CUDA && !no_graphs) {
      if (warm < 2) DD_FAIL("--warmup must be at least 2 with CUDA graphs (an eager step, then the capture)");
      runs.push_back(run_mode(true, prec));
      // Validate before reporting: a replayed step is the eager step, bit for bit.
      const Run& e = runs[runs.size() - 2];
      DD_CHECK(runs.back().losses == e.losses, "CUDA graph steps and eager steps disagree in ", precision_name(prec),
               ": last losses ", runs.back().last_loss, " vs ", e.last_loss, " (they must be bitwise equal)");
    }
  }
  print_header(str_cat("Training step, ", p.name == "cifar" ? "CIFAR-10" : "Fashion-MNIST", " preset (ours)"), a);
  std::printf("%sM parameters, batch %d, %dx%dx%d; %d warm-up steps, %d timed; loss at the last step %s.\n\n",
              fmt(n_params / 1e6, 4).c_str(), batch, p.image, p.image, p.cfg.channels, warm, steps,
              fmt(runs[0].last_loss, 4).c_str());
  table_header({"trainer", "ms / step (mean)", dev == Device::CUDA ? "host ms / step (median)" : "ms / step (median)",
                "img/s", "peak MiB", "host syncs / step", "launches / step", "graph nodes"});
  for (const Run& r : runs) {
    table_row({str_cat("ours ", precision_name(r.precision), tuned, r.graphs ? ", CUDA graph" : ", eager"), fmt(r.ms),
               fmt(r.host_ms),
               fmt(batch / (r.ms * 1e-3), 4), fmt(r.peak, 4), fmt(r.syncs, 3), fmt(r.launches, 4),
               r.graphs ? std::to_string(r.graph_nodes) : "-"});
    append_json(json, str_cat("{\"kind\": \"train\", \"preset\": \"", p.name, "\", \"device\": \"", a.cpu ? "cpu" : "cuda",
                              "\", \"batch\": ", batch, ", \"ms_step\": ", r.ms, ", \"host_ms_step\": ", r.host_ms,
                              ", \"launches_step\": ", r.launches, ", \"cuda_graphs\": ", r.graphs ? "true" : "false",
                              ", \"precision\": \"", precision_name(r.precision), "\"", ", \"conv_autotune\": ",
                              autotune ? "true" : "false",
                              ", \"peak_mib\": ", r.peak, ", \"kept_mib\": ", r.tensors_kept, ", \"steps\": ", steps,
                              "}"));
  }
  for (size_t i = 0; i + 1 < runs.size(); ++i)
    if (!runs[i].graphs && runs[i + 1].graphs)
      std::printf("\n%s: CUDA graph vs eager: %sx the step time, %sx the host time; losses bitwise equal over %zu steps.",
                  precision_name(runs[i].precision), fmt(runs[i + 1].ms / runs[i].ms, 3).c_str(),
                  fmt(runs[i + 1].host_ms / runs[i].host_ms, 3).c_str(), runs[i].losses.size());
  for (const Run& r : runs) {
    if (r.precision == Precision::FP32) continue;
    for (const Run& base : runs)
      if (base.precision == Precision::FP32 && base.graphs == r.graphs)
        std::printf("\n%s vs fp32 (%s): %sx faster; last loss %s vs %s.", precision_name(r.precision),
                    r.graphs ? "CUDA graph" : "eager", fmt(base.ms / r.ms, 3).c_str(), fmt(r.last_loss, 4).c_str(),
                    fmt(base.last_loss, 4).c_str());
  }
  if (dev == Device::CPU)
    for (const Run& r : runs)
      std::printf("\n%s: the live tensors' peak %s MiB, %s MiB as the backward starts (the peak MiB column is the "
                  "process's RSS).",
                  precision_name(r.precision), fmt(r.tensors_peak, 4).c_str(), fmt(r.tensors_kept, 4).c_str());
  else
    for (const Run& r : runs)
      if (!r.graphs)
        std::printf("\n%s (eager): %s MiB in use as the backward starts (the training state included).",
                    precision_name(r.precision), fmt(r.tensors_kept, 4).c_str());
  for (const Run& r : runs)
    if (!r.ops.empty()) print_profile(r.ops, str_cat("training step, ours ", precision_name(r.precision), ", eager, CPU"), steps, r.ms);
  std::printf("\n");
  report_autotune();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_train_step: %s\n", e.what());
  return 2;
}
