#pragma once
// torch.cat(dim=1) and .chunk(n, dim=1) of NCHW tensors are, in our NHWC
// layout, operations on the LAST dim: skip connections (cat of [B,H,W,C1] and
// [B,H,W,C2]), the time-MLP scale/shift split ([B,2C] -> two [B,C]) and the
// q/k/v split. Every result is a fresh contiguous tensor (no views).
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace dd::kernels {

// Inputs of any rank >= 1 that agree in every dim but the last, all float32 or all bfloat16 (the
// result has theirs).
Tensor concat(const std::vector<Tensor>& xs);
// concat of fp32 and bf16 inputs: bf16 when all are, else fp32 (bf16 inputs widened exactly).
Tensor concat_widening(const std::vector<Tensor>& xs);
// Pieces of the given widths (summing to the last dim): the backward of concat.
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& widths);
// n equal pieces of the last dim (which n must divide).
std::vector<Tensor> chunk(const Tensor& x, int64_t n);
// Backward of chunk: dx from the n chunks' gradients; an undefined entry is a
// chunk that received no gradient and contributes zeros. At least one defined.
Tensor chunk_backward(const std::vector<Tensor>& dys, const Shape& x_shape);

namespace cpu {
Tensor concat(const std::vector<Tensor>& xs);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& widths);
Tensor chunk_backward(const std::vector<Tensor>& dys, const Shape& x_shape);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor concat(const std::vector<Tensor>& xs);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& widths);
Tensor chunk_backward(const std::vector<Tensor>& dys, const Shape& x_shape);
}  // namespace cuda
#endif

}  // namespace dd::kernels
