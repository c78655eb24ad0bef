#include "autograd/elementwise.h"

#include "kernels/elementwise.h"

namespace dd::ag {

Var add(const Var& a, const Var& b) {
  Var y(kernels::add(a.value(), b.value()), needs_grad({&a, &b}));
  if (y.requires_grad())
    Tape::current().record([a = a.grad_ref(), b = b.grad_ref(), y = y.grad_ref()] {
      if (!y.has_grad()) return;
      a.accumulate_grad(y.grad());
      b.accumulate_grad(y.grad());
    });
  return y;
}

Var sub(const Var& a, const Var& b) {
  Var y(kernels::sub(a.value(), b.value()), needs_grad({&a, &b}));
  if (y.requires_grad())
    Tape::current().record([a = a.grad_ref(), b = b.grad_ref(), y = y.grad_ref()] {
      if (!y.has_grad()) return;
      a.accumulate_grad(y.grad());
      if (b.requires_grad()) b.accumulate_grad(kernels::affine(y.grad(), -1.0f, 0.0f));
    });
  return y;
}

Var mul(const Var& a, const Var& b) {
  Var y(kernels::mul(a.value(), b.value()), needs_grad({&a, &b}));
  if (y.requires_grad())
    Tape::current().record([a, b, y = y.grad_ref()] {
      if (!y.has_grad()) return;
      if (a.requires_grad()) a.accumulate_grad(kernels::mul(y.grad(), b.value()));
      if (b.requires_grad()) b.accumulate_grad(kernels::mul(y.grad(), a.value()));
    });
  return y;
}

Var affine(const Var& a, float alpha, float beta) {
  Var y(kernels::affine(a.value(), alpha, beta), needs_grad({&a}));
  if (y.requires_grad())
    Tape::current().record([a = a.grad_ref(), y = y.grad_ref(), alpha] {
      if (y.has_grad()) a.accumulate_grad(kernels::affine(y.grad(), alpha, 0.0f));
    });
  return y;
}

Var sum(const Var& a) {
  const Tensor& x = a.value();
  Var y(Tensor::full({}, static_cast<float>(kernels::sum(x)), x.device()), needs_grad({&a}));
  if (y.requires_grad())
    Tape::current().record([a = a.grad_ref(), y = y.grad_ref()] {
      if (y.has_grad()) a.accumulate_grad(Tensor::full(a.shape(), y.grad().item(), y.grad().device()));
    });
  return y;
}

}  // namespace dd::ag
