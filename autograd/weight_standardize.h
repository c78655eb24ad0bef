#pragma once
#include "autograd/var.h"

namespace dd::ag {

// Per-output-channel standardised weight (see kernels/weight_standardize.h);
// the U-Net's Block conv is conv2d(x, weight_standardize(w), b, 1).
Var weight_standardize(const Var& w, float eps = 1e-5f);

}  // namespace dd::ag
