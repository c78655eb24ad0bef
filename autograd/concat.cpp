#include "autograd/concat.h"

#include "kernels/concat.h"

namespace dd::ag {

Var concat(const std::vector<Var>& xs) {
  std::vector<Tensor> values;
  std::vector<int64_t> widths;
  bool any_grad = false;
  for (const Var& x : xs) {
    values.push_back(x.value());
    widths.push_back(x.value().dim(-1));
    any_grad = any_grad || needs_grad({&x});
  }
  Var y(kernels::concat(values), any_grad);
  if (y.requires_grad())
    Tape::current().record([xs = grad_refs(xs), widths, y = y.grad_ref()] {
      if (!y.has_grad()) return;
      std::vector<Tensor> parts = kernels::split(y.grad(), widths);
      for (std::size_t i = 0; i < xs.size(); ++i) xs[i].accumulate_grad(parts[i]);
    });
  return y;
}

std::vector<Var> chunk(const Var& x, int64_t n) {
  const bool grad = needs_grad({&x});
  std::vector<Var> ys;
  for (Tensor& t : kernels::chunk(x.value(), n)) ys.emplace_back(std::move(t), grad);
  // One node for all chunks: it runs after every consumer of every chunk, so
  // it sees their final gradients and writes dx in one pass.
  if (grad)
    Tape::current().record([x = x.grad_ref(), ys = grad_refs(ys)] {
      std::vector<Tensor> dys;
      bool any = false;
      for (const GradRef& y : ys) {
        dys.push_back(y.has_grad() ? y.grad() : Tensor());
        any = any || y.has_grad();
      }
      if (any) x.accumulate_grad(kernels::chunk_backward(dys, x.shape()));
    });
  return ys;
}

}  // namespace dd::ag
