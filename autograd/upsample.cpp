#include "autograd/upsample.h"

#include "kernels/upsample.h"

namespace dd::ag {

Var upsample2x(const Var& x) {
  Var y(kernels::upsample2x_forward(x.value()), needs_grad({&x}));
  if (y.requires_grad())
    Tape::current().record([x = x.grad_ref(), y = y.grad_ref()] {
      if (y.has_grad()) x.accumulate_grad(kernels::upsample2x_backward(y.grad()));
    });
  return y;
}

}  // namespace dd::ag
