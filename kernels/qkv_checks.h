#pragma once
// Shape checks shared by the two attention cores, whose inputs are the same
// qkv layout ([B, H, W, 3*heads*dim_head] or [B, N, ...]) and whose outputs
// are [..., heads*dim_head].
#include <cstdint>

#include "engine/tensor.h"

namespace dd::kernels {

void check_qkv(const char* op, const Tensor& qkv, int64_t heads, int64_t dim_head);
void check_dy(const char* op, const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);

}  // namespace dd::kernels
