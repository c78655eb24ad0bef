#include "kernels/linear.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
void check_operands(const char* op, const Tensor& x, const Tensor& w) {
  DD_CHECK(x.defined() && w.defined(), op, ": x and w must be defined");
  DD_CHECK(x.ndim() == 2 && w.ndim() == 2 && x.dim(1) == w.dim(1), op, ": x ", describe(x), " must be [M, K] and w ",
           describe(w), " [N, K]");
}
}  // namespace

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_operands("linear", x, w);
  DD_CHECK(!bias.defined() || bias.shape() == Shape{w.dim(0)}, "linear: bias ", describe(bias), " must be [",
           w.dim(0), "] for w ", describe(w));
  DD_DISPATCH(common_device("linear", {&x, &w, &bias}), linear_forward, x, w, bias);
}

LinearGrads linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, bool need_dx, bool need_dw,
                            bool need_dbias) {
  check_operands("linear_backward", x, w);
  DD_CHECK(dy.defined() && dy.shape() == Shape({x.dim(0), w.dim(0)}), "linear_backward: dy ", describe(dy),
           " must be [M, N] for x ", describe(x), " and w ", describe(w));
  DD_DISPATCH(common_device("linear_backward", {&x, &w, &dy}), linear_backward, x, w, dy, need_dx, need_dw,
              need_dbias);
}

}  // namespace dd::kernels
