// 2-D max / average pooling and the global average pool on NHWC tensors (kernels/pool2d.h). One
// thread per written element, channels fastest, so loads and stores are coalesced along C. The
// backward passes are gathers (each input element visits the windows that hold it, in raster
// order), so nothing is scattered, no atomics are needed and the sums run in the CPU's order: the
// two backends agree bit for bit (kernels/cpu/pool2d.cpp).
#include <cmath>

#include "kernels/cuda/launch.cuh"
#include "kernels/pool2d.h"
#include "kernels/pool2d_math.h"

namespace dd::kernels::cuda {

namespace {
struct OutIndex {
  int64_t b, oh, ow, c;
};
__device__ OutIndex split_out(int64_t o, const PoolDims& d) {
  OutIndex r;
  r.c = o % d.c;
  const int64_t pix = o / d.c;
  r.ow = pix % d.wo;
  const int64_t row = pix / d.wo;
  r.oh = row % d.ho;
  r.b = row / d.ho;
  return r;
}

// The running maximum of window (oh, ow) in channel c of image xb and where it is (ih * W + iw):
// starts at the first in-image element, as the CPU.
__device__ int64_t window_argmax(const float* __restrict__ xb, const PoolDims& d, int64_t oh, int64_t ow, int64_t c,
                                 float* best_out) {
  const PoolWindow win = pool_window(d, oh, ow);
  float best = -INFINITY;
  int64_t at = win.h0 * d.w + win.w0;
  for (int64_t ih = win.h0; ih < win.h1; ++ih)
    for (int64_t iw = win.w0; iw < win.w1; ++iw) {
      const float v = xb[(ih * d.w + iw) * d.c + c];
      if (pool_max_takes(v, best)) {
        best = v;
        at = ih * d.w + iw;
      }
    }
  *best_out = best;
  return at;
}

__global__ void max_pool_forward_kernel(const float* __restrict__ x, float* __restrict__ y, PoolDims d, int64_t n) {
  DD_GRID_STRIDE(o, n) {
    const OutIndex i = split_out(o, d);
    float best;
    window_argmax(x + i.b * d.h * d.w * d.c, d, i.oh, i.ow, i.c, &best);
    y[o] = best;
  }
}

__global__ void max_pool_backward_kernel(const float* __restrict__ x, const float* __restrict__ dy,
                                         float* __restrict__ dx, PoolDims d, int64_t n) {
  DD_GRID_STRIDE(i, n) {
    const int64_t c = i % d.c, pix = i / d.c, iw = pix % d.w, row = pix / d.w, ih = row % d.h, b = row / d.h;
    const float* xb = x + b * d.h * d.w * d.c;
    const int64_t oh0 = pool_first_window(ih, d.k, d.s, d.p), oh1 = pool_last_window(ih, d.s, d.p, d.ho);
    const int64_t ow0 = pool_first_window(iw, d.k, d.s, d.p), ow1 = pool_last_window(iw, d.s, d.p, d.wo);
    float acc = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        float best;
        if (window_argmax(xb, d, oh, ow, c, &best) == ih * d.w + iw)
          acc = __fadd_rn(acc, dy[((b * d.ho + oh) * d.wo + ow) * d.c + c]);
      }
    dx[i] = acc;
  }
}

__global__ void avg_pool_forward_kernel(const float* __restrict__ x, float* __restrict__ y, PoolDims d, int64_t n) {
  DD_GRID_STRIDE(o, n) {
    const OutIndex i = split_out(o, d);
    const PoolWindow win = pool_window(d, i.oh, i.ow);
    const float* xb = x + i.b * d.h * d.w * d.c + i.c;
    float acc = 0.0f;
    for (int64_t ih = win.h0; ih < win.h1; ++ih)
      for (int64_t iw = win.w0; iw < win.w1; ++iw) acc = __fadd_rn(acc, xb[(ih * d.w + iw) * d.c]);
    y[o] = __fdiv_rn(acc, pool_avg_divisor(d, win));
  }
}

__global__ void avg_pool_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx, PoolDims d, int64_t n) {
  DD_GRID_STRIDE(i, n) {
    const int64_t c = i % d.c, pix = i / d.c, iw = pix % d.w, row = pix / d.w, ih = row % d.h, b = row / d.h;
    const int64_t oh0 = pool_first_window(ih, d.k, d.s, d.p), oh1 = pool_last_window(ih, d.s, d.p, d.ho);
    const int64_t ow0 = pool_first_window(iw, d.k, d.s, d.p), ow1 = pool_last_window(iw, d.s, d.p, d.wo);
    float acc = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const float div = pool_avg_divisor(d, pool_window(d, oh, ow));
        acc = __fadd_rn(acc, __fdiv_rn(dy[((b * d.ho + oh) * d.wo + ow) * d.c + c], div));
      }
    dx[i] = acc;
  }
}

// y[b, c] = mean over the P pixels, summed in double in pixel order (the CPU's order).
__global__ void global_avg_forward_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t P, int64_t C,
                                          int64_t n) {
  DD_GRID_STRIDE(o, n) {
    const int64_t b = o / C, c = o % C;
    const float* src = x + b * P * C + c;
    double acc = 0.0;
    for (int64_t p = 0; p < P; ++p) acc = __dadd_rn(acc, static_cast<double>(src[p * C]));
    y[o] = static_cast<float>(__ddiv_rn(acc, static_cast<double>(P)));
  }
}

__global__ void global_avg_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx, int64_t P, int64_t C,
                                           int64_t n) {
  const float count = static_cast<float>(P);
  DD_GRID_STRIDE(i, n) {
    const int64_t c = i % C, b = i / (P * C);
    dx[i] = __fdiv_rn(dy[b * C + c], count);
  }
}
}  // namespace

Tensor max_pool2d_forward(const Tensor& x, const Pool2dGeometry& g) {
  const PoolDims d = pool_dims(x, g);
  Tensor y = Tensor::empty({d.b, d.ho, d.wo, d.c}, x.device());
  const int64_t n = y.numel();
  max_pool_forward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.data(), y.data(), d, n);
  DD_CUDA_LAUNCH_CHECK("max_pool_forward_kernel");
  return y;
}

Tensor max_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g) {
  const PoolDims d = pool_dims(x, g);
  Tensor dx = Tensor::empty(x.shape(), x.device());
  const int64_t n = dx.numel();
  max_pool_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.data(), dy.data(), dx.data(), d, n);
  DD_CUDA_LAUNCH_CHECK("max_pool_backward_kernel");
  return dx;
}

Tensor avg_pool2d_forward(const Tensor& x, const Pool2dGeometry& g) {
  const PoolDims d = pool_dims(x, g);
  Tensor y = Tensor::empty({d.b, d.ho, d.wo, d.c}, x.device());
  const int64_t n = y.numel();
  avg_pool_forward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.data(), y.data(), d, n);
  DD_CUDA_LAUNCH_CHECK("avg_pool_forward_kernel");
  return y;
}

Tensor avg_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g) {
  const PoolDims d = pool_dims(x, g);
  Tensor dx = Tensor::empty(x.shape(), x.device());
  const int64_t n = dx.numel();
  avg_pool_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dy.data(), dx.data(), d, n);
  DD_CUDA_LAUNCH_CHECK("avg_pool_backward_kernel");
  return dx;
}

Tensor global_avg_pool_forward(const Tensor& x) {
  const int64_t B = x.dim(0), P = x.dim(1) * x.dim(2), C = x.dim(3);
  Tensor y = Tensor::empty({B, C}, x.device());
  const int64_t n = y.numel();
  global_avg_forward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.data(), y.data(), P, C, n);
  DD_CUDA_LAUNCH_CHECK("global_avg_forward_kernel");
  return y;
}

Tensor global_avg_pool_backward(const Tensor& x, const Tensor& dy) {
  const int64_t P = x.dim(1) * x.dim(2), C = x.dim(3);
  Tensor dx = Tensor::empty(x.shape(), x.device());
  const int64_t n = dx.numel();
  global_avg_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dy.data(), dx.data(), P, C, n);
  DD_CUDA_LAUNCH_CHECK("global_avg_backward_kernel");
  return dx;
}

}  // namespace dd::kernels::cuda
