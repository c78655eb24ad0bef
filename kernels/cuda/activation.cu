#include "kernels/activation.h"
#include "kernels/activation_math.h"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda {

namespace {
enum class Act { Silu, Gelu, Relu };

template <Act act>
__device__ __forceinline__ float act_f(float x) {
  return act == Act::Silu ? silu_f(x) : act == Act::Gelu ? gelu_f(x) : relu_f(x);
}
template <Act act>
__device__ __forceinline__ float act_grad_f(float x, float dy) {
  return act == Act::Silu ? silu_grad_f(x, dy) : act == Act::Gelu ? gelu_grad_f(x, dy) : relu_grad_f(x, dy);
}

template <Act act>
__global__ void act_forward_kernel(const float* x, float* y, int64_t n) {
  DD_GRID_STRIDE(i, n) y[i] = act_f<act>(x[i]);
}

template <Act act>
__global__ void act_backward_kernel(const float* x, const float* dy, float* dx, int64_t n) {
  DD_GRID_STRIDE(i, n) dx[i] = act_grad_f<act>(x[i], dy[i]);
}

template <Act act>
Tensor forward(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape(), x.device());
  const int64_t n = x.numel();
  if (n == 0) return y;
  act_forward_kernel<act><<<grid_for(n), kThreads, 0, stream()>>>(x.data(), y.data(), n);
  DD_CUDA_LAUNCH_CHECK("act_forward_kernel");
  return y;
}

template <Act act>
Tensor backward(const Tensor& x, const Tensor& dy) {
  Tensor dx = Tensor::empty(x.shape(), x.device());
  const int64_t n = x.numel();
  if (n == 0) return dx;
  act_backward_kernel<act><<<grid_for(n), kThreads, 0, stream()>>>(x.data(), dy.data(), dx.data(), n);
  DD_CUDA_LAUNCH_CHECK("act_backward_kernel");
  return dx;
}
}  // namespace

Tensor silu_forward(const Tensor& x) { return forward<Act::Silu>(x); }
Tensor silu_backward(const Tensor& x, const Tensor& dy) { return backward<Act::Silu>(x, dy); }
Tensor gelu_forward(const Tensor& x) { return forward<Act::Gelu>(x); }
Tensor gelu_backward(const Tensor& x, const Tensor& dy) { return backward<Act::Gelu>(x, dy); }
Tensor relu_forward(const Tensor& x) { return forward<Act::Relu>(x); }
Tensor relu_backward(const Tensor& x, const Tensor& dy) { return backward<Act::Relu>(x, dy); }

}  // namespace dd::kernels::cuda
