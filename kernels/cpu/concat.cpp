#include "kernels/concat.h"

#include <cstring>

namespace dd::kernels::cpu {

namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

int64_t leading_rows(const Shape& s) {
  int64_t rows = 1;
  for (std::size_t i = 0; i + 1 < s.size(); ++i) rows *= s[i];
  return rows;
}

// Row r of the output is the row-r slices of every part side by side; a null
// source is a zero slice. Each row is one thread's, so no two threads write
// the same memory. Elements are esize bytes (concat takes fp32 and bf16).
void gather_rows(const std::vector<const void*>& srcs, const std::vector<int64_t>& widths, int64_t rows,
                 std::size_t esize, void* out) {
  int64_t total = 0;
  for (int64_t w : widths) total += w;
  const std::size_t parts = srcs.size();
#pragma omp parallel for schedule(static) if (rows * total > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    char* dst = static_cast<char*>(out) + r * total * esize;
    for (std::size_t i = 0; i < parts; ++i) {
      const std::size_t bytes = static_cast<std::size_t>(widths[i]) * esize;
      if (bytes == 0) continue;
      if (srcs[i])
        std::memcpy(dst, static_cast<const char*>(srcs[i]) + r * bytes, bytes);
      else
        std::memset(dst, 0, bytes);
      dst += bytes;
    }
  }
}
}  // namespace

Tensor concat(const std::vector<Tensor>& xs) {
  std::vector<const void*> srcs;
  std::vector<int64_t> widths;
  for (const Tensor& t : xs) {
    srcs.push_back(t.raw_data());
    widths.push_back(t.dim(-1));
  }
  Shape shape = xs[0].shape();
  shape.back() = 0;
  for (int64_t w : widths) shape.back() += w;
  Tensor y = Tensor::empty(shape, Device::CPU, xs[0].dtype());
  gather_rows(srcs, widths, leading_rows(shape), y.element_size(), y.raw_data());
  return y;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& widths) {
  const int64_t rows = leading_rows(x.shape()), total = x.dim(-1);
  std::vector<Tensor> outs;
  std::vector<float*> dsts;
  for (int64_t w : widths) {
    Shape s = x.shape();
    s.back() = w;
    outs.push_back(Tensor::empty(s));
    dsts.push_back(outs.back().data());
  }
  const float* px = x.data();
  const std::size_t parts = widths.size();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = px + r * total;
    for (std::size_t i = 0; i < parts; ++i) {
      const int64_t w = widths[i];
      if (w == 0) continue;
      std::memcpy(dsts[i] + r * w, src, static_cast<std::size_t>(w) * sizeof(float));
      src += w;
    }
  }
  return outs;
}

Tensor chunk_backward(const std::vector<Tensor>& dys, const Shape& x_shape) {
  const int64_t n = static_cast<int64_t>(dys.size());
  std::vector<const void*> srcs;
  for (const Tensor& g : dys) srcs.push_back(g.defined() ? g.data() : nullptr);
  Tensor dx = Tensor::empty(x_shape);
  gather_rows(srcs, std::vector<int64_t>(dys.size(), x_shape.back() / n), leading_rows(x_shape), sizeof(float),
              dx.data());
  return dx;
}

}  // namespace dd::kernels::cpu
