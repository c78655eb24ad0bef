#include "autograd/pool2d.h"

namespace dd::ag {

// The max pool's backward recomputes the maxima from x (kept by the closure) rather than saving
// their positions: one more pass over x, no index tensor.
Var max_pool2d(const Var& x, const kernels::Pool2dGeometry& g) {
  Var y(kernels::max_pool2d_forward(x.value(), g), needs_grad({&x}));
  if (y.requires_grad())
    Tape::current().record([x, y = y.grad_ref(), g] {
      if (y.has_grad()) x.accumulate_grad(kernels::max_pool2d_backward(x.value(), y.grad(), g));
    });
  return y;
}

Var avg_pool2d(const Var& x, const kernels::Pool2dGeometry& g) {
  Var y(kernels::avg_pool2d_forward(x.value(), g), needs_grad({&x}));
  if (y.requires_grad())
    Tape::current().record([x, y = y.grad_ref(), g] {
      if (y.has_grad()) x.accumulate_grad(kernels::avg_pool2d_backward(x.value(), y.grad(), g));
    });
  return y;
}

Var global_avg_pool(const Var& x) {
  Var y(kernels::global_avg_pool_forward(x.value()), needs_grad({&x}));
  if (y.requires_grad())
    Tape::current().record([x, y = y.grad_ref()] {
      if (y.has_grad()) x.accumulate_grad(kernels::global_avg_pool_backward(x.value(), y.grad()));
    });
  return y;
}

}  // namespace dd::ag
