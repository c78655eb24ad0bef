#include "kernels/broadcast.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
void check_bc(const char* op, const Tensor& x, const Tensor& v, const char* vname) {
  DD_CHECK(x.ndim() >= 2, op, ": x ", describe(x), " must be [B, positions..., C]");
  DD_CHECK(v.ndim() == 2 && v.dim(0) == x.dim(0) && v.dim(1) == x.dim(-1), op, ": ", vname, " ",
           describe(v), " must be [B, C] = [", x.dim(0), ",", x.dim(-1), "] for x ", describe(x));
}

void check_dy(const char* op, const Tensor& x, const Tensor& dy) {
  DD_CHECK(dy.shape() == x.shape(), op, ": dy ", describe(dy), " and x ", describe(x),
           " must have the same shape");
}
}  // namespace

Tensor add_bc(const Tensor& x, const Tensor& v) {
  check_bc("add_bc", x, v, "v");
  DD_DISPATCH(common_device("add_bc", {&x, &v}), add_bc, x, v);
}

Tensor mul_bc(const Tensor& x, const Tensor& v) {
  check_bc("mul_bc", x, v, "v");
  DD_DISPATCH(common_device("mul_bc", {&x, &v}), mul_bc, x, v);
}

Tensor scale_shift(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  check_bc("scale_shift", x, scale, "scale");
  check_bc("scale_shift", x, shift, "shift");
  DD_DISPATCH(common_device("scale_shift", {&x, &scale, &shift}), scale_shift, x, scale, shift);
}

Tensor add_bc_backward(const Tensor& dy) {
  DD_CHECK(dy.ndim() >= 2, "add_bc_backward: dy ", describe(dy), " must be [B, positions..., C]");
  DD_DISPATCH(common_device("add_bc_backward", {&dy}), add_bc_backward, dy);
}

MulBcGrads mul_bc_backward(const Tensor& x, const Tensor& v, const Tensor& dy) {
  check_bc("mul_bc_backward", x, v, "v");
  check_dy("mul_bc_backward", x, dy);
  DD_DISPATCH(common_device("mul_bc_backward", {&x, &v, &dy}), mul_bc_backward, x, v, dy);
}

ScaleShiftGrads scale_shift_backward(const Tensor& x, const Tensor& scale, const Tensor& dy) {
  check_bc("scale_shift_backward", x, scale, "scale");
  check_dy("scale_shift_backward", x, dy);
  DD_DISPATCH(common_device("scale_shift_backward", {&x, &scale, &dy}), scale_shift_backward, x,
              scale, dy);
}

}  // namespace dd::kernels
