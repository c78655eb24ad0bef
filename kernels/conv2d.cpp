#include "kernels/conv2d.h"

#include <atomic>

#include "kernels/concat.h"
#include "kernels/dispatch.h"
#include "kernels/pixel_unshuffle.h"
#include "kernels/upsample.h"

namespace dd::kernels {

namespace {
// x's shape checks against w, with x described as desc in the errors.
Shape out_shape(const char* op, const Shape& x, const std::string& desc, const Tensor& w, int padding) {
  DD_CHECK(x.size() == 4, op, ": x ", desc, " must be a non-empty NHWC [B, H, W, Ci]");
  DD_CHECK(w.ndim() == 4 && w.numel() > 0 && w.dim(1) == w.dim(2), op, ": w ", describe(w),
           " must be a non-empty OHWI [Co, K, K, Ci] with a square kernel");
  // A bf16 w is a Block's standardised weight kept in bf16 under BF16 (autograd/conv2d_keep.h): every
  // stride-1 path reads its values (the CPU's operand rounding widens it, the tensor cores read it).
  DD_CHECK(w.dtype() == DType::F32 || w.dtype() == DType::BF16, op, ": w ", describe(w),
           " must be float32 or bfloat16");
  DD_CHECK(w.dim(3) == x[3], op, ": w ", describe(w), " has Ci = ", w.dim(3), " but x ", desc, " has ", x[3],
           " channels");
  DD_CHECK(padding >= 0, op, ": padding ", padding, " must be >= 0 (x ", desc, ", w ", describe(w), ")");
  const int64_t k = w.dim(1);
  const int64_t ho = x[1] + 2 * padding - k + 1, wo = x[2] + 2 * padding - k + 1;
  DD_CHECK(ho >= 1 && wo >= 1, op, ": kernel ", k, "x", k, " with padding ", padding, " does not fit x ", desc,
           " (w ", describe(w), ")");
  return {x[0], ho, wo, w.dim(0)};
}

// x may be bf16 (kernels/conv2d.h says when); nothing else but fp32.
void check_x_dtype(const char* op, const Tensor& x) {
  DD_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::BF16, op, ": x ", describe(x),
           " must be float32 or bfloat16");
}

void check_bias(const char* op, const Tensor& bias, const Tensor& w) {
  DD_CHECK(!bias.defined() || bias.shape() == Shape{w.dim(0)}, op, ": bias ", describe(bias), " must be [", w.dim(0),
           "] for w ", describe(w));
}

std::atomic<Conv2dObserver> g_observer{nullptr};
thread_local int g_report_depth = 0;
}  // namespace

Conv2dObserver set_conv2d_observer(Conv2dObserver observer) { return g_observer.exchange(observer); }

Conv2dReport::Conv2dReport(const Conv2dCall& call) {
  if (g_report_depth++ == 0)
    if (Conv2dObserver o = g_observer.load(std::memory_order_relaxed)) o(call);
}
Conv2dReport::~Conv2dReport() { --g_report_depth; }

Conv2dObserverScope::Conv2dObserverScope(Conv2dObserver observer) : previous_(set_conv2d_observer(observer)) {}
Conv2dObserverScope::~Conv2dObserverScope() { set_conv2d_observer(previous_); }

Shape conv2d_out_shape(const char* op, const Tensor& x, const Tensor& w, int padding) {
  DD_CHECK(x.defined() && w.defined(), op, ": x and w must be defined");
  DD_CHECK(x.ndim() == 4 && x.numel() > 0, op, ": x ", describe(x), " must be a non-empty NHWC [B, H, W, Ci]");
  check_x_dtype(op, x);
  return out_shape(op, x.shape(), describe(x), w, padding);
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding) {
  conv2d_out_shape("conv2d", x, w, padding);
  check_bias("conv2d", bias, w);
  const Conv2dReport report({x.shape(), w.shape(), padding, bias.defined()});
  DD_DISPATCH(common_device("conv2d", {&x, &w, &bias}), conv2d_forward, x, w, bias, padding);
}

Tensor conv2d_forward_bf16(const Tensor& x, const Tensor& w, const Tensor& bias, int padding) {
  conv2d_out_shape("conv2d_forward_bf16", x, w, padding);
  check_bias("conv2d_forward_bf16", bias, w);
  const Conv2dReport report({x.shape(), w.shape(), padding, bias.defined()});
  DD_DISPATCH(common_device("conv2d_forward_bf16", {&x, &w, &bias}), conv2d_forward_bf16, x, w, bias, padding);
}

Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                            bool need_dw, bool need_dbias) {
  const Shape y_shape = conv2d_out_shape("conv2d_backward", x, w, padding);
  DD_CHECK(dy.defined() && dy.shape() == y_shape, "conv2d_backward: dy ", describe(dy), " must be ",
           shape_str(y_shape), " for x ", describe(x), ", w ", describe(w), ", padding ", padding);
  DD_DISPATCH(common_device("conv2d_backward", {&x, &w, &dy}), conv2d_backward, x, w, dy, padding, need_dx,
              need_dw, need_dbias);
}

Shape conv2d_parts_out_shape(const char* op, const std::vector<Tensor>& xs, const Tensor& w, int padding) {
  DD_CHECK(!xs.empty() && xs.size() <= 4, op, ": x in ", xs.size(), " channel parts; 1 to 4 are supported");
  for (std::size_t i = 0; i < xs.size(); ++i) {
    DD_CHECK(xs[i].defined() && xs[i].ndim() == 4 && xs[i].numel() > 0, op, ": part ", i, " of x ",
             xs[i].defined() ? describe(xs[i]) : std::string("(undefined)"),
             " must be a non-empty NHWC [B, H, W, C]");
    check_x_dtype(op, xs[i]);
    DD_CHECK(xs[i].dim(0) == xs[0].dim(0) && xs[i].dim(1) == xs[0].dim(1) && xs[i].dim(2) == xs[0].dim(2), op,
             ": part ", i, " of x ", describe(xs[i]), " differs from part 0 ", describe(xs[0]), " in B, H or W");
  }
  DD_CHECK(w.defined(), op, ": w must be defined");
  Shape whole = xs[0].shape();
  std::string desc = "concat(";
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (i) whole[3] += xs[i].dim(3);
    desc += (i ? ", " : "") + describe(xs[i]);
  }
  return out_shape(op, whole, desc + ")", w, padding);
}

Shape conv2d_parts_in_shape(const std::vector<Tensor>& xs) {
  Shape whole = xs.at(0).shape();
  for (std::size_t i = 1; i < xs.size(); ++i) whole[3] += xs[i].dim(3);
  return whole;
}

namespace {
std::vector<int64_t> widths_of(const std::vector<Tensor>& xs) {
  std::vector<int64_t> c;
  for (const Tensor& x : xs) c.push_back(x.dim(3));
  return c;
}
}  // namespace

Tensor conv2d_forward_parts(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias, int padding) {
  conv2d_parts_out_shape("conv2d", xs, w, padding);
  check_bias("conv2d", bias, w);
  const Conv2dReport report({conv2d_parts_in_shape(xs), w.shape(), padding, bias.defined()});
  std::vector<const Tensor*> all{&w, &bias};
  for (const Tensor& x : xs) all.push_back(&x);
  const Device dev = common_device("conv2d", {all.data(), all.data() + all.size()});
  if (dev == Device::CPU) DD_CPU_CALL(conv2d_forward_parts, xs, w, bias, padding);
  // The GPU's kernels read one tensor: the concatenation is built there (in bf16 when the parts are).
  return conv2d_forward(xs.size() == 1 ? xs[0] : concat_widening(xs), w, bias, padding);
}

Conv2dPartsGrads conv2d_backward_parts(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& dy, int padding,
                                       bool need_dx, bool need_dw, bool need_dbias) {
  const Shape y_shape = conv2d_parts_out_shape("conv2d_backward", xs, w, padding);
  DD_CHECK(dy.defined() && dy.shape() == y_shape, "conv2d_backward: dy ", describe(dy), " must be ",
           shape_str(y_shape), " for w ", describe(w), ", padding ", padding);
  std::vector<const Tensor*> all{&w, &dy};
  for (const Tensor& x : xs) all.push_back(&x);
  const Device dev = common_device("conv2d_backward", {all.data(), all.data() + all.size()});
  if (dev == Device::CPU) DD_CPU_CALL(conv2d_backward_parts, xs, w, dy, padding, need_dx, need_dw, need_dbias);
  Conv2dGrads g =
      conv2d_backward(xs.size() == 1 ? xs[0] : concat_widening(xs), w, dy, padding, need_dx, need_dw, need_dbias);
  Conv2dPartsGrads out;
  if (need_dx) out.dx = xs.size() == 1 ? std::vector<Tensor>{std::move(g.dx)} : split(g.dx, widths_of(xs));
  out.dw = std::move(g.dw);
  out.dbias = std::move(g.dbias);
  return out;
}

namespace {
// The maps the conv reads: nearest-2x upsampled, and 2x2 pixel-unshuffled.
Shape up2_shape(const Tensor& x) { return {x.dim(0), 2 * x.dim(1), 2 * x.dim(2), x.dim(3)}; }
Shape unshuffle2_shape(const Tensor& x) { return {x.dim(0), x.dim(1) / 2, x.dim(2) / 2, 4 * x.dim(3)}; }

Shape up2_out_shape(const char* op, const Tensor& x, const Tensor& w, int padding) {
  DD_CHECK(x.defined() && w.defined(), op, ": x and w must be defined");
  DD_CHECK(x.ndim() == 4 && x.numel() > 0, op, ": x ", describe(x), " must be a non-empty NHWC [B, H, W, Ci]");
  check_x_dtype(op, x);
  const Shape up = up2_shape(x);
  return out_shape(op, up, str_cat("upsample2x(", describe(x), ") ", shape_str(up)), w, padding);
}

Shape unshuffle2_out_shape(const char* op, const Tensor& x, const Tensor& w, int padding) {
  DD_CHECK(x.defined() && w.defined(), op, ": x and w must be defined");
  DD_CHECK(x.ndim() == 4 && x.numel() > 0 && x.dim(1) % 2 == 0 && x.dim(2) % 2 == 0, op, ": x ", describe(x),
           " must be a non-empty NHWC [B, H, W, C] with H and W even");
  check_x_dtype(op, x);
  const Shape un = unshuffle2_shape(x);
  return out_shape(op, un, str_cat("pixel_unshuffle(", describe(x), ") ", shape_str(un)), w, padding);
}
}  // namespace

Tensor conv2d_forward_unshuffle2(const Tensor& x, const Tensor& w, const Tensor& bias, int padding) {
  unshuffle2_out_shape("conv2d_unshuffle2", x, w, padding);
  check_bias("conv2d_unshuffle2", bias, w);
  const Conv2dReport report({unshuffle2_shape(x), w.shape(), padding, bias.defined()});
  if (common_device("conv2d_unshuffle2", {&x, &w, &bias}) == Device::CPU)
    DD_CPU_CALL(conv2d_forward_unshuffle2, x, w, bias, padding);
  return conv2d_forward(pixel_unshuffle_forward(x.to(DType::F32)), w, bias, padding);
}

Conv2dGrads conv2d_backward_unshuffle2(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                                       bool need_dw, bool need_dbias) {
  const Shape y_shape = unshuffle2_out_shape("conv2d_unshuffle2_backward", x, w, padding);
  DD_CHECK(dy.defined() && dy.shape() == y_shape, "conv2d_unshuffle2_backward: dy ", describe(dy), " must be ",
           shape_str(y_shape), " for x ", describe(x), ", w ", describe(w), ", padding ", padding);
  if (common_device("conv2d_unshuffle2_backward", {&x, &w, &dy}) == Device::CPU)
    DD_CPU_CALL(conv2d_backward_unshuffle2, x, w, dy, padding, need_dx, need_dw, need_dbias);
  Conv2dGrads g = conv2d_backward(pixel_unshuffle_forward(x.to(DType::F32)), w, dy, padding, need_dx, need_dw, need_dbias);
  if (need_dx) g.dx = pixel_unshuffle_backward(g.dx);
  return g;
}

Tensor conv2d_forward_up2(const Tensor& x, const Tensor& w, const Tensor& bias, int padding) {
  up2_out_shape("conv2d_up2", x, w, padding);
  check_bias("conv2d_up2", bias, w);
  const Conv2dReport report({up2_shape(x), w.shape(), padding, bias.defined()});
  if (common_device("conv2d_up2", {&x, &w, &bias}) == Device::CPU)
    DD_CPU_CALL(conv2d_forward_up2, x, w, bias, padding);
  return conv2d_forward(upsample2x_forward(x.to(DType::F32)), w, bias, padding);
}

Conv2dGrads conv2d_backward_up2(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                                bool need_dw, bool need_dbias) {
  const Shape y_shape = up2_out_shape("conv2d_up2_backward", x, w, padding);
  DD_CHECK(dy.defined() && dy.shape() == y_shape, "conv2d_up2_backward: dy ", describe(dy), " must be ",
           shape_str(y_shape), " for x ", describe(x), ", w ", describe(w), ", padding ", padding);
  if (common_device("conv2d_up2_backward", {&x, &w, &dy}) == Device::CPU)
    DD_CPU_CALL(conv2d_backward_up2, x, w, dy, padding, need_dx, need_dw, need_dbias);
  Conv2dGrads g = conv2d_backward(upsample2x_forward(x.to(DType::F32)), w, dy, padding, need_dx, need_dw, need_dbias);
  if (need_dx) g.dx = upsample2x_backward(g.dx);
  return g;
}

namespace {
Shape conv2d_geo_out_shape(const char* op, const Tensor& x, const Tensor& w, const Conv2dGeometry& g) {
  DD_CHECK(x.defined() && w.defined(), op, ": x and w must be defined");
  DD_CHECK(x.ndim() == 4 && x.numel() > 0, op, ": x ", describe(x), " must be a non-empty NHWC [B, H, W, Ci]");
  DD_CHECK(w.ndim() == 4 && w.numel() > 0, op, ": w ", describe(w), " must be a non-empty OHWI [Co, KH, KW, Ci]");
  DD_CHECK(x.dtype() == DType::F32 && w.dtype() == DType::F32, op, ": x ", describe(x), " and w ", describe(w),
           " must be float32 (a strided or non-square conv has no bf16 operands)");
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
  check_bias("conv2d", bias, w);
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
