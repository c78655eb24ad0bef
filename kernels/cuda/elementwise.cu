#include "kernels/cuda/launch.cuh"
#include "kernels/elementwise.h"

namespace dd::kernels::cuda {

namespace {
enum class Op2 { Add, Sub, Mul };

template <Op2 op>
__global__ void map2_kernel(const float* a, const float* b, float* out, int64_t n) {
  DD_GRID_STRIDE(i, n) {
    float x = a[i], y = b[i];
    out[i] = op == Op2::Add ? x + y : op == Op2::Sub ? x - y : x * y;
  }
}

__global__ void affine_kernel(const float* a, float alpha, float beta, float* out, int64_t n) {
  DD_GRID_STRIDE(i, n) out[i] = alpha * a[i] + beta;
}

__global__ void axpy_kernel(float* y, float alpha, const float* x, int64_t n) {
  DD_GRID_STRIDE(i, n) y[i] += alpha * x[i];
}

__global__ void scale_kernel(float* y, float alpha, int64_t n) {
  DD_GRID_STRIDE(i, n) y[i] *= alpha;
}

// Deterministic two-pass sum: fixed grid, per-block partials in double, then
// one block folds the partials in a fixed order.
constexpr int kReduceBlocks = 512;

template <bool kSquare>
__global__ void partial_sum_kernel(const float* a, int64_t n, double* partial) {
  __shared__ double buf[kThreads];
  double s = 0.0;
  DD_GRID_STRIDE(i, n) {
    double v = a[i];
    s += kSquare ? v * v : v;
  }
  buf[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) buf[threadIdx.x] += buf[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = buf[0];
}

__global__ void fold_kernel(const double* partial, int count, double* out) {
  __shared__ double buf[kThreads];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  buf[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) buf[threadIdx.x] += buf[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = buf[0];
}

template <Op2 op>
Tensor map2(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape(), a.device());
  const int64_t n = a.numel();
  if (n == 0) return out;
  map2_kernel<op><<<grid_for(n), kThreads, 0, stream()>>>(a.data(), b.data(), out.data(), n);
  DD_CUDA_LAUNCH_CHECK("map2_kernel");
  return out;
}

template <bool kSquare>
double reduce(const Tensor& a) {
  const int64_t n = a.numel();
  if (n == 0) return 0.0;
  // Scratch for the partials: a cache hit in the allocator after the first call.
  double* partial = static_cast<double*>(cuda_mem::alloc((kReduceBlocks + 1) * sizeof(double)));
  double result = 0.0;
  try {
    partial_sum_kernel<kSquare><<<kReduceBlocks, kThreads, 0, stream()>>>(a.data(), n, partial);
    DD_CUDA_LAUNCH_CHECK("partial_sum_kernel");
    fold_kernel<<<1, kThreads, 0, stream()>>>(partial, kReduceBlocks, partial + kReduceBlocks);
    DD_CUDA_LAUNCH_CHECK("fold_kernel");
    cuda_mem::copy_d2h(&result, partial + kReduceBlocks, sizeof(double));
  } catch (...) {
    cuda_mem::free(partial);
    throw;
  }
  cuda_mem::free(partial);
  return result;
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return map2<Op2::Add>(a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return map2<Op2::Sub>(a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return map2<Op2::Mul>(a, b); }

Tensor affine(const Tensor& a, float alpha, float beta) {
  Tensor out = Tensor::empty(a.shape(), a.device());
  const int64_t n = a.numel();
  if (n == 0) return out;
  affine_kernel<<<grid_for(n), kThreads, 0, stream()>>>(a.data(), alpha, beta, out.data(), n);
  DD_CUDA_LAUNCH_CHECK("affine_kernel");
  return out;
}

void axpy_(Tensor& y, float alpha, const Tensor& x) {
  const int64_t n = y.numel();
  if (n == 0) return;
  axpy_kernel<<<grid_for(n), kThreads, 0, stream()>>>(y.data(), alpha, x.data(), n);
  DD_CUDA_LAUNCH_CHECK("axpy_kernel");
}

void scale_(Tensor& y, float alpha) {
  const int64_t n = y.numel();
  if (n == 0) return;
  scale_kernel<<<grid_for(n), kThreads, 0, stream()>>>(y.data(), alpha, n);
  DD_CUDA_LAUNCH_CHECK("scale_kernel");
}

double sum(const Tensor& a) { return reduce<false>(a); }
double sum_squares(const Tensor& a) { return reduce<true>(a); }

}  // namespace dd::kernels::cuda
