#pragma once
// Training's timestep draw and the schedule lookups that follow it, on the batch's device, so a GPU
// step uploads nothing for them (the host only advances its generator's counter).
//
// draw_timesteps: t[b] = philox_uniform_int(seed, offset + b, T) for b = 0..B-1, as floats (exact:
// T < 2^24), the numbers Generator::uniform_int gives from the same blocks. The caller reserves B
// blocks (Generator::skip(B)).
// gather_timesteps: out[b] = table[t[b]] for a [T] table (the schedule's buffers rounded once to
// float) and float-coded timesteps t, each in [0, T) (a timestep outside it reads 0's place: the
// draw never makes one; the CPU checks and throws).
#include <cstdint>

#include "engine/philox.h"
#include "engine/tensor.h"

namespace dd::kernels {

Tensor draw_timesteps(int64_t B, int64_t T, uint64_t seed, PhiloxOffset offset, Device dev);
Tensor gather_timesteps(const Tensor& table, const Tensor& t);
// [B] copies of t[0] (one float on the device: a sampler graph's timestep, rewritten before each
// replay), read in the kernel.
Tensor broadcast_timestep(const Tensor& t, int64_t B);

namespace cpu {
Tensor draw_timesteps(int64_t B, int64_t T, uint64_t seed, PhiloxOffset offset, Device dev);
Tensor gather_timesteps(const Tensor& table, const Tensor& t);
Tensor broadcast_timestep(const Tensor& t, int64_t B);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor draw_timesteps(int64_t B, int64_t T, uint64_t seed, PhiloxOffset offset, Device dev);
Tensor gather_timesteps(const Tensor& table, const Tensor& t);
Tensor broadcast_timestep(const Tensor& t, int64_t B);
}  // namespace cuda
#endif

}  // namespace dd::kernels
