#include "kernels/elementwise.h"

#include "kernels/cpu/parallel.h"
#include "kernels/multi_tensor.h"

namespace dd::kernels::cpu {

namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

template <typename F>
Tensor map2(const Tensor& a, const Tensor& b, F f) {
  Tensor out = Tensor::empty(a.shape());
  const float* pa = a.data();
  const float* pb = b.data();
  float* po = out.data();
  const int64_t n = a.numel();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
  return out;
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return map2(a, b, [](float x, float y) { return x + y; }); }
Tensor sub(const Tensor& a, const Tensor& b) { return map2(a, b, [](float x, float y) { return x - y; }); }
Tensor mul(const Tensor& a, const Tensor& b) { return map2(a, b, [](float x, float y) { return x * y; }); }

Tensor affine(const Tensor& a, float alpha, float beta) {
  Tensor out = Tensor::empty(a.shape());
  const float* pa = a.data();
  float* po = out.data();
  const int64_t n = a.numel();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) po[i] = alpha * pa[i] + beta;
  return out;
}

void axpy_(Tensor& y, float alpha, const Tensor& x) {
  float* py = y.data();
  const float* px = x.data();
  const int64_t n = y.numel();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) py[i] += alpha * px[i];
}

void scale_(Tensor& y, float alpha) {
  float* py = y.data();
  const int64_t n = y.numel();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) py[i] *= alpha;
}

double sum(const Tensor& a) {
  const float* p = a.data();
  return deterministic_sum(a.numel(), [p](int64_t i) { return static_cast<double>(p[i]); });
}

double sum_squares(const Tensor& a) { return sum_squares_multi({a}); }

}  // namespace dd::kernels::cpu
