#include "autograd/dropout.h"

#include "kernels/dropout.h"

namespace dd::ag {

Var dropout(const Var& x, float p, uint64_t seed, PhiloxOffset offset) {
  if (p == 0.0f) return x;
  Var y(kernels::dropout(x.value(), p, seed, offset), needs_grad({&x}));
  if (y.requires_grad())
    Tape::current().record([x = x.grad_ref(), y = y.grad_ref(), p, seed, offset] {
      if (y.has_grad()) x.accumulate_grad(kernels::dropout(y.grad(), p, seed, offset));
    });
  return y;
}

}  // namespace dd::ag
