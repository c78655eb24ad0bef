#pragma once
// Per-(batch, channel) vectors broadcast over the positions of an NHWC
// activation: x [B, S..., C] (rank >= 2, any spatial dims) with v [B, C];
// PyTorch's x * v[:, :, None, None] in NCHW. Used for the ResNet block's time
// conditioning. The [B, C] gradients sum over positions with fixed chunking,
// so they are bitwise deterministic.
#include "engine/tensor.h"

namespace dd::kernels {

Tensor add_bc(const Tensor& x, const Tensor& v);  // x + v[b, c]
Tensor mul_bc(const Tensor& x, const Tensor& v);  // x * v[b, c]
// The seed's Block: x * (scale + 1) + shift, one pass instead of three.
Tensor scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift);

// dv of add_bc: dy summed over positions, [B, C] (dx is dy itself).
Tensor add_bc_backward(const Tensor& dy);
struct MulBcGrads {
  Tensor dx;  // dy * v[b, c]
  Tensor dv;  // sum over positions of dy * x
};
MulBcGrads mul_bc_backward(const Tensor& x, const Tensor& v, const Tensor& dy);
struct ScaleShiftGrads {
  Tensor dx;      // dy * (scale + 1)
  Tensor dscale;  // sum over positions of dy * x
  Tensor dshift;  // sum over positions of dy
};
ScaleShiftGrads scale_shift_backward(const Tensor& x, const Tensor& scale, const Tensor& dy);

namespace cpu {
Tensor add_bc(const Tensor& x, const Tensor& v);
Tensor mul_bc(const Tensor& x, const Tensor& v);
Tensor scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift);
Tensor add_bc_backward(const Tensor& dy);
MulBcGrads mul_bc_backward(const Tensor& x, const Tensor& v, const Tensor& dy);
ScaleShiftGrads scale_shift_backward(const Tensor& x, const Tensor& scale, const Tensor& dy);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor add_bc(const Tensor& x, const Tensor& v);
Tensor mul_bc(const Tensor& x, const Tensor& v);
Tensor scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift);
Tensor add_bc_backward(const Tensor& dy);
MulBcGrads mul_bc_backward(const Tensor& x, const Tensor& v, const Tensor& dy);
ScaleShiftGrads scale_shift_backward(const Tensor& x, const Tensor& scale, const Tensor& dy);
}  // namespace cuda
#endif

}  // namespace dd::kernels
