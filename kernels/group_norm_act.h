#pragma once
// The seed U-Net Block's tail as one op: y = SiLU(h * (scale + 1) + shift) with
// h = GroupNorm(groups)(x) (see kernels/group_norm.h), or y = SiLU(h) without
// the time scale/shift. One pass for the statistics, one for y; the backward
// recomputes h and the pre-activation from x, mean and rstd, so the forward
// saves nothing but the [B, G] statistics.
#include <cstdint>
#include <string>
#include <vector>

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

// The operand checks of both entry points for an x of shape x (x_desc, e.g. "x [2,8,8,64]", names it
// in the errors):
// non-empty [B, ..., C], groups dividing C, gamma and beta [C], scale and shift both [B, C] or both
// undefined. kernels/conv2d_norm_act.cpp checks its conv's output shape with it before the conv runs.
void check_group_norm_act_operands(const char* op, const Shape& x, const std::string& x_desc, const Tensor& gamma,
                                   const Tensor& beta, const Tensor& scale, const Tensor& shift, int64_t groups);

// scale and shift are [B, C] (both defined) or both undefined.
GroupNormActOut group_norm_act_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& scale, const Tensor& shift, int64_t groups,
                                       float eps = 1e-5f);
// mean and rstd are the forward's; the group count is read from their shape. x is F32 or BF16 (its
// bf16 copy, which the forward's x_bf16 gives: the gradients at the rounded x, with the statistics
// of the exact one); the gradients are F32 either way.
GroupNormActGrads group_norm_act_backward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& scale, const Tensor& shift, const Tensor& mean,
                                          const Tensor& rstd, const Tensor& dy);

namespace cpu {
GroupNormActOut group_norm_act_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& scale, const Tensor& shift, int64_t groups, float eps);
GroupNormActGrads group_norm_act_backward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& scale, const Tensor& shift, const Tensor& mean,
                                          const Tensor& rstd, const Tensor& dy);
// The forward from x's per-(b, c) sums and sums of squares, sums[k * B*C + b*C + c] in double
// (channel_sums<2>'s layout; kernels/cpu/conv2d's conv2d_forward_sums gives them): no pass over x
// for the statistics. With the sums group_norm_act_forward takes, the same bits. With x_bf16 it also
// sets *x_bf16 to x rounded to bf16, written in the pass that writes y (what the backward keeps
// under Precision::BF16, kernels/conv2d_norm_act.h).
GroupNormActOut group_norm_act_forward_sums(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                            const Tensor& scale, const Tensor& shift, int64_t groups, float eps,
                                            const std::vector<double>& sums, Tensor* x_bf16 = nullptr);
// The backward that also writes dx_column_sums[c] (unless null) = sum over every position of dx[.., c],
// bitwise column_sums(dx) (kernels/cpu/gemm.h), taken while each row of dx is written: the bias
// gradient of the conv that produced x, without its pass over dx.
GroupNormActGrads group_norm_act_backward_dsum(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                               const Tensor& scale, const Tensor& shift, const Tensor& mean,
                                               const Tensor& rstd, const Tensor& dy, float* dx_column_sums);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
GroupNormActOut group_norm_act_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& scale, const Tensor& shift, int64_t groups, float eps);
GroupNormActGrads group_norm_act_backward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& scale, const Tensor& shift, const Tensor& mean,
                                          const Tensor& rstd, const Tensor& dy);
// cpu::group_norm_act_forward_sums on the device: sums holds the 2*B*C doubles sums[k * B*C + b*C + c]
// as a CUDA F32 tensor of 4*B*C words (cuda::conv2d_forward_tc_sums gives them). With the sums
// group_norm_act_forward takes (its channel_sums<2> of x), the same bits. x_bf16 as the CPU's.
// y_bf16: y stored as bf16, each value rounded (nearest even) from the fp32 one, in the same pass.
GroupNormActOut group_norm_act_forward_sums(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                            const Tensor& scale, const Tensor& shift, int64_t groups, float eps,
                                            const Tensor& sums, Tensor* x_bf16 = nullptr, bool y_bf16 = false);
}  // namespace cuda
#endif

}  // namespace dd::kernels
