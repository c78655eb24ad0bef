#include "kernels/concat.h"

#include <string>

#include "kernels/dispatch.h"

namespace dd::kernels {

namespace {
std::string describe_all(const std::vector<Tensor>& xs) {
  std::string s;
  for (const Tensor& t : xs) {
    if (!s.empty()) s += ", ";
    s += t.defined() ? describe(t) : std::string("(none)");
  }
  return s;
}

// The device all defined tensors share; the message names every operand.
Device list_device(const char* op, const std::vector<Tensor>& xs) {
  const Tensor* first = nullptr;
  for (const Tensor& t : xs) {
    if (!t.defined()) continue;
    if (!first) first = &t;
    DD_CHECK(t.device() == first->device(), op, ": inputs are on different devices: ", describe_all(xs));
  }
  DD_CHECK(first, op, ": no defined input tensor");
  return first->device();
}

bool same_leading_dims(const Shape& a, const Shape& b) {
  if (a.size() != b.size() || a.empty()) return false;
  for (std::size_t i = 0; i + 1 < a.size(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}
}  // namespace

Tensor concat(const std::vector<Tensor>& xs) {
  DD_CHECK(!xs.empty(), "concat: needs at least one tensor");
  for (const Tensor& t : xs)
    DD_CHECK(t.defined() && same_leading_dims(t.shape(), xs[0].shape()),
             "concat: inputs must have the same rank >= 1 and agree in all but the last dim, got ",
             describe_all(xs));
  // fp32, or bf16 (the conv inputs the tape keeps in bf16 under BF16, concatenated on the GPU).
  for (const Tensor& t : xs)
    DD_CHECK(t.dtype() == xs[0].dtype() && (t.dtype() == DType::F32 || t.dtype() == DType::BF16),
             "concat: inputs must all be float32 or all bfloat16, got ", describe_all(xs));
  DD_DISPATCH(list_device("concat", xs), concat, xs);
}

Tensor concat_widening(const std::vector<Tensor>& xs) {
  bool all_bf16 = true;
  for (const Tensor& x : xs) all_bf16 = all_bf16 && x.defined() && x.dtype() == DType::BF16;
  if (all_bf16) return concat(xs);
  std::vector<Tensor> wide;
  for (const Tensor& x : xs) wide.push_back(x.defined() ? x.to(DType::F32) : x);
  return concat(wide);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& widths) {
  int64_t total = 0;
  bool nonneg = true;
  std::string ws;
  for (int64_t w : widths) {
    total += w;
    nonneg = nonneg && w >= 0;
    ws += (ws.empty() ? "" : ",") + std::to_string(w);
  }
  DD_CHECK(x.ndim() >= 1 && !widths.empty() && nonneg && total == x.dim(-1), "split: widths {", ws,
           "} must be >= 0 and sum to the last dim of x ", describe(x));
  DD_DISPATCH(common_device("split", {&x}), split, x, widths);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t n) {
  DD_CHECK(x.ndim() >= 1 && n >= 1 && x.dim(-1) % n == 0, "chunk: the last dim of x ", describe(x),
           " must divide into ", n, " equal chunks");
  return split(x, std::vector<int64_t>(static_cast<std::size_t>(n), x.dim(-1) / n));
}

Tensor chunk_backward(const std::vector<Tensor>& dys, const Shape& x_shape) {
  const int64_t n = static_cast<int64_t>(dys.size());
  DD_CHECK(n >= 1 && !x_shape.empty() && x_shape.back() % n == 0, "chunk_backward: x ", shape_str(x_shape),
           " does not split into ", n, " chunks");
  Shape part = x_shape;
  part.back() /= n;
  for (const Tensor& g : dys)
    DD_CHECK(!g.defined() || g.shape() == part, "chunk_backward: every chunk gradient must be ",
             shape_str(part), " (x ", shape_str(x_shape), "), got ", describe_all(dys));
  DD_DISPATCH(list_device("chunk_backward", dys), chunk_backward, dys, x_shape);
}

}  // namespace dd::kernels
