#include "autograd/conv2d.h"

#include "autograd/conv2d_keep.h"

#include "kernels/conv2d.h"

namespace dd::ag {

Var conv2d(const Var& x, const Var& w, const Var& bias, int padding) {
  const Tensor no_bias;
  const bool rec = needs_grad({&x, &w, &bias});
  const Tensor xin = conv_input(x, rec);
  Var y(kernels::conv2d_forward(xin, w.value(), bias.defined() ? bias.value() : no_bias, padding), rec);
  if (y.requires_grad())
    Tape::current().record([xin, x = x.grad_ref(), w, bias = bias.grad_ref(), y = y.grad_ref(), padding] {
      if (!y.has_grad()) return;
      kernels::Conv2dGrads g = kernels::conv2d_backward(xin, w.value(), y.grad(), padding, x.requires_grad(),
                                                        w.requires_grad(), bias.requires_grad());
      if (x.requires_grad()) x.accumulate_grad(g.dx);
      if (w.requires_grad()) w.accumulate_grad(g.dw);
      if (bias.requires_grad()) bias.accumulate_grad(g.dbias);
    });
  return y;
}

Var conv2d(const std::vector<Var>& xs, const Var& w, const Var& bias, int padding) {
  if (xs.size() == 1) return conv2d(xs[0], w, bias, padding);
  const Tensor no_bias;
  std::vector<const Var*> inputs{&w, &bias};
  for (const Var& x : xs) inputs.push_back(&x);
  const bool rec = needs_grad(inputs);
  std::vector<Tensor> values;
  for (const Var& x : xs) values.push_back(conv_input(x, rec));
  Var y(kernels::conv2d_forward_parts(values, w.value(), bias.defined() ? bias.value() : no_bias, padding), rec);
  if (y.requires_grad())
    Tape::current().record([xs = grad_refs(xs), values, w, bias = bias.grad_ref(), y = y.grad_ref(), padding] {
      if (!y.has_grad()) return;
      bool need_dx = false;
      for (const GradRef& x : xs) need_dx = need_dx || x.requires_grad();
      kernels::Conv2dPartsGrads g = kernels::conv2d_backward_parts(values, w.value(), y.grad(), padding, need_dx,
                                                                   w.requires_grad(), bias.requires_grad());
      for (std::size_t i = 0; i < xs.size(); ++i)
        if (xs[i].requires_grad()) xs[i].accumulate_grad(g.dx[i]);
      if (w.requires_grad()) w.accumulate_grad(g.dw);
      if (bias.requires_grad()) bias.accumulate_grad(g.dbias);
    });
  return y;
}

namespace {
// An op whose kernels take (x, w, bias, padding) like conv2d's: the upsampled and unshuffled reads.
// Both reads round x as the plain conv does (the CPU's 1x1 unshuffled read runs as a linear layer,
// on x already rounded to bf16 under BF16), so they take x's bf16 copy (autograd/conv2d_keep.h).
template <class Forward, class Backward>
Var conv2d_read(const Var& x, const Var& w, const Var& bias, int padding, Forward forward, Backward backward) {
  const Tensor no_bias;
  const bool rec = needs_grad({&x, &w, &bias});
  const Tensor xin = conv_input(x, rec);
  Var y(forward(xin, w.value(), bias.defined() ? bias.value() : no_bias, padding), rec);
  if (y.requires_grad())
    Tape::current().record([xin, x = x.grad_ref(), w, bias = bias.grad_ref(), y = y.grad_ref(), padding, backward] {
      if (!y.has_grad()) return;
      kernels::Conv2dGrads g = backward(xin, w.value(), y.grad(), padding, x.requires_grad(), w.requires_grad(),
                                        bias.requires_grad());
      if (x.requires_grad()) x.accumulate_grad(g.dx);
      if (w.requires_grad()) w.accumulate_grad(g.dw);
      if (bias.requires_grad()) bias.accumulate_grad(g.dbias);
    });
  return y;
}
}  // namespace

Var conv2d_up2(const Var& x, const Var& w, const Var& bias, int padding) {
  return conv2d_read(x, w, bias, padding, kernels::conv2d_forward_up2, kernels::conv2d_backward_up2);
}

Var conv2d_unshuffle2(const Var& x, const Var& w, const Var& bias, int padding) {
  return conv2d_read(x, w, bias, padding, kernels::conv2d_forward_unshuffle2, kernels::conv2d_backward_unshuffle2);
}

Var conv2d(const Var& x, const Var& w, const Var& bias, const kernels::Conv2dGeometry& geo) {
  if (kernels::conv2d_uses_plain_path(w.value(), geo)) return conv2d(x, w, bias, geo.pad_top);
  const Tensor no_bias;
  Var y(kernels::conv2d_forward(x.value(), w.value(), bias.defined() ? bias.value() : no_bias, geo),
        needs_grad({&x, &w, &bias}));
  if (y.requires_grad())
    Tape::current().record([x, w, bias = bias.grad_ref(), y = y.grad_ref(), geo] {
      if (!y.has_grad()) return;
      kernels::Conv2dGrads g = kernels::conv2d_backward(x.value(), w.value(), y.grad(), geo, x.requires_grad(),
                                                        w.requires_grad(), bias.requires_grad());
      if (x.requires_grad()) x.accumulate_grad(g.dx);
      if (w.requires_grad()) w.accumulate_grad(g.dw);
      if (bias.requires_grad()) bias.accumulate_grad(g.dbias);
    });
  return y;
}

}  // namespace dd::ag
