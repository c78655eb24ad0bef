#include "kernels/upsample.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

Tensor upsample2x_forward(const Tensor& x) {
  DD_CHECK(x.ndim() == 4, "upsample2x: x ", describe(x), " must be NHWC [B,H,W,C]");
  DD_DISPATCH(common_device("upsample2x", {&x}), upsample2x_forward, x);
}

Tensor upsample2x_backward(const Tensor& dy) {
  DD_CHECK(dy.ndim() == 4 && dy.dim(1) % 2 == 0 && dy.dim(2) % 2 == 0, "upsample2x_backward: dy ",
           describe(dy), " must be NHWC [B,2H,2W,C] with even H and W");
  DD_DISPATCH(common_device("upsample2x_backward", {&dy}), upsample2x_backward, dy);
}

}  // namespace dd::kernels
