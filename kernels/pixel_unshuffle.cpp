#include "kernels/pixel_unshuffle.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

Tensor pixel_unshuffle_forward(const Tensor& x) {
  DD_CHECK(x.ndim() == 4, "pixel_unshuffle: x ", describe(x), " must be NHWC [B,H,W,C]");
  DD_CHECK(x.dim(1) % 2 == 0 && x.dim(2) % 2 == 0, "pixel_unshuffle: H and W of x ", describe(x),
           " must be even (2x2 blocks)");
  DD_DISPATCH(common_device("pixel_unshuffle", {&x}), pixel_unshuffle_forward, x);
}

Tensor pixel_unshuffle_backward(const Tensor& dy) {
  DD_CHECK(dy.ndim() == 4 && dy.dim(3) % 4 == 0, "pixel_unshuffle_backward: dy ", describe(dy),
           " must be NHWC [B,h,w,4C]");
  DD_DISPATCH(common_device("pixel_unshuffle_backward", {&dy}), pixel_unshuffle_backward, dy);
}

}  // namespace dd::kernels
