#include "kernels/time_embedding.h"

#include <cmath>

namespace dd::kernels::cpu {

namespace {
// sin/cos are ~20 flops each: parallel pays earlier than for a plain map.
constexpr int64_t kParallelMin = 1 << 13;
}  // namespace

Tensor time_embedding_forward(const Tensor& t, int64_t dim) {
  const std::vector<float> f = time_embedding_frequencies(dim);
  const int64_t B = t.dim(0), half = dim / 2;
  Tensor y = Tensor::empty({B, dim});
  const float* pt = t.data();
  const float* pf = f.data();
  float* py = y.data();
#pragma omp parallel for schedule(static) if (B * dim > kParallelMin)
  for (int64_t b = 0; b < B; ++b) {
    float* row = py + b * dim;
    for (int64_t i = 0; i < half; ++i) {
      const float arg = pt[b] * pf[i];  // one float multiply, as time[:, None] * exponent[None, :]
      row[i] = std::sin(arg);
      row[half + i] = std::cos(arg);
    }
  }
  return y;
}

Tensor time_embedding_backward(const Tensor& t, const Tensor& dy) {
  const int64_t B = t.dim(0), dim = dy.dim(1), half = dim / 2;
  const std::vector<float> f = time_embedding_frequencies(dim);
  Tensor dt = Tensor::empty({B});
  const float* pt = t.data();
  const float* pdy = dy.data();
  float* pdt = dt.data();
  // One thread per timestep, fixed order within it: deterministic.
#pragma omp parallel for schedule(static) if (B * dim > kParallelMin)
  for (int64_t b = 0; b < B; ++b) {
    const float* g = pdy + b * dim;
    double s = 0.0;
    for (int64_t i = 0; i < half; ++i) {
      const float arg = pt[b] * f[static_cast<std::size_t>(i)];
      s += static_cast<double>(f[static_cast<std::size_t>(i)]) *
           (g[i] * static_cast<double>(std::cos(arg)) - g[half + i] * static_cast<double>(std::sin(arg)));
    }
    pdt[b] = static_cast<float>(s);
  }
  return dt;
}

}  // namespace dd::kernels::cpu
