#include "kernels/activation.h"
#include "kernels/activation_math.h"

namespace dd::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;

template <typename F>
Tensor map1(const Tensor& x, F f) {
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.data();
  float* py = y.data();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) py[i] = f(px[i]);
  return y;
}

template <typename F>
Tensor map_grad(const Tensor& x, const Tensor& dy, F f) {
  Tensor dx = Tensor::empty(x.shape());
  const float* px = x.data();
  const float* pg = dy.data();
  float* pd = dx.data();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) pd[i] = f(px[i], pg[i]);
  return dx;
}
}  // namespace

// Lambdas, not function pointers: an indirect call per element would keep the loops scalar.
Tensor silu_forward(const Tensor& x) {
  return map1(x, [](float v) { return silu_f(v); });
}
Tensor silu_backward(const Tensor& x, const Tensor& dy) {
  return map_grad(x, dy, [](float v, float g) { return silu_grad_f(v, g); });
}
Tensor gelu_forward(const Tensor& x) { return map1(x, gelu_f); }
Tensor gelu_backward(const Tensor& x, const Tensor& dy) { return map_grad(x, dy, gelu_grad_f); }
Tensor relu_forward(const Tensor& x) { return map1(x, relu_f); }
Tensor relu_backward(const Tensor& x, const Tensor& dy) { return map_grad(x, dy, relu_grad_f); }

}  // namespace dd::kernels::cpu
