#pragma once
// nn.Upsample(scale_factor=2, mode="nearest") on NHWC activations (the U-Net's
// Upsample before its 3x3 conv): y[b, 2h+i, 2w+j, :] = x[b, h, w, :].
#include "engine/tensor.h"

namespace dd::kernels {

Tensor upsample2x_forward(const Tensor& x);    // [B,H,W,C] -> [B,2H,2W,C]
Tensor upsample2x_backward(const Tensor& dy);  // [B,2H,2W,C] -> [B,H,W,C]: sum of each 2x2 block

namespace cpu {
Tensor upsample2x_forward(const Tensor& x);
Tensor upsample2x_backward(const Tensor& dy);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor upsample2x_forward(const Tensor& x);
Tensor upsample2x_backward(const Tensor& dy);
}  // namespace cuda
#endif

}  // namespace dd::kernels
