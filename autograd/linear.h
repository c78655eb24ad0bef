#pragma once
#include "autograd/var.h"

namespace dd::ag {

// x [M, K], w [N, K] (PyTorch layout), bias [N] or Var() for none: x w^T + b.
Var linear(const Var& x, const Var& w, const Var& bias);

}  // namespace dd::ag
