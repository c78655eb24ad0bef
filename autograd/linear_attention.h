#pragma once
#include <cstdint>

#include "autograd/var.h"

namespace dd::ag {

// LinearAttention core (kernels/linear_attention.h):
// qkv [B, H, W, 3*heads*dim_head] -> [B, H, W, heads*dim_head].
Var linear_attention(const Var& qkv, int64_t heads, int64_t dim_head);

}  // namespace dd::ag
