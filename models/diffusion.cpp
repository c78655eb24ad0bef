#include "models/diffusion.h"

#include <algorithm>
#include <cmath>

#include "autograd/loss.h"
#include "engine/error.h"
#include "kernels/broadcast.h"
#include "kernels/diffusion.h"
#include "kernels/elementwise.h"
#include "kernels/timesteps.h"
#include "engine/cuda_graph.h"
#include "engine/device.h"
#include "models/frozen_weights.h"

namespace dd::models {

Objective parse_objective(const std::string& name) {
  if (name == "pred_noise") return Objective::PredNoise;
  if (name == "pred_x0") return Objective::PredX0;
  if (name == "pred_v") return Objective::PredV;
  DD_FAIL("diffusion: unknown objective '", name, "' (expected pred_noise, pred_x0 or pred_v)");
}

const char* objective_name(Objective o) {
  switch (o) {
    case Objective::PredNoise:
      return "pred_noise";
    case Objective::PredX0:
      return "pred_x0";
    case Objective::PredV:
      return "pred_v";
  }
  DD_FAIL("diffusion: invalid Objective value ", static_cast<int>(o));
}

namespace {
void check_batch(const char* op, const Denoiser& model, const Shape& s) {
  DD_CHECK(s.size() == 4, op, ": expected an NHWC batch [B, H, W, C], got ", shape_str(s));
  for (int64_t d : s) DD_CHECK(d >= 1, op, ": empty batch shape ", shape_str(s));
  DD_CHECK(s[3] == model.channels(), op, ": batch ", shape_str(s), " has ", s[3],
           " channels but the model expects ", model.channels());
}

// The model's noise prediction, checked to have x_t's shape.
ag::Var predict_eps(const char* op, Denoiser& model, const ag::Var& x_t, const Tensor& t, const ag::Var& sc) {
  ag::Var eps = model.forward(x_t, t, sc);
  DD_CHECK(eps.defined() && eps.value().shape() == x_t.value().shape(), op, ": the model returned ",
           eps.defined() ? describe(eps.value()) : std::string("nothing"), " for x_t ", describe(x_t.value()),
           " (pred_noise needs the same shape)");
  return eps;
}

// One timestep for the whole batch: buffer[t] (rounded once to float) for each of B samples.
Tensor coef(double value, int64_t B, Device dev) { return Tensor::full({B}, static_cast<float>(value), dev); }

}  // namespace

const Tensor& GaussianDiffusion::table(const std::vector<double>& buffer, Device dev) const {
  const auto key = std::make_pair(static_cast<const void*>(&buffer), dev);
  auto it = cache_.tables.find(key);
  if (it == cache_.tables.end()) {
    std::vector<int64_t> all(static_cast<std::size_t>(schedule_.T));
    for (int64_t i = 0; i < schedule_.T; ++i) all[static_cast<std::size_t>(i)] = i;
    it = cache_.tables.emplace(key, schedule_.extract(buffer, all, dev)).first;
  }
  return it->second;
}

GaussianDiffusion::GaussianDiffusion(Schedule schedule, kernels::LossType loss_type, Objective objective,
                                     LossOptions loss_options)
    : schedule_(std::move(schedule)), loss_type_(loss_type), objective_(objective), loss_options_(loss_options) {
  for (double v : schedule_.posterior_variance) posterior_std_.push_back(std::sqrt(v));
  DD_CHECK(schedule_.T >= 1 && static_cast<int>(schedule_.betas.size()) == schedule_.T,
           "diffusion: schedule is empty or inconsistent (T = ", schedule_.T, ", ", schedule_.betas.size(),
           " betas); build it with Schedule::make or Schedule::from_betas");
  objective_name(objective_);           // rejects an out-of-range enum value
  kernels::loss_type_name(loss_type_);  // likewise
  DD_CHECK(loss_options_.min_snr_gamma >= 0 && std::isfinite(loss_options_.min_snr_gamma),
           "diffusion: min-SNR gamma must be >= 0 (0 = off), got ", loss_options_.min_snr_gamma);
  DD_CHECK(loss_options_.offset_noise >= 0 && std::isfinite(loss_options_.offset_noise),
           "diffusion: offset noise strength must be >= 0, got ", loss_options_.offset_noise);
  const double gamma = loss_options_.min_snr_gamma;
  if (objective_ != Objective::PredNoise || gamma > 0) {
    for (double a : schedule_.alphas_cumprod) {
      const double snr = a / (1.0 - a), clipped = gamma > 0 ? std::min(snr, gamma) : snr;
      // At zero SNR (zero terminal SNR) min(snr, gamma) / snr is 0 / 0: its limit, 1.
      loss_weight_.push_back(objective_ == Objective::PredNoise ? (snr > 0.0 ? clipped / snr : 1.0)
                             : objective_ == Objective::PredX0  ? clipped
                                                                : clipped / (snr + 1.0));
    }
  }
  for (std::size_t t = 0; t < schedule_.alphas_cumprod.size(); ++t) {
    const double a = schedule_.alphas_cumprod[t], sa = std::sqrt(a), s1 = std::sqrt(1.0 - a);
    neg_sqrt_one_minus_ac_.push_back(-s1);
    if (objective_ == Objective::PredX0) {
      eps_x_.push_back(1.0 / s1);
      eps_out_.push_back(-sa / s1);
      x0_x_.push_back(0.0);
      x0_out_.push_back(1.0);
    } else if (objective_ == Objective::PredV) {
      eps_x_.push_back(s1);
      eps_out_.push_back(sa);
      x0_x_.push_back(sa);
      x0_out_.push_back(-s1);
    }
  }
}

double GaussianDiffusion::loss_weight(int t) const {
  DD_CHECK(t >= 0 && t < schedule_.T, "diffusion: timestep ", t, " outside [0, ", schedule_.T, ")");
  return loss_weight_.empty() ? 1.0 : loss_weight_[static_cast<std::size_t>(t)];
}

Tensor GaussianDiffusion::model_output(Denoiser& model, const Tensor& x, const Tensor& t,
                                       const Tensor& x_self_cond) const {
  ag::NoGrad no_grad;
  return predict_eps("model_output", model, ag::Var(x), t, x_self_cond.defined() ? ag::Var(x_self_cond) : ag::Var())
      .value();
}

GaussianDiffusion::OutputConversion GaussianDiffusion::output_conversion(int t) const {
  DD_CHECK(t >= 0 && t < schedule_.T, "diffusion: timestep ", t, " outside [0, ", schedule_.T, ")");
  const double a = schedule_.alphas_cumprod[static_cast<std::size_t>(t)], sa = std::sqrt(a), s1 = std::sqrt(1.0 - a);
  switch (objective_) {
    case Objective::PredNoise:
      return {1.0 / sa, -s1 / sa, 0.0, 1.0};
    case Objective::PredX0:
      return {0.0, 1.0, 1.0 / s1, -sa / s1};
    case Objective::PredV:
      return {sa, -s1, s1, sa};
  }
  DD_FAIL("diffusion: invalid objective");
}

Tensor GaussianDiffusion::eps_prediction(Denoiser& model, const Tensor& x, const Tensor& t,
                                         const Tensor& x_self_cond) const {
  ag::NoGrad no_grad;
  const Tensor out =
      predict_eps("eps_prediction", model, ag::Var(x), t, x_self_cond.defined() ? ag::Var(x_self_cond) : ag::Var())
          .value();
  if (objective_ == Objective::PredNoise) return out;
  const Device dev = x.device();
  return kernels::q_sample(x, out, kernels::gather_timesteps(table(eps_x_, dev), t),
                           kernels::gather_timesteps(table(eps_out_, dev), t));
}

bool GaussianDiffusion::self_condition_coin(const Denoiser& model, const Tensor& x0, const Generator& gen) const {
  if (!model.self_condition()) return false;
  Generator g = gen;  // p_losses' draw order: the timesteps, the noise, then the coin
  g.skip(static_cast<uint64_t>(x0.dim(0)));
  g.reserve(x0.numel());
  return g.uniform() < 0.5;
}

void GaussianDiffusion::prepare(Device dev) const {
  for (const auto* b : {&schedule_.sqrt_alphas_cumprod, &schedule_.sqrt_one_minus_alphas_cumprod,
                        &schedule_.sqrt_recip_alphas_cumprod, &schedule_.sqrt_recipm1_alphas_cumprod})
    table(*b, dev);
  for (const auto* b : {&loss_weight_, &eps_x_, &eps_out_, &x0_x_, &x0_out_, &neg_sqrt_one_minus_ac_})
    if (!b->empty()) table(*b, dev);
}

ag::Var GaussianDiffusion::p_losses(Denoiser& model, const Tensor& x0, Generator& gen, LossDraw* draw) const {
  const char* op = "p_losses";
  DD_CHECK(x0.defined(), op, ": x0 is undefined");
  check_batch(op, model, x0.shape());
  const int64_t B = x0.dim(0);
  const Device dev = x0.device();

  // The documented draw order: timesteps, noise, then the self-conditioning coin. The timesteps
  // and the noise are drawn on x0's device from their reserved blocks: nothing is uploaded.
  const Tensor tt = kernels::draw_timesteps(B, schedule_.T, gen.seed(), gen.skip_at(static_cast<uint64_t>(B)), dev);
  const PhiloxOffset noise_offset = gen.reserve_at(x0.numel());
  const bool self_cond = model.self_condition() && gen.uniform() < 0.5;
  const auto at = [&](const std::vector<double>& buffer) { return kernels::gather_timesteps(table(buffer, dev), tt); };

  kernels::QSampleOut q = kernels::q_sample_philox(x0, at(schedule_.sqrt_alphas_cumprod),
                                                   at(schedule_.sqrt_one_minus_alphas_cumprod), gen.seed(),
                                                   noise_offset);
  if (loss_options_.offset_noise > 0) {  // drawn last, so the other draws stay where they were
    const Tensor n = gen.randn_at({B, x0.dim(3)}, dev);
    q.noise = kernels::add_bc(q.noise, kernels::affine(n, static_cast<float>(loss_options_.offset_noise), 0.0f));
    q.x_t = kernels::q_sample(x0, q.noise, at(schedule_.sqrt_alphas_cumprod), at(schedule_.sqrt_one_minus_alphas_cumprod));
  }
  const Tensor noise = q.noise;
  const ag::Var x_t(q.x_t);
  ag::Var x_self_cond;
  if (self_cond) {
    // A fresh Var that requires no gradient: nothing flows back through it.
    // x0 straight from a v or x0 output (lucidrains' predict_start_from_v), finite at zero SNR
    // where the eps route divides by sqrt(abar) = 0.
    x_self_cond = ag::Var(
        objective_ == Objective::PredNoise
            ? kernels::predict_x0(x_t.value(), eps_prediction(model, x_t.value(), tt, Tensor()),
                                  at(schedule_.sqrt_recip_alphas_cumprod), at(schedule_.sqrt_recipm1_alphas_cumprod),
                                  /*clamp=*/false)
            : kernels::q_sample(x_t.value(), model_output(model, x_t.value(), tt, Tensor()), at(x0_x_), at(x0_out_)));
  }
  const ag::Var out = predict_eps(op, model, x_t, tt, x_self_cond);
  if (draw) {  // for logs and tests: a read-back only when asked for
    draw->t.clear();
    for (float v : tt.to_vector()) draw->t.push_back(static_cast<int64_t>(v));
    draw->self_conditioned = self_cond;
  }
  // The target the objective names: the noise, x0, or v = sqrt(abar) noise - sqrt(1 - abar) x0.
  const Tensor target = objective_ == Objective::PredNoise ? noise
                        : objective_ == Objective::PredX0
                            ? x0
                            : kernels::q_sample(noise, x0, at(schedule_.sqrt_alphas_cumprod), at(neg_sqrt_one_minus_ac_));
  // The seed writes loss(noise, predicted); every LossType is symmetric in its operands.
  if (loss_weight_.empty()) return ag::loss(out, ag::Var(target), loss_type_);
  return ag::weighted_loss(out, ag::Var(target), loss_type_, at(loss_weight_));
}

Tensor GaussianDiffusion::p_sample(Denoiser& model, const Tensor& x_t, int t, Generator& gen,
                                   Tensor* x0_pred_out, const Tensor& x_self_cond) const {
  const char* op = "p_sample";
  DD_CHECK(x_t.defined(), op, ": x_t is undefined");
  check_batch(op, model, x_t.shape());
  DD_CHECK(t >= 0 && t < schedule_.T, op, ": timestep ", t, " outside [0, ", schedule_.T, ")");
  if (x_self_cond.defined())
    DD_CHECK(x_self_cond.shape() == x_t.shape(), op, ": x_self_cond ", describe(x_self_cond),
             " must have the shape of x_t ", describe(x_t));
  const Device dev = x_t.device();
  const int64_t B = x_t.dim(0);
  const auto at = [&](const std::vector<double>& buffer) {
    return coef(buffer[static_cast<std::size_t>(t)], B, dev);
  };

  ag::NoGrad no_grad;
  const Tensor eps = eps_prediction(model, x_t, Tensor::full({B}, static_cast<float>(t), dev), x_self_cond);
  if (x0_pred_out)
    *x0_pred_out = kernels::predict_x0(x_t, eps, at(schedule_.sqrt_recip_alphas_cumprod),
                                       at(schedule_.sqrt_recipm1_alphas_cumprod), /*clamp=*/true);
  kernels::PSampleCoefs c;
  c.sqrt_recip_alpha = at(schedule_.sqrt_recip_alphas);
  c.beta = at(schedule_.betas);
  c.sqrt_one_minus_ac = at(schedule_.sqrt_one_minus_alphas_cumprod);
  c.sigma = coef(std::sqrt(schedule_.posterior_variance[static_cast<std::size_t>(t)]), B, dev);
  // Algorithm 2 returns the mean at the last step: no draw there. Otherwise the
  // counters are reserved as gen.randn would and the noise is drawn in the step.
  if (t == 0) return kernels::p_sample_step(x_t, eps, Tensor(), c);
  return kernels::p_sample_step_philox(x_t, eps, c, gen.seed(), gen.reserve_at(x_t.numel()));
}

Tensor GaussianDiffusion::p_sample_loop(Denoiser& model, const Shape& shape, Generator& gen,
                                        const std::function<void(int t, const Tensor& x)>& on_step,
                                        Device dev) const {
  const FrozenWeights frozen_weights;  // the weights stay fixed for the chain (models/frozen_weights.h)
  check_batch("p_sample_loop", model, shape);
  Tensor x = gen.randn(shape, dev);
  Tensor x0_pred;  // undefined at the first step, as lucidrains' x_start = None
  const bool self_cond = model.self_condition();
  for (int t = schedule_.T - 1; t >= 0; --t) {
    Tensor next_x0;
    x = p_sample(model, x, t, gen, self_cond ? &next_x0 : nullptr, self_cond ? x0_pred : Tensor());
    x0_pred = next_x0;
    if (on_step) on_step(t, x);
  }
  return x;
}

Tensor GaussianDiffusion::p_sample_device_t(Denoiser& model, const Tensor& x_t, const Tensor& t_dev, Generator& gen,
                                            Tensor* x0_pred_out, const Tensor& x_self_cond) const {
  const char* op = "p_sample_device_t";
  DD_CHECK(x_t.defined(), op, ": x_t is undefined");
  check_batch(op, model, x_t.shape());
  DD_CHECK(t_dev.defined() && t_dev.numel() == 1 && t_dev.device() == x_t.device(), op, ": t_dev ",
           t_dev.defined() ? describe(t_dev) : std::string("undefined"), " must be one float on x_t's device");
  const Device dev = x_t.device();
  const int64_t B = x_t.dim(0);
  const Tensor tt = kernels::broadcast_timestep(t_dev, B);
  const auto at = [&](const std::vector<double>& buffer) { return kernels::gather_timesteps(table(buffer, dev), tt); };

  ag::NoGrad no_grad;
  const Tensor eps = eps_prediction(model, x_t, tt, x_self_cond);
  if (x0_pred_out)
    *x0_pred_out = kernels::predict_x0(x_t, eps, at(schedule_.sqrt_recip_alphas_cumprod),
                                       at(schedule_.sqrt_recipm1_alphas_cumprod), /*clamp=*/true);
  kernels::PSampleCoefs c;
  c.sqrt_recip_alpha = at(schedule_.sqrt_recip_alphas);
  c.beta = at(schedule_.betas);
  c.sqrt_one_minus_ac = at(schedule_.sqrt_one_minus_alphas_cumprod);
  c.sigma = at(posterior_std_);
  return kernels::p_sample_step_philox(x_t, eps, c, gen.seed(), gen.reserve_at(x_t.numel()));
}

Tensor GaussianDiffusion::p_sample_loop_graphed(Denoiser& model, const Shape& shape, Generator& gen,
                                                const std::function<void(int t, const Tensor& x)>& on_step,
                                                Device dev) const {
  const FrozenWeights frozen_weights;  // the weights stay fixed for the chain (models/frozen_weights.h)
  check_batch("p_sample_loop_graphed", model, shape);
  DD_CHECK(dev == Device::CUDA, "p_sample_loop_graphed: CUDA graphs need a CUDA device, got ", device_name(dev));
  const bool self_cond = model.self_condition();
  Tensor x = gen.randn(shape, dev);
  Tensor x0_pred;
  int t = schedule_.T - 1;
  if (t >= 1) {  // eager first step
    Tensor next_x0;
    x = p_sample(model, x, t, gen, self_cond ? &next_x0 : nullptr, Tensor());
    x0_pred = next_x0;
    if (on_step) on_step(t, x);
    --t;
  }
  if (t >= 1) {
    for (const auto* b : {&schedule_.sqrt_recip_alphas_cumprod, &schedule_.sqrt_recipm1_alphas_cumprod,
                          &schedule_.sqrt_recip_alphas, &schedule_.betas, &schedule_.sqrt_one_minus_alphas_cumprod,
                          &posterior_std_, &eps_x_, &eps_out_})
      if (!b->empty()) table(*b, dev);  // uploaded now: a capture uploads nothing
    // The graph's state: the chain's x and x0 estimate live in fixed buffers it reads and rewrites.
    Tensor x_in = x.clone(), sc_in = self_cond ? x0_pred.clone() : Tensor();
    Tensor t_dev = Tensor::zeros({1}, dev), base = Tensor::zeros({1}, dev, DType::I64);
    CudaGraph graph;
    uint64_t blocks = 0;
    for (; t >= 1; --t) {
      const float tf = static_cast<float>(t);
      const uint64_t start = gen.offset();
      cuda_mem::write_small(t_dev.raw_data(), &tf, sizeof tf);
      cuda_mem::write_small(base.raw_data(), &start, sizeof start);
      if (!graph.captured()) {
        gen.anchor(static_cast<const uint64_t*>(base.raw_data()));
        try {
          graph.capture([&] {
            Tensor next_x0;
            const Tensor out = p_sample_device_t(model, x_in, t_dev, gen, self_cond ? &next_x0 : nullptr, sc_in);
            x_in.copy_from(out);
            if (self_cond) sc_in.copy_from(next_x0);
          });
        } catch (...) {
          gen.unanchor();
          throw;
        }
        gen.unanchor();
        blocks = gen.offset() - start;
      } else {
        gen.skip(blocks);
      }
      graph.replay();
      if (on_step) on_step(t, x_in);
    }
    x = x_in;
    x0_pred = sc_in;
  }
  Tensor last_x0;  // t == 0: the mean, no draw
  x = p_sample(model, x, 0, gen, self_cond ? &last_x0 : nullptr, self_cond ? x0_pred : Tensor());
  if (on_step) on_step(0, x);
  return x;
}

}  // namespace dd::models
