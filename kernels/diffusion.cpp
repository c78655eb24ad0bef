#include "kernels/diffusion.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
void check_data(const char* op, const char* name, const Tensor& t) {
  DD_CHECK(t.defined(), op, ": ", name, " is undefined");
  DD_CHECK(t.ndim() >= 1 && t.dim(0) >= 1 && t.numel() > 0, op, ": ", name, " ", describe(t),
           " must be a non-empty [B, ...] tensor");
}

void check_same(const char* op, const char* name, const Tensor& ref, const char* ref_name, const Tensor& t) {
  DD_CHECK(t.defined(), op, ": ", name, " is undefined");
  DD_CHECK(t.shape() == ref.shape(), op, ": ", name, " ", describe(t), " must have the shape of ", ref_name,
           " ", describe(ref));
}

void check_coef(const char* op, const char* name, const Tensor& x, const Tensor& c) {
  DD_CHECK(c.defined(), op, ": coefficient ", name, " is undefined");
  DD_CHECK(c.shape() == Shape{x.dim(0)}, op, ": coefficient ", name, " ", describe(c), " must be [B] = [",
           x.dim(0), "] for x ", describe(x));
}
}  // namespace

Tensor q_sample(const Tensor& x0, const Tensor& noise, const Tensor& coef_a, const Tensor& coef_b) {
  const char* op = "q_sample";
  check_data(op, "x0", x0);
  check_same(op, "noise", x0, "x0", noise);
  check_coef(op, "coef_a", x0, coef_a);
  check_coef(op, "coef_b", x0, coef_b);
  DD_DISPATCH(common_device(op, {&x0, &noise, &coef_a, &coef_b}), q_sample, x0, noise, coef_a,
              coef_b);
}

Tensor p_sample_step(const Tensor& x_t, const Tensor& eps, const Tensor& noise, const PSampleCoefs& c) {
  const char* op = "p_sample_step";
  check_data(op, "x_t", x_t);
  check_same(op, "eps", x_t, "x_t", eps);
  if (noise.defined()) check_same(op, "noise", x_t, "x_t", noise);
  check_coef(op, "sqrt_recip_alpha", x_t, c.sqrt_recip_alpha);
  check_coef(op, "beta", x_t, c.beta);
  check_coef(op, "sqrt_one_minus_ac", x_t, c.sqrt_one_minus_ac);
  check_coef(op, "sigma", x_t, c.sigma);
  DD_DISPATCH(
      common_device(op, {&x_t, &eps, &noise, &c.sqrt_recip_alpha, &c.beta, &c.sqrt_one_minus_ac, &c.sigma}),
      p_sample_step, x_t, eps, noise, c);
}

Tensor predict_x0(const Tensor& x_t, const Tensor& eps, const Tensor& sqrt_recip_ac,
                  const Tensor& sqrt_recipm1_ac, bool clamp) {
  const char* op = "predict_x0";
  check_data(op, "x_t", x_t);
  check_same(op, "eps", x_t, "x_t", eps);
  check_coef(op, "sqrt_recip_ac", x_t, sqrt_recip_ac);
  check_coef(op, "sqrt_recipm1_ac", x_t, sqrt_recipm1_ac);
  DD_DISPATCH(common_device(op, {&x_t, &eps, &sqrt_recip_ac, &sqrt_recipm1_ac}), predict_x0, x_t,
              eps, sqrt_recip_ac, sqrt_recipm1_ac, clamp);
}

QSampleOut q_sample_philox(const Tensor& x0, const Tensor& coef_a, const Tensor& coef_b, uint64_t seed,
                           PhiloxOffset offset) {
  const char* op = "q_sample_philox";
  check_data(op, "x0", x0);
  check_coef(op, "coef_a", x0, coef_a);
  check_coef(op, "coef_b", x0, coef_b);
  DD_DISPATCH(common_device(op, {&x0, &coef_a, &coef_b}), q_sample_philox, x0, coef_a, coef_b, seed, offset);
}

Tensor p_sample_step_philox(const Tensor& x_t, const Tensor& eps, const PSampleCoefs& c, uint64_t seed,
                            PhiloxOffset offset) {
  const char* op = "p_sample_step_philox";
  check_data(op, "x_t", x_t);
  check_same(op, "eps", x_t, "x_t", eps);
  check_coef(op, "sqrt_recip_alpha", x_t, c.sqrt_recip_alpha);
  check_coef(op, "beta", x_t, c.beta);
  check_coef(op, "sqrt_one_minus_ac", x_t, c.sqrt_one_minus_ac);
  check_coef(op, "sigma", x_t, c.sigma);
  DD_DISPATCH(common_device(op, {&x_t, &eps, &c.sqrt_recip_alpha, &c.beta, &c.sqrt_one_minus_ac, &c.sigma}),
              p_sample_step_philox, x_t, eps, c, seed, offset);
}

}  // namespace dd::kernels
