#pragma once
// The seed U-Net Block's tail as one op: y = SiLU(h * (scale + 1) + shift) with
// h = GroupNorm(groups)(x) (see kernels/group_norm.h), or y = SiLU(h) without
// the time scale/shift. One pass for the statistics, one for y; the backward
// recomputes h and the pre-activation from x, mean and rstd, so the forward
// saves nothing but the [B, G] statistics.
#include <cstdint>

#include "engine/tensor.h"

namespace dd::kernels {

struct GroupNormActOut {
  Tensor y;     // same shape as x
  Tensor mean;  // [B, G]
  Tensor rstd;  // [B, G], 1 / sqrt(var + eps)
};

struct GroupNormActGrads {
  Tensor dx;      // same shape as x
  Tensor dgamma;  // [C]
  Tensor dbeta;   // [C]
  Tensor dscale;  // [B, C]; undefined without scale/shift
  Tensor dshift;  // [B, C]; undefined without scale/shift
};

// scale and shift are [B, C] (both defined) or both undefined.
GroupNormActOut group_norm_act_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& scale, const Tensor& shift, int64_t groups,
                                       float eps = 1e-5f);
// mean and rstd are the forward's; the group count is read from their shape.
GroupNormActGrads group_norm_act_backward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& scale, const Tensor& shift, const Tensor& mean,
                                          const Tensor& rstd, const Tensor& dy);

namespace cpu {
GroupNormActOut group_norm_act_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& scale, const Tensor& shift, int64_t groups, float eps);
GroupNormActGrads group_norm_act_backward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& scale, const Tensor& shift, const Tensor& mean,
                                          const Tensor& rstd, const Tensor& dy);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
GroupNormActOut group_norm_act_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& scale, const Tensor& shift, int64_t groups, float eps);
GroupNormActGrads group_norm_act_backward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& scale, const Tensor& shift, const Tensor& mean,
                                          const Tensor& rstd, const Tensor& dy);
}  // namespace cuda
#endif

}  // namespace dd::kernels
