// Bilinear resize of NHWC images (kernels/resize.h): the taps of each output row and column once,
// then one task per output row blending four input pixels' channel vectors with explicit FMAs in
// torch's order (the build may lack FMA instructions; std::fma rounds once either way).
#include <cmath>
#include <vector>

#include "kernels/resize.h"
#include "kernels/resize_math.h"

namespace dd::kernels::cpu {

namespace {
// Below this many output elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
}  // namespace

Tensor resize_bilinear(const Tensor& x, int out_h, int out_w) {
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  Tensor y = Tensor::empty({B, out_h, out_w, C});
  std::vector<LinearTap> rows(static_cast<std::size_t>(out_h)), cols(static_cast<std::size_t>(out_w));
  for (int64_t i = 0; i < out_h; ++i) rows[static_cast<std::size_t>(i)] = resize_linear_tap(H, out_h, i);
  for (int64_t i = 0; i < out_w; ++i) cols[static_cast<std::size_t>(i)] = resize_linear_tap(W, out_w, i);
  const float* px = x.data();
  float* py = y.data();
#pragma omp parallel for schedule(static) if (y.numel() > kParallelMin)
  for (int64_t r = 0; r < B * out_h; ++r) {
    const int64_t b = r / out_h;
    const LinearTap th = rows[static_cast<std::size_t>(r % out_h)];
    const float* row0 = px + (b * H + th.i0) * W * C;
    const float* row1 = px + (b * H + th.i1) * W * C;
    for (int64_t ow = 0; ow < out_w; ++ow) {
      const LinearTap tw = cols[static_cast<std::size_t>(ow)];
      const float *x00 = row0 + tw.i0 * C, *x01 = row0 + tw.i1 * C;
      const float *x10 = row1 + tw.i0 * C, *x11 = row1 + tw.i1 * C;
      float* out = py + (r * out_w + ow) * C;
      for (int64_t c = 0; c < C; ++c) {
        const float t0 = std::fma(x00[c], tw.l0, x01[c] * tw.l1);
        const float t1 = std::fma(x10[c], tw.l0, x11[c] * tw.l1);
        out[c] = std::fma(t0, th.l0, t1 * th.l1);
      }
    }
  }
  return y;
}

}  // namespace dd::kernels::cpu
