#pragma once
#include "autograd/var.h"
#include "kernels/loss.h"

namespace dd::ag {

// Mean L1 / L2 / Huber loss of pred against target: a scalar Var. The gradient
// reaches pred, and target too when it requires one (the negative of pred's).
Var loss(const Var& pred, const Var& target, kernels::LossType type);
// The same with per-sample weights w ([B], no gradient): mean over every element of w[b] * term.
Var weighted_loss(const Var& pred, const Var& target, kernels::LossType type, const Tensor& weights);

}  // namespace dd::ag
