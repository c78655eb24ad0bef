#pragma once
// The softmax attention core of the U-Net's Attention block (mid block): the
// part between the to_qkv 1x1 conv and to_out.
//
// qkv is the to_qkv output, NHWC [B, H, W, 3 * heads * dim_head] (or [B, N, ...]);
// position n = x * W + y (PyTorch "(x y)"), and channel c of chunk s (q, k, v)
// of head h is qkv[..., s * hidden + h * dim_head + c], hidden = heads * dim_head.
// Per (b, head), with scale = dim_head^-0.5:
//   sim[i, j] = sum_d scale q[d, i] k[d, j],   attn = softmax_j(sim - max_j sim)
//   out[i, h * dim_head + d] = sum_j attn[i, j] v[d, j]       out: [B, H, W, hidden]
// The backward recomputes attn (flash-style): nothing N x N outlives a call.
#include <cstdint>

#include "engine/tensor.h"

namespace dd::kernels {

Tensor attention_forward(const Tensor& qkv, int64_t heads, int64_t dim_head);
// Whether the bf16 tensor-core kernels take this head width under Precision::BF16 (32, 64, 128);
// other widths keep the fp32 paths (kernels/cpu/operand_rounding.h says what each policy rounds).
bool attention_tc_supported(int64_t dim_head);
// d_qkv for out's gradient dy ([B, H, W, hidden]); same shape as qkv.
Tensor attention_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);

namespace cpu {
Tensor attention_forward(const Tensor& qkv, int64_t heads, int64_t dim_head);
Tensor attention_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
// dim_head <= 128: the flash kernels (attention_kernels.cuh); wider heads: attention_wide_*;
// under Precision::BF16 with dim_head 32, 64 or 128: attention_*_tc.
Tensor attention_forward(const Tensor& qkv, int64_t heads, int64_t dim_head);
Tensor attention_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);
// Heads of any width through materialised N x N scores and cuBLAS (kernels/cuda/attention_wide.cu).
Tensor attention_wide_forward(const Tensor& qkv, int64_t heads, int64_t dim_head);
Tensor attention_wide_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);
// bf16 tensor cores (mma.sync, fp32 accumulation and softmax; kernels/cuda/attention_tc.cu), dim_head
// 32, 64 or 128: what attention_forward / attention_backward run under a BF16 Context precision.
Tensor attention_forward_tc(const Tensor& qkv, int64_t heads, int64_t dim_head);
Tensor attention_backward_tc(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);
}  // namespace cuda
#endif

}  // namespace dd::kernels
