#pragma once
// Weight standardisation (annotated-diffusion's WeightStandardizedConv2d): each
// output channel o of a weight w [O, ...] is normalised over all its elements,
//   w_hat[o, i] = (w[o, i] - mean_o) / sqrt(var_o + eps),  var biased (divides by n),
// with eps = 1e-5 (the float32 value there). The U-Net convolves with w_hat.
#include "engine/tensor.h"

namespace dd::kernels {

Tensor weight_standardize_forward(const Tensor& w, float eps = 1e-5f);
// dw from d(w_hat), with the statistics recomputed from w:
//   dw = rstd * (g - mean(g) - w_hat * mean(g * w_hat))  per output channel.
Tensor weight_standardize_backward(const Tensor& w, const Tensor& dw_hat, float eps = 1e-5f);

namespace cpu {
Tensor weight_standardize_forward(const Tensor& w, float eps);
Tensor weight_standardize_backward(const Tensor& w, const Tensor& dw_hat, float eps);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor weight_standardize_forward(const Tensor& w, float eps);
Tensor weight_standardize_backward(const Tensor& w, const Tensor& dw_hat, float eps);
}  // namespace cuda
#endif

}  // namespace dd::kernels
