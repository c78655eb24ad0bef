#include "autograd/linear_attention.h"

#include "autograd/conv2d_keep.h"

#include "engine/context.h"
#include "engine/error.h"
#include "kernels/conv2d.h"
#include "kernels/linear_attention.h"

namespace dd::ag {

Var linear_attention(const Var& qkv, int64_t heads, int64_t dim_head) {
  Var y(kernels::linear_attention_forward(qkv.value(), heads, dim_head), needs_grad({&qkv}));
  if (y.requires_grad())
    Tape::current().record([qkv, y = y.grad_ref(), heads, dim_head] {
      if (y.has_grad())
        qkv.accumulate_grad(kernels::linear_attention_backward(qkv.value(), y.grad(), heads, dim_head));
    });
  return y;
}

Var linear_attention_qkv(const Var& x, const Var& w_qkv, int64_t heads, int64_t dim_head, bool bf16_out) {
  DD_CHECK(w_qkv.value().ndim() == 4 && w_qkv.value().dim(1) == 1 && w_qkv.value().dim(2) == 1,
           "linear_attention_qkv: w_qkv ", describe(w_qkv.value()), " must be a 1x1 conv's [3*hidden, 1, 1, C]");
  const bool rec = needs_grad({&x, &w_qkv});
  const Tensor xin = conv_input(x, rec);  // as ag::conv2d reads and keeps it (autograd/conv2d_keep.h)
  // Where the attention rounds qkv to bf16 anyway, the conv writes it in bf16: the same results,
  // half the bytes written and read (here and in the backward's recompute).
  const Precision prec = current_context().precision();
  const bool bf16_qkv = kernels::linear_attention_rounds_to_bf16(prec, dim_head);
  const Tensor qkv = bf16_qkv ? kernels::conv2d_forward_bf16(xin, w_qkv.value(), Tensor(), 0)
                              : kernels::conv2d_forward(xin, w_qkv.value(), Tensor(), 0);
  Var y(bf16_out ? kernels::linear_attention_forward_bf16(qkv, heads, dim_head)
                 : kernels::linear_attention_forward(qkv, heads, dim_head),
        rec);
  if (y.requires_grad())
    Tape::current().record([xin, x = x.grad_ref(), w_qkv, y = y.grad_ref(), heads, dim_head, prec, bf16_qkv] {
      if (!y.has_grad()) return;
      // A backward under a policy that does not round qkv (run under another than the forward's)
      // reads the fp32 qkv, as the composition's would.
      const bool bf16_again = bf16_qkv && kernels::linear_attention_rounds_to_bf16(current_context().precision(),
                                                                                    dim_head);
      Tensor again;
      {
        const PrecisionScope scope(prec);  // the forward's rounding of x and w: the forward's qkv
        again = bf16_again ? kernels::conv2d_forward_bf16(xin, w_qkv.value(), Tensor(), 0)
                           : kernels::conv2d_forward(xin, w_qkv.value(), Tensor(), 0);
      }
      const Tensor dqkv = kernels::linear_attention_backward(again, y.grad(), heads, dim_head);
      again = Tensor();  // freed before the conv's backward allocates its gradients
      kernels::Conv2dGrads g = kernels::conv2d_backward(xin, w_qkv.value(), dqkv, 0, x.requires_grad(),
                                                        w_qkv.requires_grad(), false);
      if (x.requires_grad()) x.accumulate_grad(g.dx);
      if (w_qkv.requires_grad()) w_qkv.accumulate_grad(g.dw);
    });
  return y;
}

}  // namespace dd::ag
