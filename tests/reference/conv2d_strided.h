#pragma once
// Naive float64 reference for torch.nn.functional.conv2d(F.pad(x, (pl, pr, pt, pb)), w, b, stride=s)
// in the engine's layouts: x NHWC [b, h, w, ci], weight OHWI [co, kh, kw, ci] (kh != kw allowed),
// bias [co] or empty.
#include <cstdint>
#include <vector>

namespace dd::ref {

struct StridedConvDims {
  int64_t b, h, w, ci, co, kh, kw, s, pt, pl, pb, pr;
  int64_t ho() const { return (h + pt + pb - kh) / s + 1; }
  int64_t wo() const { return (w + pl + pr - kw) / s + 1; }
  int64_t x_numel() const { return b * h * w * ci; }
  int64_t w_numel() const { return co * kh * kw * ci; }
  int64_t y_numel() const { return b * ho() * wo() * co; }
};

inline std::vector<double> conv2d_strided(const StridedConvDims& d, const std::vector<double>& x,
                                          const std::vector<double>& wt, const std::vector<double>& bias) {
  std::vector<double> y(static_cast<std::size_t>(d.y_numel()));
  for (int64_t n = 0; n < d.b; ++n)
    for (int64_t oh = 0; oh < d.ho(); ++oh)
      for (int64_t ow = 0; ow < d.wo(); ++ow)
        for (int64_t o = 0; o < d.co; ++o) {
          double s = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(o)];
          for (int64_t kh = 0; kh < d.kh; ++kh)
            for (int64_t kw = 0; kw < d.kw; ++kw) {
              const int64_t ih = oh * d.s + kh - d.pt, iw = ow * d.s + kw - d.pl;
              if (ih < 0 || ih >= d.h || iw < 0 || iw >= d.w) continue;  // zero padding
              for (int64_t c = 0; c < d.ci; ++c)
                s += x[static_cast<std::size_t>(((n * d.h + ih) * d.w + iw) * d.ci + c)] *
                     wt[static_cast<std::size_t>(((o * d.kh + kh) * d.kw + kw) * d.ci + c)];
            }
          y[static_cast<std::size_t>(((n * d.ho() + oh) * d.wo() + ow) * d.co + o)] = s;
        }
  return y;
}

}  // namespace dd::ref
