#include "autograd/linear.h"

#include "kernels/linear.h"

namespace dd::ag {

Var linear(const Var& x, const Var& w, const Var& bias) {
  const Tensor no_bias;
  Var y(kernels::linear_forward(x.value(), w.value(), bias.defined() ? bias.value() : no_bias),
        needs_grad({&x, &w, &bias}));
  if (y.requires_grad())
    Tape::current().record([x, w, bias = bias.grad_ref(), y = y.grad_ref()] {
      if (!y.has_grad()) return;
      kernels::LinearGrads g = kernels::linear_backward(x.value(), w.value(), y.grad(), x.requires_grad(),
                                                        w.requires_grad(), bias.requires_grad());
      if (x.requires_grad()) x.accumulate_grad(g.dx);
      if (w.requires_grad()) w.accumulate_grad(g.dw);
      if (bias.requires_grad()) bias.accumulate_grad(g.dbias);
    });
  return y;
}

}  // namespace dd::ag
