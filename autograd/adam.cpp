#include "autograd/adam.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/error.h"
#include "kernels/multi_tensor.h"

namespace dd::ag {

Adam::Adam(std::vector<Var> params, kernels::AdamHyper hyper) : params_(std::move(params)), hyper_(hyper) {
  DD_CHECK(hyper_.lr >= 0.0f, "Adam: invalid learning rate ", hyper_.lr);
  DD_CHECK(hyper_.beta1 >= 0.0f && hyper_.beta1 < 1.0f, "Adam: invalid beta1 ", hyper_.beta1);
  DD_CHECK(hyper_.beta2 >= 0.0f && hyper_.beta2 < 1.0f, "Adam: invalid beta2 ", hyper_.beta2);
  DD_CHECK(hyper_.eps >= 0.0f, "Adam: invalid eps ", hyper_.eps);
  steps_.assign(params_.size(), 0);
  m_.reserve(params_.size());
  v_.reserve(params_.size());
  for (const Var& p : params_) {
    DD_CHECK(p.defined() && p.requires_grad(), "Adam: every parameter must require grad");
    m_.push_back(Tensor::zeros(p.shape(), p.value().device()));
    v_.push_back(Tensor::zeros(p.shape(), p.value().device()));
  }
}

void Adam::step() { step(Tensor()); }

void Adam::step(const Tensor& grad_scale) {
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
  for (const auto& [step, slots] : groups) {
    if (grad_scale.defined())
      kernels::adam_update_multi_scaled(slots, kernels::adam_scalars(hyper_, step), grad_scale);
    else
      kernels::adam_update_multi(slots, kernels::adam_scalars(hyper_, step));
  }
}

void Adam::zero_grad() {
  for (const Var& p : params_) p.zero_grad();
}

double clip_grad_norm(const std::vector<Var>& params, double max_norm) {
  std::vector<Tensor> grads;
  for (const Var& p : params)
    if (p.has_grad()) grads.push_back(p.grad());
  const double norm = std::sqrt(kernels::sum_squares_multi(grads));
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    // Scaled in place: a gradient buffer shared with another tensor is copied first.
    grads.clear();
    for (const Var& p : params)
      if (p.has_grad()) grads.push_back(p.mutable_grad());
    kernels::scale_multi_(grads, static_cast<float>(coef));
  }
  return norm;
}

Tensor clip_grad_norm_factor(const std::vector<Var>& params, double max_norm) {
  DD_CHECK(!params.empty(), "clip_grad_norm_factor: no parameters");
  std::vector<Tensor> grads;
  for (const Var& p : params)
    if (p.has_grad()) grads.push_back(p.grad());
  return kernels::clip_coefficient_multi(grads, max_norm, params.front().value().device());
}

}  // namespace dd::ag
