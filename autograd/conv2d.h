#pragma once
#include "autograd/var.h"
#include "kernels/conv2d.h"

namespace dd::ag {

// x NHWC [B, H, W, Ci], w OHWI [Co, K, K, Ci], bias [Co] or Var() for none.
Var conv2d(const Var& x, const Var& w, const Var& bias, int padding);
// With a stride, per-side padding and w [Co, KH, KW, Ci], KH != KW allowed (kernels::Conv2dGeometry).
Var conv2d(const Var& x, const Var& w, const Var& bias, const kernels::Conv2dGeometry& geo);

}  // namespace dd::ag
