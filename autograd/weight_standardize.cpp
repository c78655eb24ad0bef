#include "autograd/weight_standardize.h"

#include "kernels/weight_standardize.h"

namespace dd::ag {

Var weight_standardize(const Var& w, float eps) {
  Var y(kernels::weight_standardize_forward(w.value(), eps), needs_grad({&w}));
  if (y.requires_grad())
    Tape::current().record([w, y = y.grad_ref(), eps] {
      if (y.has_grad()) w.accumulate_grad(kernels::weight_standardize_backward(w.value(), y.grad(), eps));
    });
  return y;
}

}  // namespace dd::ag
