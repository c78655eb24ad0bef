// Last-dim concat / split as strided column-block copies: every piece is a
// [rows, width] block at some column offset of a [rows, total] matrix. One launch
// per piece (the U-Net has two or three), each thread copies one element.
#include "kernels/concat.h"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda {

namespace {
int64_t leading_rows(const Shape& s) {
  int64_t rows = 1;
  for (std::size_t i = 0; i + 1 < s.size(); ++i) rows *= s[i];
  return rows;
}

// dst[r, dst_off + c] = src[r, src_off + c] (row strides src_ld, dst_ld) for
// r < rows, c < width; a null src writes zeros. T: float, or uint16_t for bf16.
template <class T>
__global__ void copy_columns_kernel(const T* src, int64_t src_ld, int64_t src_off, T* dst, int64_t dst_ld,
                                    int64_t dst_off, int64_t rows, int64_t width) {
  DD_GRID_STRIDE(i, rows * width) {
    const int64_t r = i / width, c = i % width;
    dst[r * dst_ld + dst_off + c] = src ? src[r * src_ld + src_off + c] : T(0);
  }
}

template <class T>
void copy_columns(const T* src, int64_t src_ld, int64_t src_off, T* dst, int64_t dst_ld, int64_t dst_off,
                  int64_t rows, int64_t width) {
  const int64_t n = rows * width;
  if (n == 0) return;
  copy_columns_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(src, src_ld, src_off, dst, dst_ld, dst_off, rows,
                                                                   width);
  DD_CUDA_LAUNCH_CHECK("copy_columns_kernel");
}

template <class T>
Tensor concat_as(const std::vector<Tensor>& xs) {
  Shape shape = xs[0].shape();
  shape.back() = 0;
  for (const Tensor& t : xs) shape.back() += t.dim(-1);
  Tensor y = Tensor::empty(shape, xs.front().device(), xs.front().dtype());
  const int64_t rows = leading_rows(shape), total = shape.back();
  int64_t off = 0;
  for (const Tensor& t : xs) {
    const int64_t w = t.dim(-1);
    copy_columns(static_cast<const T*>(t.raw_data()), w, 0, static_cast<T*>(y.raw_data()), total, off, rows, w);
    off += w;
  }
  return y;
}
}  // namespace

// bf16 parts (conv inputs the tape keeps in bf16) are moved as their 16-bit patterns.
Tensor concat(const std::vector<Tensor>& xs) {
  return xs.front().dtype() == DType::BF16 ? concat_as<uint16_t>(xs) : concat_as<float>(xs);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& widths) {
  const int64_t rows = leading_rows(x.shape()), total = x.dim(-1);
  std::vector<Tensor> outs;
  int64_t off = 0;
  for (int64_t w : widths) {
    Shape s = x.shape();
    s.back() = w;
    outs.push_back(Tensor::empty(s, x.device()));
    copy_columns(x.data(), total, off, outs.back().data(), w, 0, rows, w);
    off += w;
  }
  return outs;
}

Tensor chunk_backward(const std::vector<Tensor>& dys, const Shape& x_shape) {
  const int64_t n = static_cast<int64_t>(dys.size());
  const int64_t rows = leading_rows(x_shape), total = x_shape.back(), w = total / n;
  Tensor dx = Tensor::empty(x_shape, dys.front().device());
  for (int64_t i = 0; i < n; ++i) {
    const Tensor& g = dys[static_cast<std::size_t>(i)];
    copy_columns(g.defined() ? g.data() : nullptr, w, 0, dx.data(), total, i * w, rows, w);
  }
  return dx;
}

}  // namespace dd::kernels::cuda
