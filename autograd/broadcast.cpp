#include "autograd/broadcast.h"

#include "kernels/broadcast.h"

namespace dd::ag {

Var add_bc(const Var& x, const Var& v) {
  Var y(kernels::add_bc(x.value(), v.value()), needs_grad({&x, &v}));
  if (y.requires_grad())
    Tape::current().record([x = x.grad_ref(), v = v.grad_ref(), y = y.grad_ref()] {
      if (!y.has_grad()) return;
      x.accumulate_grad(y.grad());
      if (v.requires_grad()) v.accumulate_grad(kernels::add_bc_backward(y.grad()));
    });
  return y;
}

Var mul_bc(const Var& x, const Var& v) {
  Var y(kernels::mul_bc(x.value(), v.value()), needs_grad({&x, &v}));
  if (y.requires_grad())
    Tape::current().record([x, v, y = y.grad_ref()] {
      if (!y.has_grad()) return;
      kernels::MulBcGrads g = kernels::mul_bc_backward(x.value(), v.value(), y.grad());
      x.accumulate_grad(g.dx);
      v.accumulate_grad(g.dv);
    });
  return y;
}

Var scale_shift(const Var& x, const Var& scale, const Var& shift) {
  Var y(kernels::scale_shift(x.value(), scale.value(), shift.value()), needs_grad({&x, &scale, &shift}));
  if (y.requires_grad())
    Tape::current().record([x, scale, shift = shift.grad_ref(), y = y.grad_ref()] {
      if (!y.has_grad()) return;
      kernels::ScaleShiftGrads g = kernels::scale_shift_backward(x.value(), scale.value(), y.grad());
      x.accumulate_grad(g.dx);
      scale.accumulate_grad(g.dscale);
      shift.accumulate_grad(g.dshift);
    });
  return y;
}

}  // namespace dd::ag
