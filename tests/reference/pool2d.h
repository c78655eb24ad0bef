#pragma once
// Naive float64 references for torch.nn.functional.max_pool2d / avg_pool2d (ceil_mode=False) and
// adaptive_avg_pool2d(x, 1), in the engine's NHWC layout, written from torch's definitions:
// windows start at o*stride - pad; max treats padding as -inf and its gradient goes to the first
// maximum in (kh, kw) scan order (torch's CPU kernel: `val > max || isnan(val)`); avg divides by
// kernel^2 (count_include_pad) or by the number of in-image elements.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace dd::ref {

struct PoolDims {
  int64_t b, h, w, c, k, s, p;
  int64_t ho() const { return (h + 2 * p - k) / s + 1; }
  int64_t wo() const { return (w + 2 * p - k) / s + 1; }
  int64_t x_numel() const { return b * h * w * c; }
  int64_t y_numel() const { return b * ho() * wo() * c; }
};

namespace detail {
inline std::size_t xi(const PoolDims& d, int64_t n, int64_t ih, int64_t iw, int64_t ch) {
  return static_cast<std::size_t>(((n * d.h + ih) * d.w + iw) * d.c + ch);
}
inline std::size_t yi(const PoolDims& d, int64_t n, int64_t oh, int64_t ow, int64_t ch) {
  return static_cast<std::size_t>(((n * d.ho() + oh) * d.wo() + ow) * d.c + ch);
}
inline bool inside(const PoolDims& d, int64_t ih, int64_t iw) { return ih >= 0 && ih < d.h && iw >= 0 && iw < d.w; }

// The flat position (ih * w + iw) of window (oh, ow)'s maximum in channel ch of image n, and its value.
inline int64_t argmax(const PoolDims& d, const std::vector<double>& x, int64_t n, int64_t oh, int64_t ow, int64_t ch,
                      double* value) {
  double best = -std::numeric_limits<double>::infinity();
  int64_t at = -1;
  for (int64_t kh = 0; kh < d.k; ++kh)
    for (int64_t kw = 0; kw < d.k; ++kw) {
      const int64_t ih = oh * d.s - d.p + kh, iw = ow * d.s - d.p + kw;
      if (!inside(d, ih, iw)) continue;  // padding is -inf: never the maximum
      const double v = x[xi(d, n, ih, iw, ch)];
      if (at < 0 || v > best || std::isnan(v)) {  // the first in-image element starts the scan
        best = v;
        at = ih * d.w + iw;
      }
    }
  *value = best;
  return at;
}
}  // namespace detail

inline std::vector<double> max_pool2d(const PoolDims& d, const std::vector<double>& x) {
  std::vector<double> y(static_cast<std::size_t>(d.y_numel()));
  for (int64_t n = 0; n < d.b; ++n)
    for (int64_t oh = 0; oh < d.ho(); ++oh)
      for (int64_t ow = 0; ow < d.wo(); ++ow)
        for (int64_t ch = 0; ch < d.c; ++ch) detail::argmax(d, x, n, oh, ow, ch, &y[detail::yi(d, n, oh, ow, ch)]);
  return y;
}

// dx of the max pool: each window's dy added at its first maximum.
inline std::vector<double> max_pool2d_backward(const PoolDims& d, const std::vector<double>& x,
                                               const std::vector<double>& dy) {
  std::vector<double> dx(static_cast<std::size_t>(d.x_numel()), 0.0);
  for (int64_t n = 0; n < d.b; ++n)
    for (int64_t oh = 0; oh < d.ho(); ++oh)
      for (int64_t ow = 0; ow < d.wo(); ++ow)
        for (int64_t ch = 0; ch < d.c; ++ch) {
          double v;
          const int64_t at = detail::argmax(d, x, n, oh, ow, ch, &v);
          dx[detail::xi(d, n, at / d.w, at % d.w, ch)] += dy[detail::yi(d, n, oh, ow, ch)];
        }
  return dx;
}

inline std::vector<double> avg_pool2d(const PoolDims& d, const std::vector<double>& x, bool count_include_pad) {
  std::vector<double> y(static_cast<std::size_t>(d.y_numel()));
  for (int64_t n = 0; n < d.b; ++n)
    for (int64_t oh = 0; oh < d.ho(); ++oh)
      for (int64_t ow = 0; ow < d.wo(); ++ow)
        for (int64_t ch = 0; ch < d.c; ++ch) {
          double s = 0.0;
          int64_t count = 0;
          for (int64_t kh = 0; kh < d.k; ++kh)
            for (int64_t kw = 0; kw < d.k; ++kw) {
              const int64_t ih = oh * d.s - d.p + kh, iw = ow * d.s - d.p + kw;
              if (!detail::inside(d, ih, iw)) continue;  // zero padding
              s += x[detail::xi(d, n, ih, iw, ch)];
              ++count;
            }
          y[detail::yi(d, n, oh, ow, ch)] = s / static_cast<double>(count_include_pad ? d.k * d.k : count);
        }
  return y;
}

// [b, h, w, c] -> [b, c]
inline std::vector<double> global_avg_pool(const std::vector<double>& x, int64_t b, int64_t h, int64_t w, int64_t c) {
  std::vector<double> y(static_cast<std::size_t>(b * c), 0.0);
  for (int64_t n = 0; n < b; ++n)
    for (int64_t p = 0; p < h * w; ++p)
      for (int64_t ch = 0; ch < c; ++ch)
        y[static_cast<std::size_t>(n * c + ch)] += x[static_cast<std::size_t>((n * h * w + p) * c + ch)];
  for (double& v : y) v /= static_cast<double>(h * w);
  return y;
}

}  // namespace dd::ref
