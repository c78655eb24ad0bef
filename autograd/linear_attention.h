#pragma once
#include <cstdint>

#include "autograd/var.h"

namespace dd::ag {

// LinearAttention core (kernels/linear_attention.h):
// qkv [B, H, W, 3*heads*dim_head] -> [B, H, W, heads*dim_head].
Var linear_attention(const Var& qkv, int64_t heads, int64_t dim_head);

// linear_attention(conv2d(x, w_qkv, no bias, padding 0)) with the 1x1 conv's output qkv not kept for
// the backward: the backward runs the conv again, under the forward's precision policy, for bitwise
// the same qkv (both kernels are deterministic), and keeps x, which the conv's own weight gradient
// needs anyway. qkv has 3*heads*dim_head channels (384 in the seed U-Net against x's 64 to 512): the
// largest tensor the U-Net's backward would otherwise keep at every level, for one more 1x1 conv.
// Where the attention rounds qkv to bf16 (kernels::linear_attention_rounds_to_bf16: BF16, dim_head
// 32 or 64) the conv writes qkv in bf16 (kernels::conv2d_forward_bf16), the same results bit for bit
// in half the bytes.
// bf16_out: y is stored in bf16 (kernels::linear_attention_forward_bf16), for a consumer that
// rounds it to bf16 anyway: the U-Net's to_out conv under BF16 (models/unet.cpp). Its gradient is fp32.
Var linear_attention_qkv(const Var& x, const Var& w_qkv, int64_t heads, int64_t dim_head, bool bf16_out = false);

}  // namespace dd::ag
