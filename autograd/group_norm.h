#pragma once
#include <cstdint>

#include "autograd/var.h"

namespace dd::ag {

// nn.GroupNorm(groups, C, eps) on channels-last x [B, ..., C]; gamma and beta are [C].
// bf16_y: y stored in bf16 (kernels/group_norm.h), for a consumer that rounds it to bf16 anyway (the
// U-Net's PreNorm, read by a qkv conv, under BF16: models/unet.cpp); its gradient is fp32.
Var group_norm(const Var& x, const Var& gamma, const Var& beta, int64_t groups, float eps = 1e-5f,
               bool bf16_y = false);

}  // namespace dd::ag
