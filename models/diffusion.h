#pragma once
// The Gaussian diffusion of seed 003 (DDPM, noise prediction) with lucidrains'
// self-conditioning (denoising-diffusion-pytorch): the training loss and the
// ancestral sampler (Algorithm 2), driving any Denoiser.
//
// Random numbers come only from the Generator passed in, in a fixed order:
//   p_losses:      t_b = gen.uniform_int(T) for b = 0..B-1 (one block each; drawn on the
//                  batch's device from the same blocks, kernels/timesteps.h), then
//                  noise = gen.randn(x0 shape), then, only for a self-conditioning
//                  model, u = gen.uniform() (one block; self-condition when u < 0.5).
//   p_sample:      noise = gen.randn(x_t shape) when t > 0; nothing at t == 0.
//   p_sample_loop: x_T = gen.randn(shape), then p_sample's draws for t = T-1..0.
// So the generator's state after a call depends only on its state before, the
// shapes, and (p_losses) whether the model self-conditions.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"
#include "engine/rng.h"
#include "kernels/loss.h"
#include "models/denoiser.h"
#include "models/schedule.h"

namespace dd::models {

// lucidrains' objectives: the model predicts the noise (the seed's), x0, or v = sqrt(abar) eps -
// sqrt(1 - abar) x0. Samplers convert every output to an eps prediction (eps_prediction below).
enum class Objective { PredNoise, PredX0, PredV };
// "pred_noise", "pred_x0", "pred_v"; anything else throws, listing them.
Objective parse_objective(const std::string& name);
const char* objective_name(Objective o);

// Training-only settings of the loss (lucidrains' GaussianDiffusion):
//   min_snr_gamma > 0: loss weight min(snr, gamma) / snr (pred_noise), min(snr, gamma) (pred_x0),
//                      min(snr, gamma) / (snr + 1) (pred_v), snr = abar / (1 - abar); with 0, lucidrains'
//                      unclipped weights: 1, snr and snr / (snr + 1). Per sample, the loss being the mean
//                      over every element of weight * term.
//   offset_noise > 0:  noise += offset_noise * n[b, c], n ~ N(0, 1) per (sample, channel), drawn after the
//                      self-conditioning coin (so runs without it draw what they drew before).
struct LossOptions {
  double min_snr_gamma = 0.0;
  double offset_noise = 0.0;
};

// What one p_losses call drew (for logs and tests).
struct LossDraw {
  std::vector<int64_t> t;         // per-sample timesteps
  bool self_conditioned = false;  // whether the no-grad x0 pass ran
};

class GaussianDiffusion {
 public:
  // L1 is the seed's p_losses default.
  explicit GaussianDiffusion(Schedule schedule, kernels::LossType loss_type = kernels::LossType::L1,
                             Objective objective = Objective::PredNoise, LossOptions loss_options = {});

  const Schedule& schedule() const { return schedule_; }
  int T() const { return schedule_.T; }
  kernels::LossType loss_type() const { return loss_type_; }
  Objective objective() const { return objective_; }
  const LossOptions& loss_options() const { return loss_options_; }
  // The per-timestep loss weight p_losses applies (1 for every t with pred_noise and no min-SNR).
  double loss_weight(int t) const;

  // The model's output at (x, t) as a noise prediction, whatever the objective (no gradient):
  //   pred_x0: eps = (x - sqrt(abar) out) / sqrt(1 - abar);  pred_v: eps = sqrt(1 - abar) x + sqrt(abar) out.
  // t: [B] float timesteps on x's device; x_self_cond may be undefined.
  Tensor eps_prediction(Denoiser& model, const Tensor& x, const Tensor& t, const Tensor& x_self_cond) const;
  // The model's raw output (what the objective names), no gradient, its shape checked.
  Tensor model_output(Denoiser& model, const Tensor& x, const Tensor& t, const Tensor& x_self_cond) const;

  // For the fused sampler steps: x0 = x0_x x + x0_out out and eps = eps_x x + eps_out out at timestep t,
  // from the model's raw output (diffusers' formulas for prediction_type sample / v_prediction).
  struct OutputConversion {
    double x0_x, x0_out, eps_x, eps_out;
  };
  OutputConversion output_conversion(int t) const;

  // Training loss for a batch x0 [B, H, W, C] (NHWC, C == model.channels()):
  // t ~ U{0..T-1} per sample, x_t = q_sample(x0, t, noise), and
  // loss(model(x_t, t, x_self_cond), noise). For a self-conditioning model, half
  // the time (u < 0.5) x_self_cond is the unclamped x0 estimate from a first,
  // no-grad pass of the model, detached; otherwise it is undefined. Records on
  // ag::Tape::current(); the caller clears the tape and runs backward.
  ag::Var p_losses(Denoiser& model, const Tensor& x0, Generator& gen, LossDraw* draw = nullptr) const;
  // Whether p_losses(model, x0, gen) will self-condition, read from gen's counters without
  // drawing (a CUDA graph step picks its graph before it replays; nothing is read back).
  bool self_condition_coin(const Denoiser& model, const Tensor& x0, const Generator& gen) const;
  // Uploads every per-timestep table p_losses uses on dev, so a captured step uploads nothing.
  void prepare(Device dev) const;

  // One reverse step at timestep t (the same for the whole batch), no gradient.
  // x_self_cond: the previous step's x0 estimate for a self-conditioning model
  // (undefined at the first step). *x0_pred_out, when given, receives the clamped
  // x0 estimate of this step.
  Tensor p_sample(Denoiser& model, const Tensor& x_t, int t, Generator& gen, Tensor* x0_pred_out = nullptr,
                  const Tensor& x_self_cond = Tensor()) const;

  // Algorithm 2 from x_T ~ N(0, I) of `shape` [B, H, W, C] on `dev`, through
  // t = T-1..0; returns x_0 (the mean at t == 0). on_step(t, x) sees the batch
  // after the step at t. Self-conditioning models get each step's clamped x0
  // estimate at the next step, as lucidrains' p_sample_loop.
  Tensor p_sample_loop(Denoiser& model, const Shape& shape, Generator& gen,
                       const std::function<void(int t, const Tensor& x)>& on_step = {},
                       Device dev = Device::CPU) const;

  // p_sample at the timestep held in t_dev (one float on x_t's device), read there: every
  // coefficient is gathered from the tables, and the model gets t_dev broadcast. The same values as
  // p_sample(model, x_t, t, ...) for t >= 1 (t == 0 draws no noise: use p_sample there).
  Tensor p_sample_device_t(Denoiser& model, const Tensor& x_t, const Tensor& t_dev, Generator& gen,
                           Tensor* x0_pred_out = nullptr, const Tensor& x_self_cond = Tensor()) const;
  // p_sample_loop on a CUDA device with the steps t = T-2..1 replayed from one CUDA graph, captured
  // at t = T-2 (t = T-1 runs eagerly: it makes the lazily created state, and a self-conditioning
  // model has no x0 estimate yet; t = 0 runs eagerly: it draws nothing). Before each replay the host
  // writes t and the generator's offset where the graph reads them. The same images, bit for bit, as
  // p_sample_loop on the same device; on_step sees the same (t, x) sequence.
  Tensor p_sample_loop_graphed(Denoiser& model, const Shape& shape, Generator& gen,
                               const std::function<void(int t, const Tensor& x)>& on_step, Device dev) const;

 private:
  // A schedule buffer rounded once to float, as a [T] tensor on dev, made on first use: the
  // per-sample coefficients are then gathered where the timesteps are, with nothing uploaded.
  const Tensor& table(const std::vector<double>& buffer, Device dev) const;
  // Keyed by the buffer's address in this object's schedule_: a copy starts with an empty cache.
  struct TableCache {
    std::map<std::pair<const void*, Device>, Tensor> tables;
    TableCache() = default;
    TableCache(const TableCache&) {}
    TableCache& operator=(const TableCache&) {
      tables.clear();
      return *this;
    }
  };

  Schedule schedule_;
  std::vector<double> posterior_std_;  // sqrt(posterior_variance): p_sample's sigma, as a table
  kernels::LossType loss_type_;
  Objective objective_;
  LossOptions loss_options_;
  std::vector<double> loss_weight_;            // per t; empty when every weight is 1
  std::vector<double> eps_x_, eps_out_;        // eps = eps_x[t] x + eps_out[t] out (not pred_noise)
  std::vector<double> x0_x_, x0_out_;          // x0 = x0_x[t] x + x0_out[t] out (not pred_noise)
  std::vector<double> neg_sqrt_one_minus_ac_;  // -sqrt(1 - abar): v = sqrt(abar) noise - sqrt(1 - abar) x0
  mutable TableCache cache_;
};

}  // namespace dd::models
