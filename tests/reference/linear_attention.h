#pragma once
// Naive float64 reference for the seed's LinearAttention core (before to_out),
// straight from its PyTorch forward. qkv is NHWC flattened to
// [B, N, 3 * heads * dim_head] (N = H * W, row-major); returns [B, N, heads * dim_head].
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace dd::ref {

inline std::vector<double> linear_attention(const std::vector<double>& qkv, int64_t B, int64_t N,
                                            int64_t heads, int64_t dim_head) {
  const int64_t hidden = heads * dim_head, C = 3 * hidden, D = dim_head;
  const double scale = std::pow(static_cast<double>(dim_head), -0.5);
  std::vector<double> out(static_cast<std::size_t>(B * N * hidden));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      // chunk(3, dim=1) then "b (h c) x y -> b h c (x y)": q, k, v as [d][n].
      std::vector<std::vector<double>> q(D, std::vector<double>(N)), k = q, v = q;
      for (int64_t d = 0; d < D; ++d)
        for (int64_t n = 0; n < N; ++n) {
          const int64_t at = (b * N + n) * C + h * D + d;
          q[d][n] = qkv[at];
          k[d][n] = qkv[at + hidden];
          v[d][n] = qkv[at + 2 * hidden];
        }
      // q.softmax(dim=-2): over d for each n; then q * scale
      for (int64_t n = 0; n < N; ++n) {
        double m = q[0][n], sum = 0.0;
        for (int64_t d = 0; d < D; ++d) m = std::max(m, q[d][n]);
        for (int64_t d = 0; d < D; ++d) sum += std::exp(q[d][n] - m);
        for (int64_t d = 0; d < D; ++d) q[d][n] = std::exp(q[d][n] - m) / sum * scale;
      }
      // k.softmax(dim=-1): over n for each d
      for (int64_t d = 0; d < D; ++d) {
        const double m = *std::max_element(k[d].begin(), k[d].end());
        double sum = 0.0;
        for (int64_t n = 0; n < N; ++n) sum += std::exp(k[d][n] - m);
        for (int64_t n = 0; n < N; ++n) k[d][n] = std::exp(k[d][n] - m) / sum;
      }
      // context = einsum("b h d n, b h e n -> b h d e", k, v)
      std::vector<std::vector<double>> context(D, std::vector<double>(D, 0.0));
      for (int64_t d = 0; d < D; ++d)
        for (int64_t e = 0; e < D; ++e)
          for (int64_t n = 0; n < N; ++n) context[d][e] += k[d][n] * v[e][n];
      // out = einsum("b h d e, b h d n -> b h e n", context, q) then "b h c (x y) -> b (h c) x y"
      for (int64_t e = 0; e < D; ++e)
        for (int64_t n = 0; n < N; ++n) {
          double o = 0.0;
          for (int64_t d = 0; d < D; ++d) o += context[d][e] * q[d][n];
          out[(b * N + n) * hidden + h * D + e] = o;
        }
    }
  return out;
}

}  // namespace dd::ref
