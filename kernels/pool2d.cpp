#include "kernels/pool2d.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

Shape pool2d_out_shape(const char* op, const Tensor& x, const Pool2dGeometry& g) {
  DD_CHECK(x.defined() && x.ndim() == 4 && x.numel() > 0, op, ": x ", describe(x),
           " must be a non-empty NHWC [B, H, W, C]");
  DD_CHECK(g.kernel > 0 && g.stride > 0, op, ": kernel ", g.kernel, " and stride ", g.stride,
           " must be > 0 (x ", describe(x), ")");
  DD_CHECK(g.pad >= 0 && g.pad <= g.kernel / 2, op, ": pad ", g.pad, " must be >= 0 and at most half the kernel ",
           g.kernel, ", as torch requires (x ", describe(x), ")");
  const int64_t hp = x.dim(1) + 2 * int64_t{g.pad}, wp = x.dim(2) + 2 * int64_t{g.pad};
  DD_CHECK(hp >= g.kernel && wp >= g.kernel, op, ": kernel ", g.kernel, " with pad ", g.pad, " leaves no output for x ",
           describe(x), " (padded to ", hp, "x", wp, ")");
  return {x.dim(0), (hp - g.kernel) / g.stride + 1, (wp - g.kernel) / g.stride + 1, x.dim(3)};
}

namespace {
void check_dy(const char* op, const Tensor& x, const Tensor& dy, const Pool2dGeometry& g) {
  const Shape ys = pool2d_out_shape(op, x, g);
  DD_CHECK(dy.defined() && dy.shape() == ys, op, ": dy ", describe(dy), " must be ", shape_str(ys), " for x ",
           describe(x), ", kernel ", g.kernel, ", stride ", g.stride, ", pad ", g.pad);
}
}  // namespace

Tensor max_pool2d_forward(const Tensor& x, const Pool2dGeometry& g) {
  pool2d_out_shape("max_pool2d", x, g);
  DD_DISPATCH(common_device("max_pool2d", {&x}), max_pool2d_forward, x, g);
}

Tensor max_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g) {
  check_dy("max_pool2d_backward", x, dy, g);
  DD_DISPATCH(common_device("max_pool2d_backward", {&x, &dy}), max_pool2d_backward, x, dy, g);
}

Tensor avg_pool2d_forward(const Tensor& x, const Pool2dGeometry& g) {
  pool2d_out_shape("avg_pool2d", x, g);
  DD_DISPATCH(common_device("avg_pool2d", {&x}), avg_pool2d_forward, x, g);
}

Tensor avg_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g) {
  check_dy("avg_pool2d_backward", x, dy, g);
  DD_DISPATCH(common_device("avg_pool2d_backward", {&x, &dy}), avg_pool2d_backward, x, dy, g);
}

Tensor global_avg_pool_forward(const Tensor& x) {
  DD_CHECK(x.defined() && x.ndim() == 4 && x.numel() > 0, "global_avg_pool: x ", describe(x),
           " must be a non-empty NHWC [B, H, W, C]");
  DD_DISPATCH(common_device("global_avg_pool", {&x}), global_avg_pool_forward, x);
}

Tensor global_avg_pool_backward(const Tensor& x, const Tensor& dy) {
  DD_CHECK(x.defined() && x.ndim() == 4 && x.numel() > 0, "global_avg_pool_backward: x ", describe(x),
           " must be a non-empty NHWC [B, H, W, C]");
  DD_CHECK(dy.defined() && dy.shape() == Shape({x.dim(0), x.dim(3)}), "global_avg_pool_backward: dy ", describe(dy),
           " must be [", x.dim(0), ",", x.dim(3), "] for x ", describe(x));
  DD_DISPATCH(common_device("global_avg_pool_backward", {&x, &dy}), global_avg_pool_backward, x, dy);
}

}  // namespace dd::kernels
