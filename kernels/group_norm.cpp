#include "kernels/group_norm.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
void check_input(const char* op, const Tensor& x, const Tensor& gamma, int64_t groups) {
  DD_CHECK(x.defined() && gamma.defined(), op, ": undefined operand");
  DD_CHECK(x.ndim() >= 2 && x.numel() > 0, op, ": x ", describe(x),
           " must be a non-empty [B, ..., C] tensor of rank >= 2");
  const int64_t c = x.dim(-1);
  DD_CHECK(groups > 0 && c % groups == 0, op, ": groups = ", groups, " must divide the channel count C = ", c,
           " of x ", describe(x));
  DD_CHECK(gamma.shape() == Shape{c}, op, ": gamma ", describe(gamma), " must be [C] for x ", describe(x));
}
}  // namespace

GroupNormOut group_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t groups,
                                float eps, bool y_bf16) {
  check_input("group_norm", x, gamma, groups);
  DD_CHECK(beta.defined() && beta.shape() == gamma.shape(), "group_norm: beta ",
           beta.defined() ? describe(beta) : std::string("undefined"), " must be [C] for x ", describe(x));
  DD_CHECK(eps > 0.0f, "group_norm: eps = ", eps, " must be positive");
  DD_DISPATCH(common_device("group_norm", {&x, &gamma, &beta}), group_norm_forward, x, gamma, beta, groups,
              eps, y_bf16);
}

GroupNormGrads group_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& dy) {
  const char* op = "group_norm_backward";
  DD_CHECK(mean.defined() && rstd.defined() && dy.defined(), op, ": undefined operand");
  DD_CHECK(mean.ndim() == 2, op, ": mean ", describe(mean), " must be [B, G]");
  check_input(op, x, gamma, mean.dim(1));
  const Shape stats{x.dim(0), mean.dim(1)};
  DD_CHECK(mean.shape() == stats && rstd.shape() == stats, op, ": mean ", describe(mean), " and rstd ",
           describe(rstd), " must be ", shape_str(stats), " for x ", describe(x));
  DD_CHECK(dy.shape() == x.shape(), op, ": dy ", describe(dy), " and x ", describe(x),
           " must have the same shape");
  DD_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::BF16, op, ": x ", describe(x),
           " must be F32 or BF16 (a bf16 copy of the forward's x)");
  DD_DISPATCH(common_device(op, {&x, &gamma, &mean, &rstd, &dy}), group_norm_backward, x, gamma, mean, rstd,
              dy);
}

}  // namespace dd::kernels
