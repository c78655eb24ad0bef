#include "kernels/threshold.h"

#include <cmath>

#include "kernels/dispatch.h"

namespace dd::kernels {

Tensor dynamic_threshold_scale(const Tensor& x0, double ratio, double max_value) {
  const char* op = "dynamic_threshold_scale";
  DD_CHECK(x0.defined() && x0.ndim() >= 1 && x0.dim(0) > 0 && x0.numel() > 0, op,
           ": x0 must be a non-empty [B, ...] tensor, got ", x0.defined() ? describe(x0) : "undefined");
  DD_CHECK(x0.dtype() == DType::F32, op, ": x0 must be float32, got ", describe(x0));
  DD_CHECK(ratio >= 0.0 && ratio <= 1.0, op, ": the quantile ratio must lie in [0, 1], got ", ratio);
  DD_CHECK(max_value >= 1.0 && std::isfinite(max_value), op, ": sample_max_value must be >= 1, got ", max_value);
  DD_DISPATCH(x0.device(), dynamic_threshold_scale, x0, ratio, max_value);
}

}  // namespace dd::kernels
