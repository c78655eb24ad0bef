#include "apps/ddpm/sampler.h"

#include <algorithm>

#include "apps/ddpm/chain_graph.h"
#include "apps/ddpm/interrupt.h"
#include "apps/report/progress.h"
#include "autograd/var.h"
#include "engine/error.h"

namespace dd::ddpm {

namespace {

// Copies rows [0, n) of src ([B, ...]) into dst starting at row `at`.
void copy_rows(const Tensor& src, Tensor& dst, int64_t at) {
  const int64_t row = src.numel() / src.dim(0);
  const Tensor s = src.to(Device::CPU);
  std::copy(s.data(), s.data() + s.numel(), dst.data() + at * row);
}

Tensor clamp_unit(const Tensor& x) {
  Tensor out = x.to(Device::CPU).clone();
  for (int64_t i = 0; i < out.numel(); ++i) out.data()[i] = std::clamp(out.data()[i], -1.0f, 1.0f);
  return out;
}

// Whether a "ddpm" request runs the x0-form sampler (models/ddpm_sampler.h) rather than Algorithm 2.
// Algorithm 2 (eps form) divides by sqrt(alpha_t), 0 at zero terminal SNR: the x0 form takes over there.
bool ddpm_x0_form(const models::GaussianDiffusion& diffusion, const SampleRequest& req) {
  return req.sampler == "ddpm" &&
         ((req.ddpm.steps != 0 && req.ddpm.steps != diffusion.T()) || req.ddpm.clip_sample ||
          !req.ddpm.timesteps.empty() || req.ddpm.thresholding.enabled ||
          req.ddpm.variance_type != models::VarianceType::FixedSmall || diffusion.schedule().zero_terminal_snr());
}

}  // namespace

std::vector<int> sampler_timesteps(const models::GaussianDiffusion& diffusion, const SampleRequest& req) {
  const int T = diffusion.T();
  if (req.sampler == "ddim")
    return models::inference_timesteps(req.ddim.spacing, T, req.ddim.steps, req.ddim.steps_offset);
  if (req.sampler == "dpmpp") return models::dpm_solver_plan(diffusion.schedule(), req.dpm).timesteps;
  DD_CHECK(req.sampler == "ddpm", "sampling: --sampler must be ddpm, ddim, dpmpp or respaced, got '", req.sampler, "'");
  if (!req.ddpm.timesteps.empty()) return req.ddpm.timesteps;
  if (ddpm_x0_form(diffusion, req) && req.ddpm.steps != 0)
    return models::inference_timesteps(req.ddpm.spacing, T, req.ddpm.steps);
  std::vector<int> all;
  for (int t = T - 1; t >= 0; --t) all.push_back(t);
  return all;
}

SampleResult sample_images(models::Denoiser& model, const models::GaussianDiffusion& diffusion,
                           const SampleRequest& req) {
  DD_CHECK(req.n > 0, "sampling: the number of images must be positive, got ", req.n);
  DD_CHECK(req.batch_size > 0, "sampling: --batch-size must be positive, got ", req.batch_size);
  DD_CHECK(req.image_size > 0, "sampling: image size must be positive, got ", req.image_size);
  ag::NoGrad no_grad;
  DD_CHECK(req.sampler == "ddpm" || req.sampler == "ddim" || req.sampler == "dpmpp",
           "sampling: --sampler must be ddpm, ddim, dpmpp or respaced, got '", req.sampler, "'");
  const bool ddim = req.sampler == "ddim", dpm = req.sampler == "dpmpp";
  const int C = model.channels(), S = req.image_size;
  const bool ddpm_x0 = ddpm_x0_form(diffusion, req);
  const int T = static_cast<int>(sampler_timesteps(diffusion, req).size());  // steps per batch
  SampleResult result;
  DD_CHECK(req.first_batch >= 0 && static_cast<uint64_t>(req.first_batch) < (uint64_t{1} << 23),
           "sampling: first batch ", req.first_batch, " out of range");
  if (req.keep_images) result.images = Tensor::empty({req.n, S, S, C});
  // Each batch's noise at its own offset (SampleRequest::first_batch): the same seed and batch size
  // give the same images, and any batch can be drawn alone.
  Generator gen(req.seed);
  const int batches = (req.n + req.batch_size - 1) / req.batch_size;
  const int64_t total = static_cast<int64_t>(batches) * T;
  std::unique_ptr<report::Progress> progress;
  if (req.show_progress) progress = std::make_unique<report::Progress>(total, "sample", req.progress_out);
  // Snapshots of image 0's trajectory, by step index from the first step (k = 0) to the last (T - 1):
  // evenly spaced, the first and the last included (for DDPM, k = T - 1 - t).
  std::vector<int> snap_k;
  if (req.trajectory_frames > 0) {
    const int frames = std::max(2, req.trajectory_frames);
    for (int f = 0; f < frames; ++f) snap_k.push_back(static_cast<int>((int64_t)(T - 1) * f / (frames - 1)));
  }
  int64_t done = 0;
  // DDIM, DPM-Solver++ and the x0-form DDPM replay whole chains (apps/ddpm/chain_graph.h); Algorithm 2
  // replays one graph per step (GaussianDiffusion::p_sample_loop_graphed).
  ChainGraphs chains(req.cuda_graphs && (ddim || dpm || ddpm_x0), req.device);
  for (int b = 0; b < batches; ++b) {
    const int n = std::min(req.batch_size, req.n - b * req.batch_size);
    int k = 0;  // this batch's step index
    const std::function<void(int, const Tensor&)> on_step = [&](int, const Tensor& xt) {
      // A stop request ends the chain after this step; the caller writes no partial grid.
      if (stop_requested())
        throw Interrupted(str_cat("sampling stopped by ", stop_signal_name(), " at batch ", b + 1, " of ", batches));
      ++done;
      if (progress) progress->update(done, "batch " + std::to_string(b + 1) + "/" + std::to_string(batches));
      const bool snap = b == 0 && std::find(snap_k.begin(), snap_k.end(), k) != snap_k.end();
      ++k;
      if (snap) {
        Tensor first = Tensor::empty({1, S, S, C});
        const Tensor host = xt.to(Device::CPU);  // one copy: begin and end must point into the same buffer
        std::copy(host.data(), host.data() + first.numel(), first.data());
        result.trajectory.push_back(clamp_unit(first));
      }
    };
    const Shape shape{n, S, S, C};
    const ChainGraphs::Chain chain = [&](Generator& g, bool eager) {
      const auto& cb = eager ? on_step : std::function<void(int, const Tensor&)>();
      return ddim      ? models::ddim_sample_loop(diffusion, model, shape, g, req.ddim, cb, req.device)
             : dpm     ? models::dpm_solver_sample_loop(diffusion, model, shape, g, req.dpm, cb, req.device)
             : ddpm_x0 ? models::ddpm_sample_loop(diffusion, model, shape, g, req.ddpm, cb, req.device)
             : req.cuda_graphs ? diffusion.p_sample_loop_graphed(model, shape, g, cb, req.device)
                               : diffusion.p_sample_loop(model, shape, g, cb, req.device);
    };
    if (stop_requested())
      throw Interrupted(str_cat("sampling stopped by ", stop_signal_name(), " before batch ", b + 1, " of ", batches));
    gen.set_state(req.seed, static_cast<uint64_t>(req.first_batch + b) * kBatchNoiseStride);
    const int64_t replays_before = chains.replays();
    Tensor x = chains.run(n, gen, chain);
    if (chains.replays() != replays_before) {  // a replayed chain: its steps report at once
      done += T;
      if (progress) progress->update(done, "batch " + std::to_string(b + 1) + "/" + std::to_string(batches));
    }
    const Tensor images = clamp_unit(x);
    if (req.keep_images) copy_rows(images, result.images, static_cast<int64_t>(b) * req.batch_size);
    if (req.on_batch) req.on_batch(req.first_batch + b, images.to(Device::CPU));
  }
  if (progress) progress->finish();
  return result;
}

}  // namespace dd::ddpm
