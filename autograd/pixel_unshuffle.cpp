#include "autograd/pixel_unshuffle.h"

#include "kernels/pixel_unshuffle.h"

namespace dd::ag {

Var pixel_unshuffle(const Var& x) {
  Var y(kernels::pixel_unshuffle_forward(x.value()), needs_grad({&x}));
  if (y.requires_grad())
    Tape::current().record([x = x.grad_ref(), y = y.grad_ref()] {
      if (y.has_grad()) x.accumulate_grad(kernels::pixel_unshuffle_backward(y.grad()));
    });
  return y;
}

}  // namespace dd::ag
