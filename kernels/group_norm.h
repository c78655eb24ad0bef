#pragma once
// GroupNorm as nn.GroupNorm(groups, C, eps, affine=True), channels last:
// x is [B, S..., C] (NHWC activations, or any rank >= 2); statistics are taken
// per (batch, group) over every spatial position and the C/G channels of the
// group, with the biased variance. GroupNorm(1, C) is the U-Net's PreNorm and
// the LinearAttention output norm; GroupNorm(8, C) the ResNet blocks'.
#include <cstdint>

#include "engine/tensor.h"

namespace dd::kernels {

struct GroupNormOut {
  Tensor y;     // same shape as x
  Tensor mean;  // [B, G], saved for the backward
  Tensor rstd;  // [B, G], 1 / sqrt(var + eps)
};

struct GroupNormGrads {
  Tensor dx;      // same shape as x
  Tensor dgamma;  // [C]
  Tensor dbeta;   // [C]
};

// y_bf16: y stored as bf16, each value rounded (nearest even) from the fp32 one, for a consumer that
// rounds it to bf16 anyway (the U-Net's PreNorm, read by the attentions' qkv conv under BF16). The
// CUDA kernels write it so; the CPU rounds y.
GroupNormOut group_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                float eps = 1e-5f, bool y_bf16 = false);
// mean and rstd are the forward's; the group count is read from their shape. x is F32 or BF16 (its
// bf16 copy: the gradients at the rounded x, with the exact x's statistics); dx is F32 either way.
GroupNormGrads group_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& dy);

namespace cpu {
GroupNormOut group_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                float eps, bool y_bf16 = false);
GroupNormGrads group_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& dy);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
GroupNormOut group_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                float eps, bool y_bf16 = false);
GroupNormGrads group_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& dy);
// Which kernels group_norm and group_norm_act (its forward without sums from a conv's epilogue,
// and its backward) run: one block per (batch, group) (kernels/cuda/group_norm_per_group.cuh), or
// the two-pass channel sums. Auto: a block per group where a group's channels fill a 32-byte
// sector at each position (8 or more), as the U-Net's GroupNorm(4, 64..512) and GroupNorm(1, C)
// do; two-pass below, where a warp's reads of 4-channel groups would use half of each sector.
// Tests and bench_group_norm force each; set it between ops, not while they run.
enum class GroupNormPath { Auto, PerGroup, TwoPass };
void set_group_norm_path(GroupNormPath p);
// Whether a group of D channels runs a block per group under the current setting.
bool group_norm_per_group(int64_t D);
}  // namespace cuda
#endif

}  // namespace dd::kernels
