#include "autograd/time_embedding.h"

#include "kernels/time_embedding.h"

namespace dd::ag {

Var time_embedding(const Var& t, int64_t dim) {
  Var y(kernels::time_embedding_forward(t.value(), dim), needs_grad({&t}));
  if (y.requires_grad())
    Tape::current().record([t, y = y.grad_ref()] {
      if (y.has_grad()) t.accumulate_grad(kernels::time_embedding_backward(t.value(), y.grad()));
    });
  return y;
}

}  // namespace dd::ag
