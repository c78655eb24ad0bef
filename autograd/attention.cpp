#include "autograd/attention.h"

#include "kernels/attention.h"

namespace dd::ag {

Var attention(const Var& qkv, int64_t heads, int64_t dim_head) {
  Var y(kernels::attention_forward(qkv.value(), heads, dim_head), needs_grad({&qkv}));
  if (y.requires_grad())
    Tape::current().record([qkv, y = y.grad_ref(), heads, dim_head] {
      if (y.has_grad())
        qkv.accumulate_grad(kernels::attention_backward(qkv.value(), y.grad(), heads, dim_head));
    });
  return y;
}

}  // namespace dd::ag
