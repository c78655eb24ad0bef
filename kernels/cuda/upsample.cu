// Nearest 2x upsampling of NHWC tensors. One thread per written element, so
// every store is coalesced along the channels; the backward sums each 2x2
// block in the CPU's order ((top-left + top-right) + (bottom-left + bottom-right)),
// which makes the two backends agree bit for bit.
#include "kernels/cuda/launch.cuh"
#include "kernels/upsample.h"

namespace dd::kernels::cuda {

namespace {
__global__ void upsample2x_kernel(const float* x, float* y, int64_t H, int64_t W, int64_t C, int64_t n_out) {
  const int64_t W2 = 2 * W;
  DD_GRID_STRIDE(o, n_out) {
    const int64_t c = o % C;
    const int64_t pix = o / C;          // (b * 2H + oy) * 2W + ox
    const int64_t ox = pix % W2;
    const int64_t orow = pix / W2;      // b * 2H + oy
    const int64_t irow = orow / 2;      // b * H + oy / 2, since 2H is even
    y[o] = x[(irow * W + ox / 2) * C + c];
  }
}

__global__ void upsample2x_backward_kernel(const float* dy, float* dx, int64_t W, int64_t C, int64_t n_in) {
  const int64_t out_row = 2 * W * C;
  DD_GRID_STRIDE(i, n_in) {
    const int64_t c = i % C;
    const int64_t pix = i / C;  // (b * H + h) * W + w
    const int64_t w = pix % W;
    const int64_t r = pix / W;  // b * H + h: output rows 2r and 2r + 1
    const float* t0 = dy + 2 * r * out_row + 2 * w * C + c;
    const float* b0 = t0 + out_row;
    dx[i] = (t0[0] + t0[C]) + (b0[0] + b0[C]);
  }
}
}  // namespace

Tensor upsample2x_forward(const Tensor& x) {
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  Tensor y = Tensor::empty({B, 2 * H, 2 * W, C}, x.device());
  const int64_t n = y.numel();
  if (n == 0) return y;
  upsample2x_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.data(), y.data(), H, W, C, n);
  DD_CUDA_LAUNCH_CHECK("upsample2x_kernel");
  return y;
}

Tensor upsample2x_backward(const Tensor& dy) {
  const int64_t B = dy.dim(0), H = dy.dim(1) / 2, W = dy.dim(2) / 2, C = dy.dim(3);
  Tensor dx = Tensor::empty({B, H, W, C}, dy.device());
  const int64_t n = dx.numel();
  if (n == 0) return dx;
  upsample2x_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dy.data(), dx.data(), W, C, n);
  DD_CUDA_LAUNCH_CHECK("upsample2x_backward_kernel");
  return dx;
}

}  // namespace dd::kernels::cuda
