#include "autograd/adam.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "autograd/flat.h"
#include "engine/error.h"
#include "kernels/multi_tensor.h"

namespace dd::ag {

Adam::Adam(std::vector<Var> params, kernels::AdamHyper hyper, Tensor param_arena, Tensor grad_arena)
    : params_(std::move(params)),
      hyper_(hyper),
      param_arena_(std::move(param_arena)),
      grad_arena_(std::move(grad_arena)) {
  DD_CHECK(hyper_.lr >= 0.0f, "Adam: invalid learning rate ", hyper_.lr);
  DD_CHECK(hyper_.beta1 >= 0.0f && hyper_.beta1 < 1.0f, "Adam: invalid beta1 ", hyper_.beta1);
  DD_CHECK(hyper_.beta2 >= 0.0f && hyper_.beta2 < 1.0f, "Adam: invalid beta2 ", hyper_.beta2);
  DD_CHECK(hyper_.eps >= 0.0f, "Adam: invalid eps ", hyper_.eps);
  steps_.assign(params_.size(), 0);
  m_.reserve(params_.size());
  v_.reserve(params_.size());
  int64_t total = 0;
  for (const Var& p : params_) {
    DD_CHECK(p.defined() && p.requires_grad(), "Adam: every parameter must require grad");
    DD_CHECK(p.value().device() == params_.front().value().device(), "Adam: parameter ", describe(p.value()),
             " is not on ", device_name(params_.front().value().device()), " like the first");
    total += p.value().numel();
  }
  // The moments live in two arenas of the parameters' layout, so a flat step can run over them.
  if (total > 0) {
    const Device dev = params_.front().value().device();
    m_arena_ = Tensor::zeros({total}, dev);
    v_arena_ = Tensor::zeros({total}, dev);
  }
  int64_t off = 0;
  for (const Var& p : params_) {
    const Device dev = p.value().device();
    m_.push_back(total > 0 ? Tensor::view_of(m_arena_, off, p.shape()) : Tensor::zeros(p.shape(), dev));
    v_.push_back(total > 0 ? Tensor::view_of(v_arena_, off, p.shape()) : Tensor::zeros(p.shape(), dev));
    off += p.value().numel();
  }
  if (param_arena_.defined() || grad_arena_.defined()) {
    DD_CHECK(param_arena_.defined() && grad_arena_.defined(),
             "Adam: give both arenas (parameters and gradients) or neither");
    const std::size_t n = params_.size();
    DD_CHECK(tiles_flat(param_arena_, n, [&](std::size_t i) -> const Tensor& { return params_[i].value(); }),
             "Adam: the parameters are not consecutive views of the parameter arena ", describe(param_arena_));
    DD_CHECK(tiles_flat(grad_arena_, n, [&](std::size_t i) -> const Tensor& { return params_[i].grad_buffer(); }),
             "Adam: the parameters' grad buffers are not consecutive views of the gradient arena ",
             describe(grad_arena_));
  }
}

bool Adam::flat_ready() const {
  if (!param_arena_.defined() || params_.empty()) return false;
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (!params_[i].has_grad() || steps_[i] != steps_.front()) return false;
  // Checked every step (a few hundred pointer compares): a parameter moved by ParamSet::to or a
  // moment replaced by a checkpoint load falls back to the per-tensor path instead of being missed.
  const std::size_t n = params_.size();
  return tiles_flat(param_arena_, n, [&](std::size_t i) -> const Tensor& { return params_[i].value(); }) &&
         tiles_flat(grad_arena_, n, [&](std::size_t i) -> const Tensor& { return params_[i].grad(); }) &&
         tiles_flat(m_arena_, m_) && tiles_flat(v_arena_, v_);
}

void Adam::step() { step(Tensor()); }

void Adam::bind_step_scalars(Tensor scalars) {
  DD_CHECK(scalars.defined() && scalars.nbytes() >= sizeof(kernels::AdamStepScalars),
           "Adam::bind_step_scalars: expected kernels::adam_step_scalars_tensor's tensor, got ",
           scalars.defined() ? describe(scalars) : std::string("undefined"));
  DD_CHECK(param_arena_.defined() && scalars.device() == param_arena_.device(),
           "Adam::bind_step_scalars: needs the parameter arenas, on the scalars' device ", describe(scalars));
  bound_scalars_ = std::move(scalars);
  if (!one_.defined() || one_.device() != bound_scalars_.device()) one_ = Tensor::full({1}, 1.0f, bound_scalars_.device());
}

kernels::AdamStepScalars Adam::next_step_scalars() const {
  DD_CHECK(!steps_.empty(), "Adam: no parameters");
  return kernels::adam_scalars(hyper_, steps_.front() + 1);
}

void Adam::advance_step() {
  for (int64_t& st : steps_) ++st;
}

void Adam::step(const Tensor& grad_scale) {
  if (bound_scalars_.defined()) {
    DD_CHECK(flat_ready(), "Adam::step: bound to device step scalars (a CUDA graph step), but the flat update ",
             "cannot run: every parameter needs a gradient in the arena and one step count");
    last_flat_ = true;
    advance_step();
    // The scalars passed by value are the ones written for this step; the kernel reads the bound
    // tensor's (the same at capture, the replayed step's afterwards).
    kernels::adam_update_multi_scaled({{param_arena_, grad_arena_, m_arena_, v_arena_}},
                                      kernels::adam_scalars(hyper_, steps_.front()),
                                      grad_scale.defined() ? grad_scale : one_, bound_scalars_);
    return;
  }
  const auto update = [&](const std::vector<kernels::AdamSlot>& slots, int64_t step) {
    const kernels::AdamStepScalars sc = kernels::adam_scalars(hyper_, step);
    if (grad_scale.defined())
      kernels::adam_update_multi_scaled(slots, sc, grad_scale);
    else
      kernels::adam_update_multi(slots, sc);
  };
  last_flat_ = flat_ready();
  if (last_flat_) {
    for (int64_t& st : steps_) ++st;
    update({{param_arena_, grad_arena_, m_arena_, v_arena_}}, steps_.front());
    return;
  }
  // Parameters are grouped by their step count (normally one group), so each
  // group is a single multi-tensor update with one set of step scalars.
  std::vector<std::pair<int64_t, std::vector<kernels::AdamSlot>>> groups;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Var& p = params_[i];
    if (!p.has_grad()) continue;
    const int64_t step = ++steps_[i];
    auto it = std::find_if(groups.begin(), groups.end(), [step](const auto& g) { return g.first == step; });
    if (it == groups.end()) it = groups.insert(groups.end(), {step, {}});
    it->second.push_back({p.value(), p.grad(), m_[i], v_[i]});
  }
  for (const auto& [step, slots] : groups) update(slots, step);
}

void Adam::zero_grad() {
  for (const Var& p : params_) p.zero_grad();
}

namespace {
// The gradients as one tensor: grad_arena when every parameter has a gradient tiling it, else
// undefined.
Tensor flat_grads(const std::vector<Var>& params, const Tensor& grad_arena) {
  if (!grad_arena.defined() || params.empty()) return Tensor();
  for (const Var& p : params)
    if (!p.has_grad()) return Tensor();
  const bool ok =
      tiles_flat(grad_arena, params.size(), [&](std::size_t i) -> const Tensor& { return params[i].grad(); });
  return ok ? grad_arena : Tensor();
}

// What the norm is summed over: on the CPU always the per-tensor list (sum_squares_multi chunks
// its double sum per tensor; one flat tensor would change the bits and break bitwise resume),
// elsewhere the flat buffer when there is one.
std::vector<Tensor> norm_operands(const std::vector<Tensor>& grads, const Tensor& flat) {
  if (flat.defined() && flat.device() != Device::CPU) return {flat};
  return grads;
}
}  // namespace

double clip_grad_norm(const std::vector<Var>& params, double max_norm, const Tensor& grad_arena) {
  std::vector<Tensor> grads;
  for (const Var& p : params)
    if (p.has_grad()) grads.push_back(p.grad());
  const Tensor flat = flat_grads(params, grad_arena);
  const double norm = std::sqrt(kernels::sum_squares_multi(norm_operands(grads, flat)));
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0 && flat.defined()) {
    kernels::scale_multi_({flat}, static_cast<float>(coef));
  } else if (coef < 1.0) {
    // Scaled in place: a gradient buffer shared with another tensor is copied first.
    grads.clear();
    for (const Var& p : params)
      if (p.has_grad()) grads.push_back(p.mutable_grad());
    kernels::scale_multi_(grads, static_cast<float>(coef));
  }
  return norm;
}

Tensor clip_grad_norm_factor(const std::vector<Var>& params, double max_norm, const Tensor& grad_arena) {
  DD_CHECK(!params.empty(), "clip_grad_norm_factor: no parameters");
  std::vector<Tensor> grads;
  for (const Var& p : params)
    if (p.has_grad()) grads.push_back(p.grad());
  return kernels::clip_coefficient_multi(norm_operands(grads, flat_grads(params, grad_arena)), max_norm,
                                         params.front().value().device());
}

}  // namespace dd::ag
