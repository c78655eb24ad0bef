#include <algorithm>

#include "engine/cuda_check.h"
#include "engine/cuda_stream.h"
#include "engine/philox.h"
#include "engine/rng.h"

namespace dd {
namespace cuda_rng {

namespace {
__global__ void randn_kernel(float* out, int64_t n, uint64_t seed, PhiloxOffset at) {
  const uint64_t offset = at.get();
  int64_t blocks = (n + 3) / 4;
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < blocks;
       b += int64_t(gridDim.x) * blockDim.x) {
    float z[4];
    philox_normal4(seed, offset + static_cast<uint64_t>(b), z);
    int64_t i = b * 4;
    if (i + 3 < n) {
      out[i] = z[0];
      out[i + 1] = z[1];
      out[i + 2] = z[2];
      out[i + 3] = z[3];
    } else {
      for (int l = 0; i + l < n; ++l) out[i + l] = z[l];
    }
  }
}
}  // namespace

void randn_fill(float* out, int64_t n, uint64_t seed, PhiloxOffset offset) {
  if (n <= 0) return;
  int64_t blocks = (n + 3) / 4;
  unsigned grid = static_cast<unsigned>(std::min<int64_t>((blocks + 255) / 256, 65535));
  randn_kernel<<<grid, 256, 0, cuda_stream()>>>(out, n, seed, offset);
  DD_CUDA_LAUNCH_CHECK("randn_kernel");
}

}  // namespace cuda_rng
}  // namespace dd
