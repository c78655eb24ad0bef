#include "kernels/adam.h"

#include <cmath>

#include "kernels/dispatch.h"

namespace dd::kernels {

AdamStepScalars adam_scalars(const AdamHyper& h, int64_t step) {
  DD_CHECK(step >= 1, "adam: step counts from 1, got ", step);
  const double bc1 = 1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(step));
  AdamStepScalars s;
  s.lerp_weight = static_cast<float>(1.0 - static_cast<double>(h.beta1));
  s.beta2 = h.beta2;
  s.one_minus_beta2 = static_cast<float>(1.0 - static_cast<double>(h.beta2));
  s.step_size = static_cast<float>(static_cast<double>(h.lr) / bc1);
  s.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  s.eps = h.eps;
  s.weight_decay = h.decoupled ? 0.0f : h.weight_decay;
  s.decay = h.decoupled ? static_cast<float>(1.0 - static_cast<double>(h.lr) * static_cast<double>(h.weight_decay)) : 1.0f;
  return s;
}

void adam_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamStepScalars& s) {
  DD_CHECK(param.shape() == grad.shape() && param.shape() == m.shape() && param.shape() == v.shape(),
           "adam_update: param ", describe(param), ", grad ", describe(grad), ", m ", describe(m), ", v ",
           describe(v), " must have one shape");
  DD_DISPATCH(common_device("adam_update", {&param, &grad, &m, &v}), adam_update, param, grad, m, v, s);
}

}  // namespace dd::kernels
