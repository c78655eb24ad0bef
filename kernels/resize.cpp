#include "kernels/resize.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

Tensor resize_bilinear(const Tensor& x, int out_h, int out_w) {
  DD_CHECK(x.defined() && x.ndim() == 4 && x.numel() > 0, "resize_bilinear: x ", describe(x),
           " must be a non-empty NHWC [B, H, W, C]");
  // Up to 2^24 the taps' double arithmetic is exact (kernels/resize_math.h), so every backend agrees.
  constexpr int kMaxSide = 1 << 24;
  DD_CHECK(out_h >= 1 && out_w >= 1 && out_h <= kMaxSide && out_w <= kMaxSide, "resize_bilinear: output size ", out_h,
           "x", out_w, " must be between 1x1 and 2^24 on a side (x ", describe(x), ")");
  DD_DISPATCH(common_device("resize_bilinear", {&x}), resize_bilinear, x, out_h, out_w);
}

}  // namespace dd::kernels
