#include "autograd/conv2d_norm_act.h"

#include "autograd/conv2d_keep.h"

#include "kernels/conv2d_norm_act.h"

namespace dd::ag {

Var conv2d_group_norm_act(const std::vector<Var>& xs, const Var& w, const Var& bias, int padding, const Var& gamma,
                          const Var& beta, const Var& scale, const Var& shift, int64_t groups, float eps,
                          bool bf16_y) {
  const Tensor none;
  auto value = [&none](const Var& v) -> const Tensor& { return v.defined() ? v.value() : none; };
  std::vector<const Var*> inputs{&w, &bias, &gamma, &beta, &scale, &shift};
  for (const Var& x : xs) inputs.push_back(&x);
  const bool rec = needs_grad(inputs);
  std::vector<Tensor> values;  // what the conv reads and its backward keeps (autograd/conv2d_keep.h)
  for (const Var& x : xs) values.push_back(conv_input(x, rec));
  const Tensor wk = conv_weight(w, rec);
  kernels::Conv2dNormActOut f =
      kernels::conv2d_group_norm_act_forward(values, wk, value(bias), padding, gamma.value(), beta.value(),
                                             value(scale), value(shift), groups, eps, keep_norm_input_bf16(rec),
                                             bf16_y);
  Var y(f.n.y, rec);
  if (y.requires_grad())
    Tape::current().record([xs = grad_refs(xs), values, wk, w = w.grad_ref(), bias = bias.grad_ref(), gamma, beta,
                            scale, shift, y = y.grad_ref(), padding, h = f.h, mean = f.n.mean, rstd = f.n.rstd] {
      if (!y.has_grad()) return;
      const Tensor no;
      bool need_dx = false;
      for (const GradRef& x : xs) need_dx = need_dx || x.requires_grad();
      kernels::Conv2dNormActGrads g = kernels::conv2d_group_norm_act_backward(
          values, wk, h, padding, gamma.value(), beta.value(), scale.defined() ? scale.value() : no,
          shift.defined() ? shift.value() : no, mean, rstd, y.grad(), need_dx, w.requires_grad(),
          bias.requires_grad());
      for (std::size_t i = 0; i < xs.size(); ++i)
        if (xs[i].requires_grad()) xs[i].accumulate_grad(g.dx[i]);
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
