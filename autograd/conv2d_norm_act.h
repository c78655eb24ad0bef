#pragma once
#include <cstdint>
#include <vector>

#include "autograd/var.h"

namespace dd::ag {

// group_norm_act(conv2d(x, w, bias, padding), gamma, beta, scale, shift, groups) as one op
// (kernels/conv2d_norm_act.h): the U-Net Block. Keeps the conv's output and the [B, G]
// statistics for the backward, as the two ops would (under Precision::BF16 the conv's output, its
// inputs and a standardised weight as bf16 copies: autograd/conv2d_keep.h). x may come in channel
// parts (the conv of their concatenation, never built: kernels::conv2d_forward_parts).
// bf16_y: the output stored in bf16 (kernels/conv2d_norm_act.h), for a consumer that rounds it to
// bf16 anyway (a ResnetBlock's second Block's conv under BF16, models/unet.cpp); its gradient is fp32.
Var conv2d_group_norm_act(const std::vector<Var>& xs, const Var& w, const Var& bias, int padding, const Var& gamma,
                          const Var& beta, const Var& scale, const Var& shift, int64_t groups, float eps = 1e-5f,
                          bool bf16_y = false);

}  // namespace dd::ag
