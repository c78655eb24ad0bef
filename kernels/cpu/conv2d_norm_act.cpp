#include "kernels/conv2d_norm_act.h"

#include <utility>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/op_profile.h"

namespace dd::kernels::cpu {

// The two halves keep their own rows in --profile's table (kernels/op_profile.h), so the per-op
// times compare with the unfused ops'.
Conv2dNormActOut conv2d_group_norm_act_forward(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias, int padding,
                                               const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                                               const Tensor& shift, int64_t groups, float eps, bool bf16_h,
                                               bool bf16_y) {
  std::vector<double> sums;
  Tensor h;
  {
    const op_profile::Scope timed("conv2d_forward");
    h = conv2d_forward_parts_sums(xs, w, bias, padding, sums);
  }
  const op_profile::Scope timed("group_norm_act_forward");
  Tensor hb;
  GroupNormActOut n = group_norm_act_forward_sums(h, gamma, beta, scale, shift, groups, eps, sums, bf16_h ? &hb : nullptr);
  if (bf16_y) n.y = n.y.to(DType::BF16);
  return {bf16_h ? std::move(hb) : std::move(h), std::move(n)};
}

Conv2dNormActGrads conv2d_group_norm_act_backward(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& h, int padding,
                                                  const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                                                  const Tensor& shift, const Tensor& mean, const Tensor& rstd,
                                                  const Tensor& dy, bool need_dx, bool need_dw, bool need_dbias) {
  Conv2dNormActGrads out;
  if (need_dbias) out.dbias = Tensor::empty({w.dim(0)});
  GroupNormActGrads n;
  {
    const op_profile::Scope timed("group_norm_act_backward");
    n = group_norm_act_backward_dsum(h, gamma, beta, scale, shift, mean, rstd, dy,
                                     need_dbias ? out.dbias.data() : nullptr);
  }
  {
    const op_profile::Scope timed("conv2d_backward");
    Conv2dPartsGrads c = conv2d_backward_parts(xs, w, n.dx, padding, need_dx, need_dw, false);
    out.dx = std::move(c.dx);
    out.dw = std::move(c.dw);
  }
  out.dgamma = std::move(n.dgamma);
  out.dbeta = std::move(n.dbeta);
  out.dscale = std::move(n.dscale);
  out.dshift = std::move(n.dshift);
  return out;
}

}  // namespace dd::kernels::cpu
