#pragma once
// The seed U-Net Block as one op: h = conv2d(x, w, bias, padding) (kernels/conv2d.h), then
// y = group_norm_act(h, gamma, beta, scale, shift, groups) (kernels/group_norm_act.h). On the CPU
// the forward sums GroupNorm's statistics from each chunk of the conv's output while it is in cache,
// and the backward sums the conv's bias gradient from each row of dh as GroupNorm's backward
// writes it: neither reads the tensor again for them (each pass was one read of a Block's output,
// 38 of them a CIFAR-10 step). On CUDA under BF16 / TF32 the tensor-core conv's epilogue sums them
// (cuda::conv2d_forward_tc_sums); otherwise, and in the backward, it runs the two ops.
// The results are the two ops' up to the order of the statistics' double sums: h, and
// every gradient for given mean and rstd, are bitwise theirs. x comes in channel parts, as
// conv2d_forward_parts' (kernels/conv2d.h): the U-Net's skip concatenations are never built on the CPU.
//
// bf16_h: the forward returns h rounded to bf16 instead of h (written in the pass that writes y, so it
// costs no pass of its own), and the backward takes that copy: under Precision::BF16 the autograd op
// keeps half the bytes of every Block's conv output, as autocast keeps a bf16 conv output. y, mean and
// rstd are the same bits either way (the statistics come from the exact h); the gradients are those
// at the rounded h, within bf16's rounding of h of the exact ones.
//
// bf16_y: y is stored as bf16 (nearest even), bitwise y.to(DType::BF16), for a consumer that rounds
// it to bf16 anyway: a ResnetBlock's first Block, whose one reader is the second Block's conv, under
// BF16 (models/unet.cpp). On CUDA under BF16 / TF32 the pass that writes y writes it so; elsewhere y
// is rounded after.
#include <cstdint>
#include <vector>

#include "engine/tensor.h"
#include "kernels/group_norm_act.h"

namespace dd::kernels {

struct Conv2dNormActOut {
  Tensor h;            // the conv's output (in bf16 with bf16_h), which the backward needs
  GroupNormActOut n;   // y, mean and rstd of group_norm_act(h)
};

struct Conv2dNormActGrads {
  std::vector<Tensor> dx;                 // the conv's, one per part of x, when asked for
  Tensor dw, dbias;                       // the conv's; each undefined unless asked for
  Tensor dgamma, dbeta, dscale, dshift;   // group_norm_act's (dscale and dshift with scale/shift)
};

Conv2dNormActOut conv2d_group_norm_act_forward(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias, int padding,
                                               const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                                               const Tensor& shift, int64_t groups, float eps = 1e-5f,
                                               bool bf16_h = false, bool bf16_y = false);
// h (F32 or BF16), mean and rstd are the forward's.
Conv2dNormActGrads conv2d_group_norm_act_backward(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& h, int padding,
                                                  const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                                                  const Tensor& shift, const Tensor& mean, const Tensor& rstd,
                                                  const Tensor& dy, bool need_dx, bool need_dw, bool need_dbias);

namespace cpu {
Conv2dNormActOut conv2d_group_norm_act_forward(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias, int padding,
                                               const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                                               const Tensor& shift, int64_t groups, float eps, bool bf16_h,
                                               bool bf16_y = false);
Conv2dNormActGrads conv2d_group_norm_act_backward(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& h, int padding,
                                                  const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                                                  const Tensor& shift, const Tensor& mean, const Tensor& rstd,
                                                  const Tensor& dy, bool need_dx, bool need_dw, bool need_dbias);
}  // namespace cpu

}  // namespace dd::kernels
