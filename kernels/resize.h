#pragma once
// Bilinear resizing of NHWC images: torch's F.interpolate(x, size=(out_h, out_w), mode="bilinear",
// align_corners=False) with antialias off (pytorch-fid's resize of its inputs to 299x299), up or
// down. Forward only: nothing in the engine differentiates through it.
//
// torch's CPU kernel, reproduced in its arithmetic (kernels/resize_math.h): per axis
//   scale = float(in) / float(out)                           (float division)
//   src   = double(scale) * (dst + 0.5) - 0.5, clamped below at 0   (exact in double)
//   i0 = (int)src, i1 = i0 + (i0 < in - 1), l1 = float(src - i0), l0 = 1.0f - l1
// (an axis whose size does not change copies: i0 = i1 = dst, l0 = 1, l1 = 0), then
//   t0 = fma(x[i0h][i0w], l0w, x[i0h][i1w] * l1w), t1 = the same on row i1h,
//   y  = fma(t0, l0h, t1 * l1h)
// which is what torch 1.13's separable kernel computes on a contiguous NCHW float tensor when
// built for AVX2 (its `t0 * w0 + t1 * w1` contracted to an FMA on the first term). Measured against
// Debian's torch 1.13 on this project's CPU: bit-identical for C = 3; for C = 1 torch takes its
// channels-last kernel, another order, within 1 ulp (tests/test_resize.cpp). CPU and CUDA give the
// same bits.
#include "engine/tensor.h"

namespace dd::kernels {

Tensor resize_bilinear(const Tensor& x, int out_h, int out_w);  // [B,H,W,C] -> [B,out_h,out_w,C]

namespace cpu {
Tensor resize_bilinear(const Tensor& x, int out_h, int out_w);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor resize_bilinear(const Tensor& x, int out_h, int out_w);
}  // namespace cuda
#endif

}  // namespace dd::kernels
