// The CUDA side of Tensor::to(DType) and of fill_ for non-float32 tensors. The
// element conversion is dtype_conv::cast from engine/dtype.h, the function the CPU
// runs, so both give the same bits. Also run on the host by tests/emu.
#include <algorithm>

#include "engine/cast.h"
#include "engine/cuda_check.h"
#include "engine/cuda_stream.h"
#include "engine/error.h"

namespace dd {
namespace cuda_cast {

namespace {
constexpr int kThreads = 256;

unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535));
}

template <typename To, typename From>
__global__ void cast_kernel(const From* src, To* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = dtype_conv::cast<To, From>(src[i]);
}

template <typename To, typename From>
void launch_cast(const void* src, void* dst, int64_t n) {
  const From* s = static_cast<const From*>(src);
  To* d = static_cast<To*>(dst);
  cast_kernel<To, From><<<grid_for(n), kThreads, 0, cuda_stream()>>>(s, d, n);
  DD_CUDA_LAUNCH_CHECK("cast_kernel");
}

template <typename T>
__global__ void fill_kernel(T* dst, T value, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = value;
}

template <typename T>
void launch_fill(void* dst, uint64_t bits, int64_t n) {
  T* d = static_cast<T*>(dst);
  const T value = static_cast<T>(bits);
  fill_kernel<T><<<grid_for(n), kThreads, 0, cuda_stream()>>>(d, value, n);
  DD_CUDA_LAUNCH_CHECK("fill_kernel");
}
}  // namespace

void cast(const void* src, DType from, void* dst, DType to, int64_t n) {
  if (n <= 0) return;
  DD_CHECK(dtype_valid(from) && dtype_valid(to), "cuda cast: invalid DType value ", static_cast<int>(from), " or ",
           static_cast<int>(to));
  visit_dtype(from, [&](auto f) {
    visit_dtype(to, [&](auto t) { launch_cast<decltype(t), decltype(f)>(src, dst, n); });
  });
}

void fill(void* dst, std::size_t element_size, uint64_t bits, int64_t n) {
  if (n <= 0) return;
  switch (element_size) {
    case 2: return launch_fill<uint16_t>(dst, bits, n);
    case 4: return launch_fill<uint32_t>(dst, bits, n);
    case 8: return launch_fill<uint64_t>(dst, bits, n);
  }
  DD_FAIL("cuda fill: unsupported element size ", element_size);
}

}  // namespace cuda_cast
}  // namespace dd
