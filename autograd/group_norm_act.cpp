#include "autograd/group_norm_act.h"

#include "autograd/conv2d_keep.h"
#include "kernels/group_norm_act.h"

namespace dd::ag {

Var group_norm_act(const Var& x, const Var& gamma, const Var& beta, const Var& scale, const Var& shift,
                   int64_t groups, float eps) {
  const Tensor none;
  const Tensor& sv = scale.defined() ? scale.value() : none;
  const Tensor& hv = shift.defined() ? shift.value() : none;
  kernels::GroupNormActOut f =
      kernels::group_norm_act_forward(x.value(), gamma.value(), beta.value(), sv, hv, groups, eps);
  Var y(f.y, needs_grad({&x, &gamma, &beta, &scale, &shift}));
  // Only x (its bf16 copy under BF16: autograd/conv2d_keep.h's norm_input) and the [B, G]
  // statistics are kept: the backward recomputes the rest.
  if (y.requires_grad())
    Tape::current().record([xk = norm_input(x), x = x.grad_ref(), gamma, beta, scale, shift, y = y.grad_ref(),
                            mean = f.mean, rstd = f.rstd] {
      if (!y.has_grad()) return;
      const Tensor no;
      kernels::GroupNormActGrads g = kernels::group_norm_act_backward(
          xk, gamma.value(), beta.value(), scale.defined() ? scale.value() : no,
          shift.defined() ? shift.value() : no, mean, rstd, y.grad());
      if (x.requires_grad()) x.accumulate_grad(g.dx);
      if (gamma.requires_grad()) gamma.accumulate_grad(g.dgamma);
      if (beta.requires_grad()) beta.accumulate_grad(g.dbeta);
      if (scale.requires_grad()) scale.accumulate_grad(g.dscale);
      if (shift.requires_grad()) shift.accumulate_grad(g.dshift);
    });
  return y;
}

}  // namespace dd::ag
