#include "kernels/timestep_embedding.h"

#include <cmath>

#include "kernels/dispatch.h"

namespace dd::kernels {

std::vector<float> timestep_frequencies(int64_t dim, double shift, double max_period) {
  const int64_t half = dim / 2;
  DD_CHECK(half >= 1, "timestep_embedding: dim = ", dim, " must be >= 2");
  DD_CHECK(static_cast<double>(half) - shift != 0.0, "timestep_embedding: freq_shift ", shift,
           " equals half the embedding dim ", half, " (division by zero)");
  const float neg_log = static_cast<float>(-std::log(max_period));
  const float denom = static_cast<float>(static_cast<double>(half) - shift);
  std::vector<float> f(static_cast<std::size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float e = (neg_log * static_cast<float>(i)) / denom;
    f[static_cast<std::size_t>(i)] = std::exp(e);
  }
  return f;
}

Tensor timestep_embedding(const Tensor& t, const Tensor& f, int64_t dim, bool flip_sin_to_cos) {
  DD_CHECK(t.defined() && t.ndim() == 1, "timestep_embedding: t ", t.defined() ? describe(t) : "undefined",
           " must be a [B] vector");
  DD_CHECK(f.defined() && f.ndim() == 1 && f.dim(0) == dim / 2, "timestep_embedding: f ",
           f.defined() ? describe(f) : "undefined", " must be [", dim / 2, "] for dim ", dim);
  DD_DISPATCH(common_device("timestep_embedding", {&t, &f}), timestep_embedding, t, f, dim, flip_sin_to_cos);
}

}  // namespace dd::kernels
