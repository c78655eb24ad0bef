#pragma once
// Layout conversions at the PyTorch boundary: our activations are NHWC and conv weights OHWI;
// PyTorch files hold NCHW activations and OIHW weights.
#include "engine/tensor.h"

namespace dd::models {

Tensor nchw_to_nhwc(const Tensor& x);
Tensor nhwc_to_nchw(const Tensor& x);
Tensor ohwi_to_oihw(const Tensor& w);
Tensor oihw_to_ohwi(const Tensor& w);

}  // namespace dd::models
