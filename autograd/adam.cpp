#include "autograd/adam.h"

#include <cmath>

#include "engine/error.h"
#include "kernels/elementwise.h"

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

void Adam::step() {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Var& p = params_[i];
    if (!p.has_grad()) continue;
    const kernels::AdamStepScalars s = kernels::adam_scalars(hyper_, ++steps_[i]);
    kernels::adam_update(p.value(), p.grad(), m_[i], v_[i], s);
  }
}

void Adam::zero_grad() {
  for (const Var& p : params_) p.zero_grad();
}

double clip_grad_norm(const std::vector<Var>& params, double max_norm) {
  double sq = 0.0;
  for (const Var& p : params)
    if (p.has_grad()) sq += kernels::sum_squares(p.grad());
  const double norm = std::sqrt(sq);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (const Var& p : params)
      if (p.has_grad()) kernels::scale_(p.mutable_grad(), static_cast<float>(coef));
  return norm;
}

}  // namespace dd::ag
