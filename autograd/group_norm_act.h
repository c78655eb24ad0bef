#pragma once
#include <cstdint>

#include "autograd/var.h"

namespace dd::ag {

// SiLU(GroupNorm(groups)(x) * (scale + 1) + shift) in one op (the U-Net Block's tail), or
// SiLU(GroupNorm(x)) when scale and shift are undefined Vars (both or neither).
// x [B, ..., C]; gamma, beta [C]; scale, shift [B, C].
Var group_norm_act(const Var& x, const Var& gamma, const Var& beta, const Var& scale, const Var& shift,
                   int64_t groups, float eps = 1e-5f);

}  // namespace dd::ag
