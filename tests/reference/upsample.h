#pragma once
// Naive float64 reference for nn.Upsample(scale_factor=2, mode="nearest"):
// PyTorch's nearest picks source index floor(dst * in_size / out_size).
#include <cmath>
#include <cstdint>
#include <vector>

namespace dd::ref {

inline std::vector<double> upsample_nearest2x(const std::vector<double>& x, int64_t B, int64_t H, int64_t W,
                                              int64_t C) {
  const int64_t OH = 2 * H, OW = 2 * W;
  std::vector<double> y(static_cast<std::size_t>(B * OH * OW * C));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t ih = static_cast<int64_t>(std::floor(oh * static_cast<double>(H) / OH));
          const int64_t iw = static_cast<int64_t>(std::floor(ow * static_cast<double>(W) / OW));
          y[static_cast<std::size_t>(((b * OH + oh) * OW + ow) * C + c)] =
              x[static_cast<std::size_t>(((b * H + ih) * W + iw) * C + c)];
        }
  return y;
}

}  // namespace dd::ref
