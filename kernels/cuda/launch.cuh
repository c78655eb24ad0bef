#pragma once
// Shared launch helpers for the CUDA kernels.
#include <algorithm>
#include <cstdint>

#include "engine/cuda_check.h"
#include "engine/cuda_stream.h"

namespace dd::kernels::cuda {

constexpr int kThreads = 256;

// Every launch goes on the engine's stream (see engine/cuda_stream.h).
inline cudaStream_t stream() { return ::dd::cuda_stream(); }

// Grid for a grid-stride loop over n items (capped; the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, 4 * 132 * 8)));
}

#define DD_GRID_STRIDE(i, n)                                                         \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

}  // namespace dd::kernels::cuda
