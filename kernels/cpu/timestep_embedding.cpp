#include "kernels/timestep_embedding.h"

#include <cmath>

namespace dd::kernels::cpu {

Tensor timestep_embedding(const Tensor& t, const Tensor& f, int64_t dim, bool flip) {
  const int64_t B = t.dim(0), half = dim / 2;
  Tensor y = Tensor::zeros({B, dim});
  const float* pt = t.data();
  const float* pf = f.data();
  float* py = y.data();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < half; ++i) {
      const float arg = pt[b] * pf[i];
      const float s = std::sin(arg), c = std::cos(arg);
      py[b * dim + i] = flip ? c : s;
      py[b * dim + half + i] = flip ? s : c;
    }
  return y;
}

}  // namespace dd::kernels::cpu
