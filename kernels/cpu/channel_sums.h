#pragma once
// The per-(batch, channel) reductions over positions that GroupNorm and the
// fused GroupNorm -> scale/shift -> SiLU share on the CPU. A partial sum covers
// a fixed number of spatial rows, chosen from the shape alone (never from the
// thread count), and partials are combined in order: the sums are bitwise the
// same on every run, with any number of threads, and in both ops (so the fused
// op's statistics equal group_norm's exactly).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace dd::kernels::cpu::norm {

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
constexpr int64_t kChunkElems = 1 << 14;
constexpr int64_t kMinChunkRows = 32;

// x viewed as [B, S, C] with C = G groups of D channels.
struct Dims {
  int64_t B, S, C, G, D;
  Dims(const Tensor& x, int64_t groups)
      : B(x.dim(0)), S(x.numel() / (x.dim(0) * x.dim(-1))), C(x.dim(-1)), G(groups), D(x.dim(-1) / groups) {}
  int64_t numel() const { return B * S * C; }
};

// K per-(b, c) double sums over the positions: sums[k * B*C + b*C + c].
// row(b, offset, acc) adds the position starting at element `offset` into
// acc[k * C + c]. NHWC keeps channels contiguous, so the inner loop over c
// vectorizes; chunks of rows (rather than groups) are the parallel unit, which
// keeps every core busy even for GroupNorm(1, C) on a single image.
template <int K, typename Row>
std::vector<double> channel_sums(const Dims& d, Row row) {
  const int64_t C = d.C;
  const int64_t rows = std::max(kMinChunkRows, kChunkElems / C);
  const int64_t per_b = (d.S + rows - 1) / rows;
  const int64_t chunks = d.B * per_b;
  std::vector<double> part(static_cast<std::size_t>(chunks * K * C));
#pragma omp parallel for schedule(static) if (d.numel() > kParallelMin && chunks > 1)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t b = k / per_b, s0 = (k % per_b) * rows, s1 = std::min(d.S, s0 + rows);
    double* acc = part.data() + k * K * C;
    std::fill(acc, acc + K * C, 0.0);
    for (int64_t s = s0; s < s1; ++s) row(b, (b * d.S + s) * C, acc);
  }
  const int64_t BC = d.B * C;
  std::vector<double> sums(static_cast<std::size_t>(K * BC), 0.0);
#pragma omp parallel for schedule(static) if (chunks * C > kParallelMin && d.B > 1)
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t k = b * per_b; k < (b + 1) * per_b; ++k)
      for (int j = 0; j < K; ++j) {
        const double* p = part.data() + (k * K + j) * C;
        double* o = sums.data() + j * BC + b * C;
        for (int64_t c = 0; c < C; ++c) o[c] += p[c];
      }
  return sums;
}

// Each (b, s) row gets f(b, row offset); rows are independent.
template <typename F>
void for_each_row(const Dims& d, F f) {
#pragma omp parallel for schedule(static) if (d.numel() > kParallelMin)
  for (int64_t r = 0; r < d.B * d.S; ++r) f(r / d.S, r * d.C);
}

}  // namespace dd::kernels::cpu::norm
