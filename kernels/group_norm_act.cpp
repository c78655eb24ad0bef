#include "kernels/group_norm_act.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
std::string desc(const Tensor& t) { return t.defined() ? describe(t) : std::string("undefined"); }

void check_input(const char* op, const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                 const Tensor& shift, int64_t groups) {
  DD_CHECK(x.defined(), op, ": undefined operand");
  check_group_norm_act_operands(op, x.shape(), "x " + describe(x), gamma, beta, scale, shift, groups);
}
}  // namespace

void check_group_norm_act_operands(const char* op, const Shape& x, const std::string& x_desc, const Tensor& gamma,
                                   const Tensor& beta, const Tensor& scale, const Tensor& shift, int64_t groups) {
  DD_CHECK(gamma.defined() && beta.defined(), op, ": undefined operand");
  DD_CHECK(x.size() >= 2 && shape_numel(x) > 0, op, ": ", x_desc,
           " must be a non-empty [B, ..., C] tensor of rank >= 2");
  const int64_t c = x.back();
  DD_CHECK(groups > 0 && c % groups == 0, op, ": groups = ", groups, " must divide the channel count C = ", c,
           " of ", x_desc);
  DD_CHECK(gamma.shape() == Shape{c} && beta.shape() == Shape{c}, op, ": gamma ", describe(gamma), " and beta ",
           describe(beta), " must be [C] for ", x_desc);
  DD_CHECK(scale.defined() == shift.defined(), op, ": scale ", desc(scale), " and shift ", desc(shift),
           " must be both given or both absent");
  if (scale.defined()) {
    const Shape bc{x.front(), c};
    DD_CHECK(scale.shape() == bc && shift.shape() == bc, op, ": scale ", describe(scale), " and shift ",
             describe(shift), " must be ", shape_str(bc), " for ", x_desc);
  }
}

GroupNormActOut group_norm_act_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& scale, const Tensor& shift, int64_t groups, float eps) {
  const char* op = "group_norm_act";
  check_input(op, x, gamma, beta, scale, shift, groups);
  DD_CHECK(eps > 0.0f, op, ": eps = ", eps, " must be positive");
  DD_DISPATCH(common_device(op, {&x, &gamma, &beta, &scale, &shift}), group_norm_act_forward, x, gamma, beta,
              scale, shift, groups, eps);
}

GroupNormActGrads group_norm_act_backward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& scale, const Tensor& shift, const Tensor& mean,
                                          const Tensor& rstd, const Tensor& dy) {
  const char* op = "group_norm_act_backward";
  DD_CHECK(mean.defined() && rstd.defined() && dy.defined(), op, ": undefined operand");
  DD_CHECK(mean.ndim() == 2, op, ": mean ", describe(mean), " must be [B, G]");
  check_input(op, x, gamma, beta, scale, shift, mean.dim(1));
  const Shape stats{x.dim(0), mean.dim(1)};
  DD_CHECK(mean.shape() == stats && rstd.shape() == stats, op, ": mean ", describe(mean), " and rstd ",
           describe(rstd), " must be ", shape_str(stats), " for x ", describe(x));
  DD_CHECK(dy.shape() == x.shape(), op, ": dy ", describe(dy), " and x ", describe(x),
           " must have the same shape");
  DD_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::BF16, op, ": x ", describe(x),
           " must be F32 or BF16 (a bf16 copy of the forward's x)");
  DD_DISPATCH(common_device(op, {&x, &gamma, &beta, &scale, &shift, &mean, &rstd, &dy}), group_norm_act_backward,
              x, gamma, beta, scale, shift, mean, rstd, dy);
}

}  // namespace dd::kernels
