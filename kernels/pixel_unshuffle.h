#pragma once
// The U-Net's Downsample rearrange, einops "b c (h p1) (w p2) -> b (c p1 p2) h w"
// with p1 = p2 = 2, in NHWC with PyTorch's channel order:
//   y[b, h, w, c*4 + p1*2 + p2] = x[b, 2h+p1, 2w+p2, c]
#include "engine/tensor.h"

namespace dd::kernels {

Tensor pixel_unshuffle_forward(const Tensor& x);    // [B,H,W,C] -> [B,H/2,W/2,4C]; H, W even
Tensor pixel_unshuffle_backward(const Tensor& dy);  // the inverse permutation: [B,h,w,4C] -> [B,2h,2w,C]

namespace cpu {
Tensor pixel_unshuffle_forward(const Tensor& x);
Tensor pixel_unshuffle_backward(const Tensor& dy);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor pixel_unshuffle_forward(const Tensor& x);
Tensor pixel_unshuffle_backward(const Tensor& dy);
}  // namespace cuda
#endif

}  // namespace dd::kernels
