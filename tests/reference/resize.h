#pragma once
// Naive float64 reference for F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
// in NHWC, from torch's definition: per axis scale = in / out (torch forms it in the input's dtype,
// float here, so the reference takes that float value), src = scale * (dst + 0.5) - 0.5 clamped
// below at 0, i0 = floor(src), i1 = min(i0 + 1, in - 1), l1 = src - i0, l0 = 1 - l1; an axis of
// unchanged size copies. Everything after the scale is exact-ish float64.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace dd::ref {

struct LinearTap64 {
  int64_t i0, i1;
  double l0, l1;
};

inline LinearTap64 resize_tap(int64_t in, int64_t out, int64_t dst) {
  if (in == out) return {dst, dst, 1.0, 0.0};
  const double scale = static_cast<float>(in) / static_cast<float>(out);
  const double src = std::max(0.0, scale * (static_cast<double>(dst) + 0.5) - 0.5);
  const int64_t i0 = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
  const double l1 = src - static_cast<double>(i0);
  return {i0, std::min(i0 + 1, in - 1), 1.0 - l1, l1};
}

inline std::vector<double> resize_bilinear(const std::vector<double>& x, int64_t b, int64_t h, int64_t w, int64_t c,
                                           int64_t oh, int64_t ow) {
  std::vector<double> y(static_cast<std::size_t>(b * oh * ow * c));
  auto at = [&](int64_t n, int64_t ih, int64_t iw, int64_t ch) {
    return x[static_cast<std::size_t>(((n * h + ih) * w + iw) * c + ch)];
  };
  for (int64_t n = 0; n < b; ++n)
    for (int64_t i = 0; i < oh; ++i) {
      const LinearTap64 th = resize_tap(h, oh, i);
      for (int64_t j = 0; j < ow; ++j) {
        const LinearTap64 tw = resize_tap(w, ow, j);
        for (int64_t ch = 0; ch < c; ++ch)
          y[static_cast<std::size_t>(((n * oh + i) * ow + j) * c + ch)] =
              th.l0 * (tw.l0 * at(n, th.i0, tw.i0, ch) + tw.l1 * at(n, th.i0, tw.i1, ch)) +
              th.l1 * (tw.l0 * at(n, th.i1, tw.i0, ch) + tw.l1 * at(n, th.i1, tw.i1, ch));
      }
    }
  return y;
}

}  // namespace dd::ref
