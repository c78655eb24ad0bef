#include "engine/philox.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/timesteps.h"

namespace dd::kernels::cuda {

namespace {
__global__ void draw_timesteps_kernel(float* t, int64_t B, uint64_t T, uint64_t seed, PhiloxOffset offset) {
  const uint64_t first = offset.get();
  DD_GRID_STRIDE(b, B) t[b] = static_cast<float>(philox_uniform_int(seed, first + static_cast<uint64_t>(b), T));
}

// A timestep outside [0, T) cannot come from draw_timesteps; if one does, it reads entry 0 rather
// than memory outside the table (the CPU backend throws on it).
__global__ void gather_timesteps_kernel(const float* table, int64_t T, const float* t, float* out, int64_t B) {
  DD_GRID_STRIDE(b, B) {
    const int64_t i = static_cast<int64_t>(t[b]);
    out[b] = table[(i >= 0 && i < T) ? i : 0];
  }
}
__global__ void broadcast_timestep_kernel(const float* t, float* out, int64_t B) {
  DD_GRID_STRIDE(b, B) out[b] = t[0];
}
}  // namespace

Tensor broadcast_timestep(const Tensor& t, int64_t B) {
  Tensor out = Tensor::empty({B}, t.device());
  broadcast_timestep_kernel<<<grid_for(B), kThreads, 0, stream()>>>(t.data(), out.data(), B);
  DD_CUDA_LAUNCH_CHECK("broadcast_timestep_kernel");
  return out;
}

Tensor draw_timesteps(int64_t B, int64_t T, uint64_t seed, PhiloxOffset offset, Device dev) {
  Tensor t = Tensor::empty({B}, dev);
  draw_timesteps_kernel<<<grid_for(B), kThreads, 0, stream()>>>(t.data(), B, static_cast<uint64_t>(T), seed, offset);
  DD_CUDA_LAUNCH_CHECK("draw_timesteps_kernel");
  return t;
}

Tensor gather_timesteps(const Tensor& table, const Tensor& t) {
  const int64_t B = t.numel();
  Tensor out = Tensor::empty({B}, table.device());
  gather_timesteps_kernel<<<grid_for(B), kThreads, 0, stream()>>>(table.data(), table.numel(), t.data(), out.data(), B);
  DD_CUDA_LAUNCH_CHECK("gather_timesteps_kernel");
  return out;
}

}  // namespace dd::kernels::cuda
