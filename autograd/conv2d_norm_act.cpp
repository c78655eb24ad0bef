#include "autograd/conv2d_norm_act.h"

#include "kernels/conv2d_norm_act.h"

namespace dd::ag {

Var conv2d_group_norm_act(const Var& x, const Var& w, const Var& bias, int padding, const Var& gamma,
                          const Var& beta, const Var& scale, const Var& shift, int64_t groups, float eps) {
  const Tensor none;
  auto value = [&none](const Var& v) -> const Tensor& { return v.defined() ? v.value() : none; };
  kernels::Conv2dNormActOut f = kernels::conv2d_group_norm_act_forward(
      x.value(), w.value(), value(bias), padding, gamma.value(), beta.value(), value(scale), value(shift), groups, eps);
  Var y(f.n.y, needs_grad({&x, &w, &bias, &gamma, &beta, &scale, &shift}));
  if (y.requires_grad())
    Tape::current().record([x, w, bias, gamma, beta, scale, shift, y, padding, h = f.h, mean = f.n.mean,
                            rstd = f.n.rstd] {
      if (!y.has_grad()) return;
      const Tensor no;
      kernels::Conv2dNormActGrads g = kernels::conv2d_group_norm_act_backward(
          x.value(), w.value(), h, padding, gamma.value(), beta.value(), scale.defined() ? scale.value() : no,
          shift.defined() ? shift.value() : no, mean, rstd, y.grad(), x.requires_grad(), w.requires_grad(),
          bias.requires_grad());
      if (x.requires_grad()) x.accumulate_grad(g.dx);
      if (w.requires_grad()) w.accumulate_grad(g.dw);
      if (bias.requires_grad()) bias.accumulate_grad(g.dbias);
      if (gamma.requires_grad()) gamma.accumulate_grad(g.dgamma);
      if (beta.requires_grad()) beta.accumulate_grad(g.dbeta);
      if (scale.requires_grad()) scale.accumulate_grad(g.dscale);
      if (shift.requires_grad()) shift.accumulate_grad(g.dshift);
    });
  return y;
}

}  // namespace dd::ag
