#pragma once
#include "autograd/var.h"
#include "kernels/pool2d.h"

namespace dd::ag {

// NHWC pools (kernels/pool2d.h): [B, H, W, C] -> [B, Ho, Wo, C].
Var max_pool2d(const Var& x, const kernels::Pool2dGeometry& g);
Var avg_pool2d(const Var& x, const kernels::Pool2dGeometry& g);
// adaptive_avg_pool2d(x, 1) flattened: [B, H, W, C] -> [B, C].
Var global_avg_pool(const Var& x);

}  // namespace dd::ag
