#include "autograd/activation.h"

#include "kernels/activation.h"

namespace dd::ag {

Var silu(const Var& x) {
  Var y(kernels::silu_forward(x.value()), needs_grad({&x}));
  if (y.requires_grad())
    Tape::current().record([x, y = y.grad_ref()] {
      if (y.has_grad()) x.accumulate_grad(kernels::silu_backward(x.value(), y.grad()));
    });
  return y;
}

Var gelu(const Var& x) {
  Var y(kernels::gelu_forward(x.value()), needs_grad({&x}));
  if (y.requires_grad())
    Tape::current().record([x, y = y.grad_ref()] {
      if (y.has_grad()) x.accumulate_grad(kernels::gelu_backward(x.value(), y.grad()));
    });
  return y;
}

Var relu(const Var& x) {
  Var y(kernels::relu_forward(x.value()), needs_grad({&x}));
  if (y.requires_grad())
    Tape::current().record([x, y = y.grad_ref()] {
      if (y.has_grad()) x.accumulate_grad(kernels::relu_backward(x.value(), y.grad()));
    });
  return y;
}

}  // namespace dd::ag
