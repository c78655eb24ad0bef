#include <algorithm>

#include "engine/cuda_check.h"
#include "engine/device.h"

namespace dd {

bool cuda_available() {
  int n = 0;
  // No device (or no driver) is an answer here, not an error.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

namespace cuda_mem {
void* alloc(std::size_t bytes) {
  void* p = nullptr;
  if (bytes == 0) return nullptr;
  DD_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}
void free(void* p) noexcept {
  if (p) cudaFree(p);
}
void copy_h2d(void* dst, const void* src, std::size_t bytes) {
  if (bytes) DD_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void copy_d2h(void* dst, const void* src, std::size_t bytes) {
  if (bytes) DD_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void copy_d2d(void* dst, const void* src, std::size_t bytes) {
  if (bytes) DD_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
}
void memset(void* dst, int value, std::size_t bytes) {
  if (bytes) DD_CUDA_CHECK(cudaMemset(dst, value, bytes));
}
namespace {
__global__ void fill_kernel(float* dst, float value, std::size_t count) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < count;
       i += std::size_t(gridDim.x) * blockDim.x)
    dst[i] = value;
}
}  // namespace
void fill_f32(float* dst, float value, std::size_t count) {
  if (!count) return;
  unsigned blocks = static_cast<unsigned>(std::min<std::size_t>((count + 255) / 256, 65535));
  fill_kernel<<<blocks, 256>>>(dst, value, count);
  DD_CUDA_LAUNCH_CHECK("fill_kernel");
}
void synchronize() { DD_CUDA_CHECK(cudaDeviceSynchronize()); }
}  // namespace cuda_mem

}  // namespace dd
