#include "autograd/group_norm.h"

#include "autograd/conv2d_keep.h"
#include "kernels/group_norm.h"

namespace dd::ag {

Var group_norm(const Var& x, const Var& gamma, const Var& beta, int64_t groups, float eps, bool bf16_y) {
  kernels::GroupNormOut f = kernels::group_norm_forward(x.value(), gamma.value(), beta.value(), groups, eps, bf16_y);
  Var y(f.y, needs_grad({&x, &gamma, &beta}));
  // The backward reads x, or its bf16 copy under BF16 (autograd/conv2d_keep.h's norm_input).
  if (y.requires_grad())
    Tape::current().record([xk = norm_input(x), x = x.grad_ref(), gamma, beta = beta.grad_ref(), y = y.grad_ref(),
                            mean = f.mean, rstd = f.rstd] {
      if (!y.has_grad()) return;
      kernels::GroupNormGrads g = kernels::group_norm_backward(xk, gamma.value(), mean, rstd, y.grad());
      if (x.requires_grad()) x.accumulate_grad(g.dx);
      if (gamma.requires_grad()) gamma.accumulate_grad(g.dgamma);
      if (beta.requires_grad()) beta.accumulate_grad(g.dbeta);
    });
  return y;
}

}  // namespace dd::ag
