#include "kernels/weight_standardize.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
void check_weight(const char* op, const Tensor& w, float eps) {
  DD_CHECK(w.defined() && w.ndim() >= 2 && w.numel() > 0, op, ": w ", describe(w),
           " must be a non-empty [O, ...] weight with at least 2 dims");
  DD_CHECK(eps > 0.0f, op, ": eps ", eps, " must be > 0 (w ", describe(w), ")");
}
}  // namespace

Tensor weight_standardize_forward(const Tensor& w, float eps) {
  check_weight("weight_standardize", w, eps);
  DD_DISPATCH(common_device("weight_standardize", {&w}), weight_standardize_forward, w, eps);
}

Tensor weight_standardize_backward(const Tensor& w, const Tensor& dw_hat, float eps) {
  check_weight("weight_standardize_backward", w, eps);
  DD_CHECK(dw_hat.defined() && dw_hat.shape() == w.shape(), "weight_standardize_backward: dw_hat ",
           describe(dw_hat), " must have the shape of w ", describe(w));
  DD_DISPATCH(common_device("weight_standardize_backward", {&w, &dw_hat}), weight_standardize_backward, w,
              dw_hat, eps);
}

}  // namespace dd::kernels
