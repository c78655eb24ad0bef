#include "models/ema.h"

#include <cmath>
#include <utility>
#include <vector>

#include "autograd/flat.h"
#include "engine/error.h"
#include "kernels/multi_tensor.h"

namespace dd::models {

Ema::Ema(std::vector<ag::Var> params, EmaConfig config, Tensor param_arena)
    : params_(std::move(params)), config_(config), param_arena_(std::move(param_arena)) {
  DD_CHECK(!params_.empty(), "ema: no parameters to average");
  DD_CHECK(config_.decay >= 0.0 && config_.decay <= 1.0, "ema: decay ", config_.decay, " must lie in [0, 1]");
  DD_CHECK(config_.update_every >= 1, "ema: update_every ", config_.update_every, " must be >= 1");
  DD_CHECK(config_.update_after_step >= 0, "ema: update_after_step ", config_.update_after_step,
           " must be >= 0");
  DD_CHECK(config_.inv_gamma > 0.0 && config_.power > 0.0, "ema: warmup inv_gamma ", config_.inv_gamma,
           " and power ", config_.power, " must be > 0");
  shadow_.reserve(params_.size());
  int64_t total = 0;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    DD_CHECK(params_[i].defined(), "ema: parameter ", i, " is undefined");
    DD_CHECK(params_[i].value().device() == params_[0].value().device(), "ema: parameter ", i, " ",
             describe(params_[i].value()), " is not on ", device_name(params_[0].value().device()), " like the first");
    total += params_[i].value().numel();
  }
  if (total > 0) shadow_arena_ = Tensor::empty({total}, params_[0].value().device());
  int64_t off = 0;
  for (const ag::Var& p : params_) {
    Tensor s = total > 0 ? Tensor::view_of(shadow_arena_, off, p.shape()) : p.value().clone();
    if (total > 0) s.copy_from(p.value());
    shadow_.push_back(s);
    off += p.value().numel();
  }
  if (param_arena_.defined())
    DD_CHECK(ag::tiles_flat(param_arena_, params_.size(),
                            [&](std::size_t i) -> const Tensor& { return params_[i].value(); }),
             "ema: the parameters are not consecutive views of the parameter arena ", describe(param_arena_));
}

double Ema::decay_at(int64_t step) const {
  if (!config_.warmup) return config_.decay;
  const double n = static_cast<double>(step - config_.update_after_step - 1);
  if (n <= 0.0) return 0.0;
  const double v = 1.0 - std::pow(1.0 + n / config_.inv_gamma, -config_.power);
  return v < 0.0 ? 0.0 : (v > config_.decay ? config_.decay : v);
}

void Ema::copy_params() {
  for (std::size_t i = 0; i < params_.size(); ++i) shadow_[i].copy_from(params_[i].value());
}

void Ema::update(int64_t step) {
  DD_CHECK(step >= 0, "ema update: step ", step, " must be >= 0");
  DD_CHECK(step > last_step_, "ema update: step ", step, " does not follow the last step ", last_step_,
           " (steps must increase)");
  last_step_ = step;
  if (step % config_.update_every != 0) return;
  if (step <= config_.update_after_step) {
    copy_params();
    return;
  }
  if (!initted_) {
    copy_params();
    initted_ = true;
  }
  // torch's lerp_(end, w) with w = 1 - decay rounded to float as torch's scalar:
  // self + w (end - self) for w < 0.5, else end - (1 - w)(end - self).
  const float w = static_cast<float>(1.0 - decay_at(step));
  std::vector<Tensor> values;
  values.reserve(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].value();
    DD_CHECK(p.shape() == shadow_[i].shape(), "ema update: parameter ", i, " is now ", describe(p),
             " but its shadow is ", describe(shadow_[i]));
    values.push_back(p);
  }
  // One tensor when both sides are still their arenas (a ParamSet::to since would have moved them).
  if (ag::tiles_flat(param_arena_, values) && ag::tiles_flat(shadow_arena_, shadow_))
    kernels::ema_update_multi({shadow_arena_}, {param_arena_}, w);
  else
    kernels::ema_update_multi(shadow_, values, w);
  ++averaged_;
}

void Ema::check_targets(const char* op, const std::vector<ag::Var>& params) const {
  DD_CHECK(params.size() == shadow_.size(), op, ": ", params.size(), " parameters given, the EMA holds ",
           shadow_.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    DD_CHECK(params[i].defined(), op, ": parameter ", i, " is undefined");
    DD_CHECK(params[i].value().shape() == shadow_[i].shape(), op, ": parameter ", i, " ",
             describe(params[i].value()), " does not match its shadow ", describe(shadow_[i]));
  }
}

void Ema::copy_to(const std::vector<ag::Var>& params) const {
  check_targets("ema copy_to", params);
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor dst = params[i].value();  // shares storage: writes reach the parameter
    dst.copy_from(shadow_[i]);
  }
}

void Ema::swap() {
  check_targets("ema swap", params_);
  // Contents move, not handles: anything sharing a parameter's storage (the
  // optimizer, a model's layers) sees the swapped weights.
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor dst = params_[i].value();
    const Tensor tmp = dst.clone();
    dst.copy_from(shadow_[i]);
    shadow_[i].copy_from(tmp);
  }
}

EmaState Ema::state() const {
  EmaState s;
  for (const Tensor& t : shadow_) s.shadow.push_back(t.clone());
  s.last_step = last_step_;
  s.averaged = averaged_;
  s.initted = initted_;
  return s;
}

void Ema::load_state(const EmaState& s) {
  DD_CHECK(s.shadow.size() == shadow_.size(), "ema load_state: ", s.shadow.size(),
           " shadow tensors given, the EMA tracks ", shadow_.size(), " parameters");
  for (std::size_t i = 0; i < shadow_.size(); ++i) {
    DD_CHECK(s.shadow[i].defined() && s.shadow[i].shape() == shadow_[i].shape(), "ema load_state: shadow ", i,
             " ", s.shadow[i].defined() ? describe(s.shadow[i]) : std::string("undefined"),
             " does not match parameter ", describe(shadow_[i]));
  }
  DD_CHECK(s.last_step >= -1 && s.averaged >= 0, "ema load_state: invalid counters last_step ", s.last_step,
           ", averaged ", s.averaged);
  for (std::size_t i = 0; i < shadow_.size(); ++i) shadow_[i].copy_from(s.shadow[i]);
  last_step_ = s.last_step;
  averaged_ = s.averaged;
  initted_ = s.initted;
}

}  // namespace dd::models
