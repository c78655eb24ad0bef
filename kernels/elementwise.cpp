#include "kernels/elementwise.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
Device same_shape(const char* op, const Tensor& a, const Tensor& b) {
  DD_CHECK(a.defined() && b.defined(), op, ": undefined operand");
  DD_CHECK(a.shape() == b.shape(), op, ": shapes differ: ", describe(a), " vs ", describe(b));
  return common_device(op, {&a, &b});
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { DD_DISPATCH(same_shape("add", a, b), add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { DD_DISPATCH(same_shape("sub", a, b), sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { DD_DISPATCH(same_shape("mul", a, b), mul, a, b); }
Tensor affine(const Tensor& a, float alpha, float beta) {
  DD_DISPATCH(common_device("affine", {&a}), affine, a, alpha, beta);
}
void axpy_(Tensor& y, float alpha, const Tensor& x) {
  DD_DISPATCH(same_shape("axpy_", y, x), axpy_, y, alpha, x);
}
void scale_(Tensor& y, float alpha) { DD_DISPATCH(common_device("scale_", {&y}), scale_, y, alpha); }
double sum(const Tensor& a) { DD_DISPATCH(common_device("sum", {&a}), sum, a); }
double sum_squares(const Tensor& a) { DD_DISPATCH(common_device("sum_squares", {&a}), sum_squares, a); }

}  // namespace dd::kernels
