#pragma once
// Naive float64 reference for the seed's Attention core, straight from its
// PyTorch forward. qkv is NHWC flattened to [B, N, 3 * heads * dim_head]
// (N = H * W, row-major); returns [B, N, heads * dim_head].
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace dd::ref {

inline std::vector<double> attention(const std::vector<double>& qkv, int64_t B, int64_t N, int64_t heads,
                                     int64_t dim_head) {
  const int64_t hidden = heads * dim_head, C = 3 * hidden;
  const double scale = std::pow(static_cast<double>(dim_head), -0.5);
  std::vector<double> out(static_cast<std::size_t>(B * N * hidden));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      // chunk(3, dim=1) then "b (h c) x y -> b h c (x y)": t[b, h, d, n] of chunk s.
      auto t = [&](int64_t s, int64_t d, int64_t n) {
        return qkv[(b * N + n) * C + s * hidden + h * dim_head + d];
      };
      for (int64_t i = 0; i < N; ++i) {
        // sim = einsum("b h d i, b h d j -> b h i j", q * scale, k)
        std::vector<double> sim(static_cast<std::size_t>(N), 0.0);
        for (int64_t j = 0; j < N; ++j)
          for (int64_t d = 0; d < dim_head; ++d) sim[j] += (t(0, d, i) * scale) * t(1, d, j);
        // sim - sim.amax(dim=-1), then softmax(dim=-1)
        const double m = *std::max_element(sim.begin(), sim.end());
        double sum = 0.0;
        for (int64_t j = 0; j < N; ++j) sum += std::exp(sim[j] - m);
        std::vector<double> attn(static_cast<std::size_t>(N));
        for (int64_t j = 0; j < N; ++j) attn[j] = std::exp(sim[j] - m) / sum;
        // einsum("b h i j, b h d j -> b h i d") then "b h (x y) d -> b (h d) x y"
        for (int64_t d = 0; d < dim_head; ++d) {
          double o = 0.0;
          for (int64_t j = 0; j < N; ++j) o += attn[j] * t(2, d, j);
          out[(b * N + i) * hidden + h * dim_head + d] = o;
        }
      }
    }
  return out;
}

}  // namespace dd::ref
