#pragma once
// Naive float64 reference for einops "b c (h p1) (w p2) -> b (c p1 p2) h w"
// (p1 = p2 = 2), written on NCHW-indexed views of our NHWC buffers so the
// channel order is the einops one by construction: a composite axis
// (c p1 p2) is c * (P1 * P2) + p1 * P2 + p2, and (h p1) is h * P1 + p1.
#include <cstdint>
#include <vector>

namespace dd::ref {

inline std::vector<double> pixel_unshuffle2(const std::vector<double>& x, int64_t B, int64_t H, int64_t W,
                                            int64_t C) {
  const int64_t P1 = 2, P2 = 2;
  const int64_t h_out = H / P1, w_out = W / P2, c_out = C * P1 * P2;
  // in[b][c][y][x] and out[b][c][y][x], stored NHWC.
  auto in = [&](int64_t b, int64_t c, int64_t y, int64_t xx) {
    return x[static_cast<std::size_t>(((b * H + y) * W + xx) * C + c)];
  };
  std::vector<double> out(x.size());
  auto out_at = [&](int64_t b, int64_t c, int64_t y, int64_t xx) -> double& {
    return out[static_cast<std::size_t>(((b * h_out + y) * w_out + xx) * c_out + c)];
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p1 = 0; p1 < P1; ++p1)
        for (int64_t p2 = 0; p2 < P2; ++p2)
          for (int64_t h = 0; h < h_out; ++h)
            for (int64_t w = 0; w < w_out; ++w)
              out_at(b, (c * P1 + p1) * P2 + p2, h, w) = in(b, c, h * P1 + p1, w * P2 + p2);
  return out;
}

}  // namespace dd::ref
