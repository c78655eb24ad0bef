#include "kernels/dpm_solver_step.h"

#include <cmath>

#include "kernels/dispatch.h"

namespace dd::kernels {

Tensor dpm_solver_step(const Tensor& x, const Tensor& eps, const Tensor& m1, const Tensor& m2, const DpmStepCoefs& k,
                       Tensor* m0_out, const Tensor& thresh) {
  const char* op = "dpm_solver_step";
  DD_CHECK(x.defined() && eps.defined() && x.shape() == eps.shape() && x.numel() > 0, op, ": x ",
           x.defined() ? describe(x) : "undefined", " and eps ", eps.defined() ? describe(eps) : "undefined",
           " must have one non-empty shape");
  DD_CHECK(k.c == 0.0f || (m1.defined() && m1.shape() == x.shape()), op, ": coefficient c = ", k.c,
           " needs m1 of x's shape");
  DD_CHECK(k.d == 0.0f || (m2.defined() && m2.shape() == x.shape()), op, ": coefficient d = ", k.d,
           " needs m2 of x's shape");
  DD_CHECK(k.alpha_s0 > 0.0f && std::isfinite(k.a) && std::isfinite(k.b) && std::isfinite(k.c) && std::isfinite(k.d),
           op, ": invalid coefficients (alpha ", k.alpha_s0, ", a ", k.a, ", b ", k.b, ", c ", k.c, ", d ", k.d, ")");
  const Tensor none;
  const Tensor& u1 = k.c != 0.0f ? m1 : none;
  const Tensor& u2 = k.d != 0.0f ? m2 : none;
  DD_CHECK(!thresh.defined() || (thresh.ndim() == 1 && thresh.dim(0) == x.dim(0) && thresh.dtype() == DType::F32),
           op, ": thresh must be float32 [", x.dim(0), "] (one scale per sample of x ", describe(x), "), got ",
           thresh.defined() ? describe(thresh) : "");
  DD_DISPATCH(common_device(op, {&x, &eps, &u1, &u2, &thresh}), dpm_solver_step, x, eps, u1, u2, k, m0_out, thresh);
}

}  // namespace dd::kernels
