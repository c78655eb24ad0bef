#include "kernels/pixel_unshuffle.h"

namespace dd::kernels::cpu {

namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
}  // namespace

// Each output pixel interleaves four contiguous input channel vectors (the
// 2x2 block, in p1-major order) with stride 4; the loop writes the output
// contiguously and reads four streams, which the compiler vectorises.
Tensor pixel_unshuffle_forward(const Tensor& x) {
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const int64_t h2 = H / 2, w2 = W / 2;
  Tensor y = Tensor::empty({B, h2, w2, 4 * C});
  const float* px = x.data();
  float* py = y.data();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
  for (int64_t r = 0; r < B * h2; ++r) {
    const float* top = px + 2 * r * W * C;  // input row 2h (same batch: H is even)
    const float* bottom = top + W * C;      // input row 2h+1
    float* out = py + r * w2 * 4 * C;
    for (int64_t w = 0; w < w2; ++w) {
      const float* s00 = top + 2 * w * C;
      const float* s01 = s00 + C;
      const float* s10 = bottom + 2 * w * C;
      const float* s11 = s10 + C;
      float* o = out + w * 4 * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        o[4 * c + 0] = s00[c];
        o[4 * c + 1] = s01[c];
        o[4 * c + 2] = s10[c];
        o[4 * c + 3] = s11[c];
      }
    }
  }
  return y;
}

Tensor pixel_unshuffle_backward(const Tensor& dy) {
  const int64_t B = dy.dim(0), h2 = dy.dim(1), w2 = dy.dim(2), C = dy.dim(3) / 4;
  const int64_t W = 2 * w2;
  Tensor dx = Tensor::empty({B, 2 * h2, W, C});
  const float* pg = dy.data();
  float* pd = dx.data();
#pragma omp parallel for schedule(static) if (dy.numel() > kParallelMin)
  for (int64_t r = 0; r < B * h2; ++r) {
    float* top = pd + 2 * r * W * C;
    float* bottom = top + W * C;
    const float* g = pg + r * w2 * 4 * C;
    for (int64_t w = 0; w < w2; ++w) {
      float* d00 = top + 2 * w * C;
      float* d01 = d00 + C;
      float* d10 = bottom + 2 * w * C;
      float* d11 = d10 + C;
      const float* gi = g + w * 4 * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        d00[c] = gi[4 * c + 0];
        d01[c] = gi[4 * c + 1];
        d10[c] = gi[4 * c + 2];
        d11[c] = gi[4 * c + 3];
      }
    }
  }
  return dx;
}

}  // namespace dd::kernels::cpu
