#include "kernels/dropout.h"

#include "kernels/dropout_math.h"

namespace dd::kernels::cpu {

Tensor dropout(const Tensor& x, float p, uint64_t seed, PhiloxOffset offset) {
  const Tensor& xc = x;
  Tensor y = Tensor::empty(x.shape());
  const int64_t n = x.numel(), blocks = (n + 3) / 4;
  const float* px = xc.data();
  float* py = y.data();
  const float scale = dropout_scale(p);
  const uint64_t base = offset.get();
#pragma omp parallel for schedule(static) if (n > (1 << 14))
  for (int64_t b = 0; b < blocks; ++b) {
    bool keep[4];
    dropout_keep4(seed, base + static_cast<uint64_t>(b), p, keep);
    for (int j = 0; j < 4 && 4 * b + j < n; ++j) py[4 * b + j] = keep[j] ? px[4 * b + j] * scale : 0.0f;
  }
  return y;
}

}  // namespace dd::kernels::cpu
