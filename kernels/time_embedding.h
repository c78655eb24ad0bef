#pragma once
// The seed's SinusoidalPositionEmbeddings(dim): timesteps t [B] -> [B, dim],
//   out[b, i] = sin(t_b f_i), out[b, half + i] = cos(t_b f_i),
//   f_i = exp(-i ln(10000) / (half - 1)),  half = dim / 2,  i < half.
// The arithmetic follows PyTorch's float32 path step by step (see
// time_embedding_frequencies), so both backends can match torch bit for bit
// wherever their sin/cos do.
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace dd::kernels {

// f_i as torch computes exp(arange(half) * -log_factor) in float32:
// log_factor = ln(10000) / (half - 1) in double (Python), rounded to float as
// the scalar operand, f_i = expf((float)i * (float)-log_factor). Checks dim.
std::vector<float> time_embedding_frequencies(int64_t dim);

Tensor time_embedding_forward(const Tensor& t, int64_t dim);
// dt[b] = sum_i f_i (dy[b, i] cos(t_b f_i) - dy[b, half + i] sin(t_b f_i)).
Tensor time_embedding_backward(const Tensor& t, const Tensor& dy);

namespace cpu {
Tensor time_embedding_forward(const Tensor& t, int64_t dim);
Tensor time_embedding_backward(const Tensor& t, const Tensor& dy);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor time_embedding_forward(const Tensor& t, int64_t dim);
Tensor time_embedding_backward(const Tensor& t, const Tensor& dy);
}  // namespace cuda
#endif

}  // namespace dd::kernels
