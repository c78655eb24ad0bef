#include "kernels/time_embedding.h"

#include <cmath>

#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
void check_dim(const char* op, int64_t dim) {
  // half - 1 divides the log-frequency spacing, so half >= 2.
  DD_CHECK(dim >= 4 && dim % 2 == 0, op, ": dim = ", dim, " must be even and >= 4");
}
void check_t(const char* op, const Tensor& t) {
  DD_CHECK(t.defined(), op, ": undefined operand");
  DD_CHECK(t.ndim() == 1, op, ": t ", describe(t), " must be a [B] vector of timesteps");
}
}  // namespace

std::vector<float> time_embedding_frequencies(int64_t dim) {
  check_dim("time_embedding", dim);
  const int64_t half = dim / 2;
  const double log_factor = std::log(10000.0) / static_cast<double>(half - 1);
  const float neg = static_cast<float>(-log_factor);
  std::vector<float> f(static_cast<std::size_t>(half));
  for (int64_t i = 0; i < half; ++i) f[static_cast<std::size_t>(i)] = std::exp(static_cast<float>(i) * neg);
  return f;
}

Tensor time_embedding_forward(const Tensor& t, int64_t dim) {
  check_t("time_embedding", t);
  check_dim("time_embedding", dim);
  DD_DISPATCH(common_device("time_embedding", {&t}), time_embedding_forward, t, dim);
}

Tensor time_embedding_backward(const Tensor& t, const Tensor& dy) {
  const char* op = "time_embedding_backward";
  check_t(op, t);
  DD_CHECK(dy.defined() && dy.ndim() == 2 && dy.dim(0) == t.dim(0), op, ": dy ",
           dy.defined() ? describe(dy) : std::string("undefined"), " must be [B, dim] for t ", describe(t));
  check_dim(op, dy.dim(1));
  DD_DISPATCH(common_device(op, {&t, &dy}), time_embedding_backward, t, dy);
}

}  // namespace dd::kernels
