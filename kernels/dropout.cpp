#include "kernels/dropout.h"

#include "kernels/dispatch.h"

namespace dd::kernels {

Tensor dropout(const Tensor& x, float p, uint64_t seed, PhiloxOffset offset) {
  DD_CHECK(x.defined(), "dropout: x is undefined");
  DD_CHECK(p >= 0.0f && p <= 1.0f, "dropout: p = ", p, " must be in [0, 1] (x ", describe(x), ")");
  DD_DISPATCH(common_device("dropout", {&x}), dropout, x, p, seed, offset);
}

}  // namespace dd::kernels
