#include "kernels/conv2d_norm_act.h"

#include <utility>

#include "kernels/concat.h"
#include "kernels/conv2d.h"
#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
// Both ops' checks, on the conv's output shape, before anything runs.
Shape check(const char* op, const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias, int padding, const Tensor& gamma,
            const Tensor& beta, const Tensor& scale, const Tensor& shift, int64_t groups) {
  const Shape hs = conv2d_parts_out_shape(op, xs, w, padding);
  DD_CHECK(!bias.defined() || bias.shape() == Shape{w.dim(0)}, op, ": bias ", describe(bias), " must be [",
           w.dim(0), "] for w ", describe(w));
  check_group_norm_act_operands(op, hs, str_cat("h ", shape_str(hs), " (the conv's output)"), gamma, beta, scale,
                                shift, groups);
  return hs;
}
}  // namespace

Conv2dNormActOut conv2d_group_norm_act_forward(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias, int padding,
                                               const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                                               const Tensor& shift, int64_t groups, float eps, bool bf16_h,
                                               bool bf16_y) {
  const char* op = "conv2d_group_norm_act";
  check(op, xs, w, bias, padding, gamma, beta, scale, shift, groups);
  DD_CHECK(eps > 0.0f, op, ": eps = ", eps, " must be positive");
  const Conv2dReport report({conv2d_parts_in_shape(xs), w.shape(), padding, bias.defined()});
  std::vector<const Tensor*> all{&w, &bias, &gamma, &beta, &scale, &shift};
  for (const Tensor& x : xs) all.push_back(&x);
  const Device dev = common_device(op, all);
  // Not DD_CPU_CALL: the CPU op times its two halves under the two ops' names (--profile's rows add
  // up to the step only without an outer row around them).
  if (dev == Device::CPU)
    return cpu::conv2d_group_norm_act_forward(xs, w, bias, padding, gamma, beta, scale, shift, groups, eps, bf16_h,
                                              bf16_y);
  // The GPU's kernels read one tensor: the concatenation is built there.
  const Tensor x = xs.size() == 1 ? xs[0] : concat_widening(xs);
#ifdef DD_WITH_CUDA
  // Under BF16 / TF32 cuda::conv2d_forward is the tensor-core conv: take GroupNorm's sums from its
  // epilogue instead of a pass over h (fp32 keeps the SIMT conv and the two ops).
  if (const Precision prec = current_context().precision(); prec == Precision::BF16 || prec == Precision::TF32) {
    Tensor sums;
    Tensor h = cuda::conv2d_forward_tc_sums(x, w, bias, padding, prec, sums);
    Tensor hb;
    GroupNormActOut n = cuda::group_norm_act_forward_sums(h, gamma, beta, scale, shift, groups, eps, sums,
                                                          bf16_h ? &hb : nullptr, bf16_y);
    return {bf16_h ? std::move(hb) : std::move(h), std::move(n)};
  }
#endif
  Tensor h = conv2d_forward(x, w, bias, padding);
  GroupNormActOut n = group_norm_act_forward(h, gamma, beta, scale, shift, groups, eps);
  if (bf16_h) h = h.to(DType::BF16);  // fp32's SIMT path: a pass of its own
  if (bf16_y) n.y = n.y.to(DType::BF16);
  return {std::move(h), std::move(n)};
}

Conv2dNormActGrads conv2d_group_norm_act_backward(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& h, int padding,
                                                  const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                                                  const Tensor& shift, const Tensor& mean, const Tensor& rstd,
                                                  const Tensor& dy, bool need_dx, bool need_dw, bool need_dbias) {
  const char* op = "conv2d_group_norm_act_backward";
  DD_CHECK(h.defined() && mean.defined() && rstd.defined() && dy.defined(), op, ": undefined operand");
  DD_CHECK(mean.ndim() == 2, op, ": mean ", describe(mean), " must be [B, G]");
  const Shape hs = check(op, xs, w, Tensor(), padding, gamma, beta, scale, shift, mean.dim(1));
  DD_CHECK(h.shape() == hs && dy.shape() == hs, op, ": h ", describe(h), " and dy ", describe(dy), " must be ",
           shape_str(hs), " for w ", describe(w));
  DD_CHECK(h.dtype() == DType::F32 || h.dtype() == DType::BF16, op, ": h ", describe(h),
           " must be F32 or BF16 (the forward's, with or without bf16_h)");
  const Shape stats{hs.front(), mean.dim(1)};
  DD_CHECK(mean.shape() == stats && rstd.shape() == stats, op, ": mean ", describe(mean), " and rstd ",
           describe(rstd), " must be ", shape_str(stats), " for h ", describe(h));
  std::vector<const Tensor*> all{&w, &h, &gamma, &beta, &scale, &shift, &mean, &rstd, &dy};
  for (const Tensor& x : xs) all.push_back(&x);
  const Device dev = common_device(op, all);
  if (dev == Device::CPU)  // its halves timed inside, as the forward's
    return cpu::conv2d_group_norm_act_backward(xs, w, h, padding, gamma, beta, scale, shift, mean, rstd, dy, need_dx,
                                               need_dw, need_dbias);
  GroupNormActGrads n = group_norm_act_backward(h, gamma, beta, scale, shift, mean, rstd, dy);
  Conv2dPartsGrads c = conv2d_backward_parts(xs, w, n.dx, padding, need_dx, need_dw, need_dbias);
  return {std::move(c.dx),    std::move(c.dw),     std::move(c.dbias), std::move(n.dgamma),
          std::move(n.dbeta), std::move(n.dscale), std::move(n.dshift)};
}

}  // namespace dd::kernels
