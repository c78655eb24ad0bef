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

// lucidrains' objectives; only pred_noise (the seed's) is implemented.
enum class Objective { PredNoise, PredX0, PredV };
// "pred_noise", "pred_x0", "pred_v"; anything else throws, listing them.
Objective parse_objective(const std::string& name);
const char* objective_name(Objective o);

// What one p_losses call drew (for logs and tests).
struct LossDraw {
  std::vector<int64_t> t;         // per-sample timesteps
  bool self_conditioned = false;  // whether the no-grad x0 pass ran
};

class GaussianDiffusion {
 public:
  // Throws for an objective other than pred_noise. L1 is the seed's p_losses default.
  explicit GaussianDiffusion(Schedule schedule, kernels::LossType loss_type = kernels::LossType::L1,
                             Objective objective = Objective::PredNoise);

  const Schedule& schedule() const { return schedule_; }
  int T() const { return schedule_.T; }
  kernels::LossType loss_type() const { return loss_type_; }
  Objective objective() const { return objective_; }

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
  mutable TableCache cache_;
};

}  // namespace dd::models
