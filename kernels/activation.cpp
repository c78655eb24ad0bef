#include "kernels/activation.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
Device check_grad_pair(const char* op, const Tensor& x, const Tensor& dy) {
  DD_CHECK(x.shape() == dy.shape(), op, ": x ", describe(x), " and dy ", describe(dy),
           " must have the same shape");
  return common_device(op, {&x, &dy});
}
}  // namespace

Tensor silu_forward(const Tensor& x) { DD_DISPATCH(common_device("silu", {&x}), silu_forward, x); }
Tensor silu_backward(const Tensor& x, const Tensor& dy) {
  DD_DISPATCH(check_grad_pair("silu_backward", x, dy), silu_backward, x, dy);
}
Tensor gelu_forward(const Tensor& x) { DD_DISPATCH(common_device("gelu", {&x}), gelu_forward, x); }
Tensor gelu_backward(const Tensor& x, const Tensor& dy) {
  DD_DISPATCH(check_grad_pair("gelu_backward", x, dy), gelu_backward, x, dy);
}
Tensor relu_forward(const Tensor& x) { DD_DISPATCH(common_device("relu", {&x}), relu_forward, x); }
Tensor relu_backward(const Tensor& x, const Tensor& dy) {
  DD_DISPATCH(check_grad_pair("relu_backward", x, dy), relu_backward, x, dy);
}

}  // namespace dd::kernels
