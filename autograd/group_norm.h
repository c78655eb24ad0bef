#pragma once
#include <cstdint>

#include "autograd/var.h"

namespace dd::ag {

// nn.GroupNorm(groups, C, eps) on channels-last x [B, ..., C]; gamma and beta are [C].
Var group_norm(const Var& x, const Var& gamma, const Var& beta, int64_t groups, float eps = 1e-5f);

}  // namespace dd::ag
