#include "kernels/ddim_step.h"

#include <cmath>

#include "kernels/dispatch.h"

namespace dd::kernels {

Tensor ddim_step(const Tensor& x_t, const Tensor& eps, const DdimStepCoefs& c, uint64_t seed, PhiloxOffset offset,
                 Tensor* x0_out, const Tensor& thresh) {
  const char* op = "ddim_step";
  DD_CHECK(x_t.defined() && eps.defined(), op, ": undefined operand");
  DD_CHECK(x_t.shape() == eps.shape() && x_t.numel() > 0, op, ": x_t ", describe(x_t), " and eps ", describe(eps),
           " must have one non-empty shape");
  // sqrt_abar may be 0 (zero terminal SNR) only where x0 comes from a v or x0 output (linear_output).
  DD_CHECK((c.sqrt_abar > 0.0f || (c.linear_output && c.sqrt_abar == 0.0f)) &&
               std::isfinite(c.sqrt_abar) && c.sigma >= 0.0f && c.clip >= 0.0f &&
               std::isfinite(c.dir) && std::isfinite(c.sqrt_abar_prev) && std::isfinite(c.x_coef),
           op, ": invalid coefficients (sqrt_abar ", c.sqrt_abar, ", dir ", c.dir, ", sigma ", c.sigma, ", clip ",
           c.clip, ")");
  DD_CHECK(!thresh.defined() || (thresh.ndim() == 1 && thresh.dim(0) == x_t.dim(0) && thresh.dtype() == DType::F32),
           op, ": thresh must be float32 [", x_t.dim(0), "] (one scale per sample of x_t ", describe(x_t), "), got ",
           thresh.defined() ? describe(thresh) : "");
  DD_DISPATCH(common_device(op, {&x_t, &eps, &thresh}), ddim_step, x_t, eps, c, seed, offset, x0_out, thresh);
}

}  // namespace dd::kernels
