// Bilinear resize of NHWC images (kernels/resize.h): one thread per output element, channels
// fastest (coalesced), the taps recomputed per thread from kernels/resize_math.h (a few double
// operations; no table to copy, so the launch stays capturable in a CUDA graph). The blend is
// spelled with fmaf and __fmul_rn so the compiler cannot contract it another way: the CPU's bits.
#include "kernels/cuda/launch.cuh"
#include "kernels/resize.h"
#include "kernels/resize_math.h"

namespace dd::kernels::cuda {

namespace {
__global__ void resize_bilinear_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t H, int64_t W,
                                       int64_t C, int64_t OH, int64_t OW, int64_t n) {
  DD_GRID_STRIDE(o, n) {
    const int64_t c = o % C, pix = o / C, ow = pix % OW, row = pix / OW, oh = row % OH, b = row / OH;
    const LinearTap th = resize_linear_tap(H, OH, oh), tw = resize_linear_tap(W, OW, ow);
    const float* row0 = x + (b * H + th.i0) * W * C + c;
    const float* row1 = x + (b * H + th.i1) * W * C + c;
    const float t0 = fmaf(row0[tw.i0 * C], tw.l0, __fmul_rn(row0[tw.i1 * C], tw.l1));
    const float t1 = fmaf(row1[tw.i0 * C], tw.l0, __fmul_rn(row1[tw.i1 * C], tw.l1));
    y[o] = fmaf(t0, th.l0, __fmul_rn(t1, th.l1));
  }
}
}  // namespace

Tensor resize_bilinear(const Tensor& x, int out_h, int out_w) {
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  Tensor y = Tensor::empty({B, out_h, out_w, C}, x.device());
  const int64_t n = y.numel();
  resize_bilinear_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.data(), y.data(), H, W, C, out_h, out_w, n);
  DD_CUDA_LAUNCH_CHECK("resize_bilinear_kernel");
  return y;
}

}  // namespace dd::kernels::cuda
