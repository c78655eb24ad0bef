#include "autograd/loss.h"

#include "kernels/elementwise.h"

namespace dd::ag {

Var loss(const Var& pred, const Var& target, kernels::LossType type) {
  Var y(kernels::loss_forward(pred.value(), target.value(), type), needs_grad({&pred, &target}));
  if (y.requires_grad())
    Tape::current().record([pred, target, y = y.grad_ref(), type] {
      if (!y.has_grad()) return;
      Tensor dpred = kernels::loss_backward(pred.value(), target.value(), type, y.grad());
      if (target.requires_grad()) target.accumulate_grad(kernels::affine(dpred, -1.0f, 0.0f));
      if (pred.requires_grad()) pred.accumulate_grad(dpred);
    });
  return y;
}

Var weighted_loss(const Var& pred, const Var& target, kernels::LossType type, const Tensor& weights) {
  Var y(kernels::loss_forward_weighted(pred.value(), target.value(), type, weights), needs_grad({&pred, &target}));
  if (y.requires_grad())
    Tape::current().record([pred, target, y = y.grad_ref(), type, weights] {
      if (!y.has_grad()) return;
      Tensor dpred = kernels::loss_backward_weighted(pred.value(), target.value(), type, weights, y.grad());
      if (target.requires_grad()) target.accumulate_grad(kernels::affine(dpred, -1.0f, 0.0f));
      if (pred.requires_grad()) pred.accumulate_grad(dpred);
    });
  return y;
}

}  // namespace dd::ag
