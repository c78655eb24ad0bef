#include "kernels/conv2d.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

Shape conv2d_out_shape(const char* op, const Tensor& x, const Tensor& w, int padding) {
  DD_CHECK(x.defined() && w.defined(), op, ": x and w must be defined");
  DD_CHECK(x.ndim() == 4 && x.numel() > 0, op, ": x ", describe(x), " must be a non-empty NHWC [B, H, W, Ci]");
  DD_CHECK(w.ndim() == 4 && w.numel() > 0 && w.dim(1) == w.dim(2), op, ": w ", describe(w),
           " must be a non-empty OHWI [Co, K, K, Ci] with a square kernel");
  DD_CHECK(w.dim(3) == x.dim(3), op, ": w ", describe(w), " has Ci = ", w.dim(3), " but x ", describe(x), " has ",
           x.dim(3), " channels");
  DD_CHECK(padding >= 0, op, ": padding ", padding, " must be >= 0 (x ", describe(x), ", w ", describe(w), ")");
  const int64_t k = w.dim(1);
  const int64_t ho = x.dim(1) + 2 * padding - k + 1, wo = x.dim(2) + 2 * padding - k + 1;
  DD_CHECK(ho >= 1 && wo >= 1, op, ": kernel ", k, "x", k, " with padding ", padding, " does not fit x ",
           describe(x), " (w ", describe(w), ")");
  return {x.dim(0), ho, wo, w.dim(0)};
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding) {
  conv2d_out_shape("conv2d", x, w, padding);
  DD_CHECK(!bias.defined() || bias.shape() == Shape{w.dim(0)}, "conv2d: bias ", describe(bias), " must be [",
           w.dim(0), "] for w ", describe(w));
  DD_DISPATCH(common_device("conv2d", {&x, &w, &bias}), conv2d_forward, x, w, bias, padding);
}

Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                            bool need_dw, bool need_dbias) {
  const Shape y_shape = conv2d_out_shape("conv2d_backward", x, w, padding);
  DD_CHECK(dy.defined() && dy.shape() == y_shape, "conv2d_backward: dy ", describe(dy), " must be ",
           shape_str(y_shape), " for x ", describe(x), ", w ", describe(w), ", padding ", padding);
  DD_DISPATCH(common_device("conv2d_backward", {&x, &w, &dy}), conv2d_backward, x, w, dy, padding, need_dx,
              need_dw, need_dbias);
}

namespace {
Shape conv2d_geo_out_shape(const char* op, const Tensor& x, const Tensor& w, const Conv2dGeometry& g) {
  DD_CHECK(x.defined() && w.defined(), op, ": x and w must be defined");
  DD_CHECK(x.ndim() == 4 && x.numel() > 0, op, ": x ", describe(x), " must be a non-empty NHWC [B, H, W, Ci]");
  DD_CHECK(w.ndim() == 4 && w.numel() > 0, op, ": w ", describe(w), " must be a non-empty OHWI [Co, KH, KW, Ci]");
  DD_CHECK(w.dim(3) == x.dim(3), op, ": w ", describe(w), " has Ci = ", w.dim(3), " but x ", describe(x), " has ",
           x.dim(3), " channels");
  DD_CHECK(g.stride >= 1, op, ": stride ", g.stride, " must be >= 1");
  DD_CHECK(g.pad_top >= 0 && g.pad_left >= 0 && g.pad_bottom >= 0 && g.pad_right >= 0, op, ": padding (top ",
           g.pad_top, ", left ", g.pad_left, ", bottom ", g.pad_bottom, ", right ", g.pad_right, ") must be >= 0");
  const int64_t kh = w.dim(1), kw = w.dim(2);
  const int64_t hp = x.dim(1) + g.pad_top + g.pad_bottom, wp = x.dim(2) + g.pad_left + g.pad_right;
  DD_CHECK(hp >= kh && wp >= kw, op, ": kernel ", kh, "x", kw, " (w ", describe(w), ") does not fit x ", describe(x),
           " padded to ", hp, "x", wp);
  return {x.dim(0), (hp - kh) / g.stride + 1, (wp - kw) / g.stride + 1, w.dim(0)};
}
}  // namespace

bool conv2d_uses_plain_path(const Tensor& w, const Conv2dGeometry& geo) {
  return geo.plain() && w.defined() && w.ndim() == 4 && w.dim(1) == w.dim(2);
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& geo) {
  if (conv2d_uses_plain_path(w, geo)) return conv2d_forward(x, w, bias, geo.pad_top);
  conv2d_geo_out_shape("conv2d", x, w, geo);
  DD_CHECK(!bias.defined() || bias.shape() == Shape{w.dim(0)}, "conv2d: bias ", describe(bias), " must be [",
           w.dim(0), "] for w ", describe(w));
  DD_DISPATCH(common_device("conv2d", {&x, &w, &bias}), conv2d_strided_forward, x, w, bias, geo);
}

Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeometry& geo,
                            bool need_dx, bool need_dw, bool need_dbias) {
  if (conv2d_uses_plain_path(w, geo)) return conv2d_backward(x, w, dy, geo.pad_top, need_dx, need_dw, need_dbias);
  const Shape y_shape = conv2d_geo_out_shape("conv2d_backward", x, w, geo);
  DD_CHECK(dy.defined() && dy.shape() == y_shape, "conv2d_backward: dy ", describe(dy), " must be ",
           shape_str(y_shape), " for x ", describe(x), ", w ", describe(w), ", stride ", geo.stride, ", padding (top ",
           geo.pad_top, ", left ", geo.pad_left, ", bottom ", geo.pad_bottom, ", right ", geo.pad_right, ")");
  DD_DISPATCH(common_device("conv2d_backward", {&x, &w, &dy}), conv2d_strided_backward, x, w, dy, geo, need_dx,
              need_dw, need_dbias);
}

}  // namespace dd::kernels
