#pragma once
// diffusers' get_timestep_embedding (the Timesteps module of UNet2DModel), forward only (the
// timesteps carry no gradient):
//   arg[b, i] = t_b * f_i (one float multiply),  y[b] = [sin(arg), cos(arg)], or [cos, sin] with flip
// and, for an odd dim, a trailing zero column. f [half] comes from timestep_frequencies.
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace dd::kernels {

// f_i = exp(-ln(max_period) * i / (half - shift)) in float32 step by step as torch computes
// exp((-math.log(max_period) * arange(half, dtype=float32)) / (half - shift)); half = dim / 2.
std::vector<float> timestep_frequencies(int64_t dim, double shift, double max_period = 10000.0);

// t [B] float32, f [half] float32 (same device) -> [B, dim].
Tensor timestep_embedding(const Tensor& t, const Tensor& f, int64_t dim, bool flip_sin_to_cos);

namespace cpu {
Tensor timestep_embedding(const Tensor& t, const Tensor& f, int64_t dim, bool flip_sin_to_cos);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor timestep_embedding(const Tensor& t, const Tensor& f, int64_t dim, bool flip_sin_to_cos);
}  // namespace cuda
#endif

}  // namespace dd::kernels
