// The Downsample rearrange, y[b, h, w, 4c + 2 p1 + p2] = x[b, 2h + p1, 2w + p2, c],
// as a pure gather in both directions: one thread per written element, so the
// stores are contiguous and every element is written exactly once.
#include "kernels/cuda/launch.cuh"
#include "kernels/pixel_unshuffle.h"

namespace dd::kernels::cuda {

namespace {
// Row indices below fold batch and height together: since H = 2 h2, input row
// b * H + 2 h + p1 equals 2 (b * h2 + h) + p1.
__global__ void pixel_unshuffle_kernel(const float* x, float* y, int64_t w2, int64_t C, int64_t n) {
  const int64_t C4 = 4 * C, W = 2 * w2;
  DD_GRID_STRIDE(o, n) {
    const int64_t q = o % C4;
    const int64_t pix = o / C4;  // (b * h2 + h) * w2 + w
    const int64_t c = q / 4, p1 = (q / 2) % 2, p2 = q % 2;
    const int64_t w = pix % w2, r = pix / w2;
    y[o] = x[((2 * r + p1) * W + 2 * w + p2) * C + c];
  }
}

__global__ void pixel_unshuffle_backward_kernel(const float* dy, float* dx, int64_t w2, int64_t C, int64_t n) {
  const int64_t W = 2 * w2;
  DD_GRID_STRIDE(i, n) {
    const int64_t c = i % C;
    const int64_t pix = i / C;     // (b * H + row) * W + col
    const int64_t col = pix % W, row = pix / W;
    const int64_t r = row / 2, p1 = row % 2, w = col / 2, p2 = col % 2;
    dx[i] = dy[(r * w2 + w) * 4 * C + 4 * c + 2 * p1 + p2];
  }
}
}  // namespace

Tensor pixel_unshuffle_forward(const Tensor& x) {
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  Tensor y = Tensor::empty({B, H / 2, W / 2, 4 * C}, x.device());
  const int64_t n = y.numel();
  if (n == 0) return y;
  pixel_unshuffle_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.data(), y.data(), W / 2, C, n);
  DD_CUDA_LAUNCH_CHECK("pixel_unshuffle_kernel");
  return y;
}

Tensor pixel_unshuffle_backward(const Tensor& dy) {
  const int64_t B = dy.dim(0), h2 = dy.dim(1), w2 = dy.dim(2), C = dy.dim(3) / 4;
  Tensor dx = Tensor::empty({B, 2 * h2, 2 * w2, C}, dy.device());
  const int64_t n = dx.numel();
  if (n == 0) return dx;
  pixel_unshuffle_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dy.data(), dx.data(), w2, C, n);
  DD_CUDA_LAUNCH_CHECK("pixel_unshuffle_backward_kernel");
  return dx;
}

}  // namespace dd::kernels::cuda
