#pragma once
#include "autograd/var.h"
#include "kernels/loss.h"

namespace dd::ag {

// Mean L1 / L2 / Huber loss of pred against target: a scalar Var. The gradient
// reaches pred, and target too when it requires one (the negative of pred's).
Var loss(const Var& pred, const Var& target, kernels::LossType type);

}  // namespace dd::ag
