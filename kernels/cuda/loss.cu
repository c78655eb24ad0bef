// Mean-reduced losses. Forward: a deterministic two-pass sum in double (per-block
// partials from a grid that depends only on n, then one block folds them in a
// fixed order) whose second pass also divides by n and writes the float scalar,
// so no host sync. Backward: an elementwise map with the CPU's float expressions
// and scale factors rounded as the CPU rounds them, so the gradients match the CPU bit for bit.
#include "kernels/cuda/launch.cuh"
#include "kernels/loss.h"

namespace dd::kernels::cuda {

namespace {
constexpr int kMaxPartials = 512;

__device__ inline double loss_term(LossType type, double d) {
  const double a = fabs(d);
  switch (type) {
    case LossType::L1: return a;
    case LossType::L2: return __dmul_rn(d, d);
    case LossType::Huber: return a < 1.0 ? __dmul_rn(__dmul_rn(0.5, d), d) : a - 0.5;
  }
  return 0.0;
}

__device__ inline void block_tree_sum(double* buf) {
  // blockDim.x == kThreads, a power of two; every thread reaches every barrier.
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) buf[threadIdx.x] += buf[threadIdx.x + stride];
    __syncthreads();
  }
}

// w: null, or per-sample weights (sample = i / inner) multiplying each term in double.
__global__ void loss_partial_kernel(const float* p, const float* t, int64_t n, LossType type, double* partial,
                                    const float* w, int64_t inner) {
  __shared__ double buf[kThreads];
  double s = 0.0;
  DD_GRID_STRIDE(i, n) {
    const float d = p[i] - t[i];  // the difference in float, as PyTorch (and the CPU)
    double term = loss_term(type, static_cast<double>(d));
    if (w) term = __dmul_rn(term, static_cast<double>(w[i / inner]));
    s = __dadd_rn(s, term);
  }
  buf[threadIdx.x] = s;
  __syncthreads();
  block_tree_sum(buf);
  if (threadIdx.x == 0) partial[blockIdx.x] = buf[0];
}

__global__ void loss_fold_kernel(const double* partial, int count, int64_t n, float* out) {
  __shared__ double buf[kThreads];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += kThreads) s += partial[i];
  buf[threadIdx.x] = s;
  __syncthreads();
  block_tree_sum(buf);
  if (threadIdx.x == 0) out[0] = static_cast<float>(buf[0] / static_cast<double>(n));
}

// The scale factors, rounded to float exactly as the CPU backend does (one function for the host
// and the device: the seeded backward computes them from the device's dloss, with the same bits).
struct BackwardScalars {
  float g, neg_g, norm, dloss, pos, neg;
};

__host__ __device__ inline BackwardScalars backward_scalars(LossType type, int64_t n, float dloss) {
  BackwardScalars s{};
  s.dloss = dloss;
  switch (type) {
    case LossType::L1:
      s.g = dloss / static_cast<float>(n);  // IEEE division on the device too (no fast math)
      s.neg_g = -s.g;
      break;
    case LossType::L2:
      s.norm = static_cast<float>(2.0 / static_cast<double>(n));
      break;
    case LossType::Huber:
      s.norm = static_cast<float>(1.0 / static_cast<double>(n));
      s.neg = -s.norm * dloss;  // lone products: nothing to contract into an FMA
      s.pos = s.norm * dloss;
      break;
  }
  return s;
}

// dloss_dev: null (the scalars come in s), or the device's one-float upstream gradient, read here
// so the backward needs nothing from the host.
__global__ void loss_backward_kernel(const float* p, const float* t, float* out, int64_t n, LossType type,
                                     BackwardScalars s, const float* dloss_dev, const float* w, int64_t inner) {
  if (dloss_dev) s = backward_scalars(type, n, *dloss_dev);
  DD_GRID_STRIDE(i, n) {
    const float d = p[i] - t[i];
    float v;
    switch (type) {
      case LossType::L1: v = d > 0.0f ? s.g : (d < 0.0f ? s.neg_g : __fmul_rn(0.0f, s.g)); break;
      case LossType::L2: v = __fmul_rn(__fmul_rn(d, s.norm), s.dloss); break;
      default:  // Huber
        v = d <= -1.0f ? s.neg : (d >= 1.0f ? s.pos : __fmul_rn(__fmul_rn(s.norm, d), s.dloss));
        break;
    }
    out[i] = w ? __fmul_rn(v, w[i / inner]) : v;
  }
}

Tensor launch_backward(const Tensor& pred, const Tensor& target, LossType type, const BackwardScalars& s,
                       const float* dloss_dev, const float* w = nullptr) {
  const int64_t n = pred.numel();
  Tensor out = Tensor::empty(pred.shape(), pred.device());
  loss_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(pred.data(), target.data(), out.data(), n, type, s, dloss_dev, w,
                                                               w ? n / pred.dim(0) : 1);
  DD_CUDA_LAUNCH_CHECK("loss_backward_kernel");
  return out;
}
}  // namespace

namespace {
Tensor launch_forward(const Tensor& pred, const Tensor& target, LossType type, const float* w) {
  const int64_t n = pred.numel();  // > 0, checked by the public entry
  const int blocks = static_cast<int>(std::min<int64_t>(kMaxPartials, (n + kThreads - 1) / kThreads));
  Tensor scratch = Tensor::empty({2 * static_cast<int64_t>(blocks)}, pred.device());  // blocks doubles
  double* partial = reinterpret_cast<double*>(scratch.data());
  Tensor out = Tensor::empty({}, pred.device());
  loss_partial_kernel<<<blocks, kThreads, 0, stream()>>>(pred.data(), target.data(), n, type, partial, w,
                                                         w ? n / pred.dim(0) : 1);
  DD_CUDA_LAUNCH_CHECK("loss_partial_kernel");
  loss_fold_kernel<<<1, kThreads, 0, stream()>>>(partial, blocks, n, out.data());
  DD_CUDA_LAUNCH_CHECK("loss_fold_kernel");
  return out;
}
}  // namespace

Tensor loss_forward(const Tensor& pred, const Tensor& target, LossType type) {
  return launch_forward(pred, target, type, nullptr);
}

Tensor loss_forward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights) {
  return launch_forward(pred, target, type, weights.data());
}

Tensor loss_backward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights,
                              const Tensor& dloss) {
  return launch_backward(pred, target, type, BackwardScalars{}, dloss.data(), weights.data());
}

Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, float dloss) {
  return launch_backward(pred, target, type, backward_scalars(type, pred.numel(), dloss), nullptr);
}

Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, const Tensor& dloss) {
  return launch_backward(pred, target, type, BackwardScalars{}, dloss.data());
}

}  // namespace dd::kernels::cuda
