#pragma once
// Shape checks shared by the two attention cores, whose inputs are the same
// qkv layout ([B, H, W, 3*heads*dim_head] or [B, N, ...]) and whose outputs
// are [..., heads*dim_head].
#include <cstdint>

#include "engine/tensor.h"

namespace dd::kernels {

// qkv float32, or also bfloat16 where bf16_ok (the linear attention's).
void check_qkv(const char* op, const Tensor& qkv, int64_t heads, int64_t dim_head, bool bf16_ok = false);
void check_dy(const char* op, const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);

}  // namespace dd::kernels
