#pragma once
// The core of the U-Net's LinearAttention block (every down/up level): the
// part between the to_qkv 1x1 conv and to_out.
//
// qkv layout as in kernels/attention.h: NHWC [B, H, W, 3 * heads * dim_head],
// output [B, H, W, heads * dim_head]. Per (b, head), with scale = dim_head^-0.5:
//   q' = softmax over the feature d of q[:, n] (per position), times scale
//   k' = softmax over the positions n of k[d, :] (per feature)
//   context[d, e] = sum_n k'[d, n] v[e, n]
//   out[n, h * dim_head + e] = sum_d context[d, e] q'[d, n]
// Cost is linear in the number of positions: nothing N x N is ever formed.
//
// Under Precision::BF16 with dim_head 32 or 64 the products run on bf16 tensor cores
// (linear_attention_*_tc below) and the CPU backend rounds qkv and dy to bf16 as they do
// (kernels/cpu/operand_rounding.h); other policies and widths keep fp32.
// qkv may be fp32 or bf16 (read widened, exactly); dy and the results are fp32.
#include <cstdint>

#include "engine/context.h"
#include "engine/tensor.h"

namespace dd::kernels {

Tensor linear_attention_forward(const Tensor& qkv, int64_t heads, int64_t dim_head);
// The forward's output stored as bf16 (nearest even): bitwise linear_attention_forward(...)
// .to(DType::BF16), for a consumer that rounds it to bf16 anyway (the U-Net's to_out conv under
// BF16: models/unet.cpp). The tensor-core kernels write it so; the other paths round the output.
Tensor linear_attention_forward_bf16(const Tensor& qkv, int64_t heads, int64_t dim_head);
// d_qkv for out's gradient dy ([B, H, W, hidden]); same shape as qkv.
Tensor linear_attention_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);

// dim_head 32 or 64: the widths the tensor-core kernels take.
bool linear_attention_tc_supported(int64_t dim_head);
// Whether the op rounds qkv and dy to bf16 under policy p (BF16 at those widths): then a bf16 qkv
// (kernels/conv2d.h: conv2d_forward_bf16) gives the same results as the fp32 qkv it rounds, and
// autograd/linear_attention.cpp has its qkv conv write one.
bool linear_attention_rounds_to_bf16(Precision p, int64_t dim_head);

namespace cpu {
Tensor linear_attention_forward(const Tensor& qkv, int64_t heads, int64_t dim_head);
Tensor linear_attention_forward_bf16(const Tensor& qkv, int64_t heads, int64_t dim_head);
Tensor linear_attention_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor linear_attention_forward(const Tensor& qkv, int64_t heads, int64_t dim_head);
Tensor linear_attention_forward_bf16(const Tensor& qkv, int64_t heads, int64_t dim_head);
Tensor linear_attention_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);
// bf16 tensor cores (mma.sync, fp32 accumulation, softmaxes and statistics in fp32;
// kernels/cuda/linear_attention_tc.cu), dim_head 32 or 64, whatever the context's policy.
Tensor linear_attention_forward_tc(const Tensor& qkv, int64_t heads, int64_t dim_head);
Tensor linear_attention_forward_tc_bf16(const Tensor& qkv, int64_t heads, int64_t dim_head);  // output bf16
Tensor linear_attention_backward_tc(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head);
}  // namespace cuda
#endif

}  // namespace dd::kernels
