#pragma once
#include "autograd/var.h"

namespace dd::ag {

// x NHWC [B, H, W, Ci], w OHWI [Co, K, K, Ci], bias [Co] or Var() for none.
Var conv2d(const Var& x, const Var& w, const Var& bias, int padding);

}  // namespace dd::ag
