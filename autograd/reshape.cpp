#include "autograd/reshape.h"

#include "engine/error.h"

namespace dd::ag {

Var reshape(const Var& x, const Shape& shape) {
  DD_CHECK(shape_numel(shape) == x.value().numel(), "reshape: ", shape_str(x.shape()), " has ", x.value().numel(),
           " elements, ", shape_str(shape), " has ", shape_numel(shape));
  Var y(x.value().reshape(shape), needs_grad({&x}));
  if (y.requires_grad())
    Tape::current().record([x = x.grad_ref(), y = y.grad_ref()] {
      if (y.has_grad()) x.accumulate_grad(y.grad().reshape(x.shape()));
    });
  return y;
}

}  // namespace dd::ag
