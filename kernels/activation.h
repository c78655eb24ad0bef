#pragma once
// Pointwise activations: SiLU (ResNet blocks, time MLP input), exact-erf GELU (nn.GELU() in the
// time MLP) and ReLU (Inception-v3 for FID). Backward takes the forward input.
#include "engine/tensor.h"

namespace dd::kernels {

Tensor silu_forward(const Tensor& x);                      // x * sigmoid(x)
Tensor silu_backward(const Tensor& x, const Tensor& dy);   // dy * s * (1 + x (1 - s))
Tensor gelu_forward(const Tensor& x);                      // 0.5 x (1 + erf(x / sqrt 2))
Tensor gelu_backward(const Tensor& x, const Tensor& dy);   // dy * (Phi(x) + x phi(x))
Tensor relu_forward(const Tensor& x);                      // max(x, 0); NaN stays NaN, as torch
Tensor relu_backward(const Tensor& x, const Tensor& dy);   // dy where x > 0, else 0 (torch's rule at 0)

namespace cpu {
Tensor silu_forward(const Tensor& x);
Tensor silu_backward(const Tensor& x, const Tensor& dy);
Tensor gelu_forward(const Tensor& x);
Tensor gelu_backward(const Tensor& x, const Tensor& dy);
Tensor relu_forward(const Tensor& x);
Tensor relu_backward(const Tensor& x, const Tensor& dy);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor silu_forward(const Tensor& x);
Tensor silu_backward(const Tensor& x, const Tensor& dy);
Tensor gelu_forward(const Tensor& x);
Tensor gelu_backward(const Tensor& x, const Tensor& dy);
Tensor relu_forward(const Tensor& x);
Tensor relu_backward(const Tensor& x, const Tensor& dy);
}  // namespace cuda
#endif

}  // namespace dd::kernels
