// 2-D max / average pooling and the global average pool on NHWC tensors (kernels/pool2d.h).
// Every loop runs over whole channel vectors (contiguous in NHWC) and adds in the order the CUDA
// kernels do (window elements in (kh, kw) scan order; an input's windows in raster order), so both
// backends give the same bits; the work splits into tasks of fixed size, so any thread count does too.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/pool2d.h"
#include "kernels/pool2d_math.h"

namespace dd::kernels::cpu {

namespace {
// Below this many output elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
// The max pool's backward scatters each image's gradients over channel blocks of this width: the
// tasks own disjoint parts of dx and add in raster order of the windows.
constexpr int64_t kChannelBlock = 64;
}  // namespace

Tensor max_pool2d_forward(const Tensor& x, const Pool2dGeometry& g) {
  const PoolDims d = pool_dims(x, g);
  Tensor y = Tensor::empty({d.b, d.ho, d.wo, d.c});
  const float* px = x.data();
  float* py = y.data();
#pragma omp parallel for schedule(static) if (y.numel() > kParallelMin)
  for (int64_t r = 0; r < d.b * d.ho; ++r) {
    const int64_t b = r / d.ho, oh = r % d.ho;
    for (int64_t ow = 0; ow < d.wo; ++ow) {
      float* out = py + (r * d.wo + ow) * d.c;
      std::fill(out, out + d.c, -std::numeric_limits<float>::infinity());
      const PoolWindow win = pool_window(d, oh, ow);
      for (int64_t ih = win.h0; ih < win.h1; ++ih)
        for (int64_t iw = win.w0; iw < win.w1; ++iw) {
          const float* src = px + ((b * d.h + ih) * d.w + iw) * d.c;
          for (int64_t c = 0; c < d.c; ++c)
            if (pool_max_takes(src[c], out[c])) out[c] = src[c];
        }
    }
  }
  return y;
}

Tensor max_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g) {
  const PoolDims d = pool_dims(x, g);
  Tensor dx = Tensor::empty(x.shape());
  const float* px = x.data();
  const float* pg = dy.data();
  float* pd = dx.data();
  const int64_t blocks = (d.c + kChannelBlock - 1) / kChannelBlock, tasks = d.b * blocks;
#pragma omp parallel if (tasks > 1 && x.numel() > kParallelMin)
  {
    std::vector<float> best(static_cast<std::size_t>(kChannelBlock));
    std::vector<int64_t> at(static_cast<std::size_t>(kChannelBlock));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / blocks, c0 = (t % blocks) * kChannelBlock, nc = std::min(kChannelBlock, d.c - c0);
      const float* xb = px + b * d.h * d.w * d.c + c0;
      float* db = pd + b * d.h * d.w * d.c + c0;
      for (int64_t q = 0; q < d.h * d.w; ++q) std::fill(db + q * d.c, db + q * d.c + nc, 0.0f);
      for (int64_t oh = 0; oh < d.ho; ++oh)
        for (int64_t ow = 0; ow < d.wo; ++ow) {
          const PoolWindow win = pool_window(d, oh, ow);
          // The first in-image element holds the maximum until a larger one (or a NaN) comes.
          std::fill(best.begin(), best.begin() + nc, -std::numeric_limits<float>::infinity());
          std::fill(at.begin(), at.begin() + nc, win.h0 * d.w + win.w0);
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) {
              const int64_t q = ih * d.w + iw;
              const float* src = xb + q * d.c;
              for (int64_t c = 0; c < nc; ++c)
                if (pool_max_takes(src[c], best[c])) {
                  best[c] = src[c];
                  at[c] = q;
                }
            }
          const float* gy = pg + ((b * d.ho + oh) * d.wo + ow) * d.c + c0;
          for (int64_t c = 0; c < nc; ++c) db[at[c] * d.c + c] += gy[c];
        }
    }
  }
  return dx;
}

Tensor avg_pool2d_forward(const Tensor& x, const Pool2dGeometry& g) {
  const PoolDims d = pool_dims(x, g);
  Tensor y = Tensor::empty({d.b, d.ho, d.wo, d.c});
  const float* px = x.data();
  float* py = y.data();
#pragma omp parallel for schedule(static) if (y.numel() > kParallelMin)
  for (int64_t r = 0; r < d.b * d.ho; ++r) {
    const int64_t b = r / d.ho, oh = r % d.ho;
    for (int64_t ow = 0; ow < d.wo; ++ow) {
      float* out = py + (r * d.wo + ow) * d.c;
      std::fill(out, out + d.c, 0.0f);
      const PoolWindow win = pool_window(d, oh, ow);
      for (int64_t ih = win.h0; ih < win.h1; ++ih)
        for (int64_t iw = win.w0; iw < win.w1; ++iw) {
          const float* src = px + ((b * d.h + ih) * d.w + iw) * d.c;
          for (int64_t c = 0; c < d.c; ++c) out[c] += src[c];
        }
      const float div = pool_avg_divisor(d, win);
      for (int64_t c = 0; c < d.c; ++c) out[c] /= div;
    }
  }
  return y;
}

Tensor avg_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g) {
  const PoolDims d = pool_dims(x, g);
  Tensor dx = Tensor::empty(x.shape());
  const float* pg = dy.data();
  float* pd = dx.data();
  // A gather: each input pixel sums dy / divisor over the windows that hold it, in raster order.
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
  for (int64_t r = 0; r < d.b * d.h; ++r) {
    const int64_t b = r / d.h, ih = r % d.h;
    const int64_t oh0 = pool_first_window(ih, d.k, d.s, d.p), oh1 = pool_last_window(ih, d.s, d.p, d.ho);
    for (int64_t iw = 0; iw < d.w; ++iw) {
      float* out = pd + (r * d.w + iw) * d.c;
      std::fill(out, out + d.c, 0.0f);
      const int64_t ow0 = pool_first_window(iw, d.k, d.s, d.p), ow1 = pool_last_window(iw, d.s, d.p, d.wo);
      for (int64_t oh = oh0; oh <= oh1; ++oh)
        for (int64_t ow = ow0; ow <= ow1; ++ow) {
          const float div = pool_avg_divisor(d, pool_window(d, oh, ow));
          const float* gy = pg + ((b * d.ho + oh) * d.wo + ow) * d.c;
          for (int64_t c = 0; c < d.c; ++c) out[c] += gy[c] / div;
        }
    }
  }
  return dx;
}

Tensor global_avg_pool_forward(const Tensor& x) {
  const int64_t B = x.dim(0), P = x.dim(1) * x.dim(2), C = x.dim(3);
  Tensor y = Tensor::empty({B, C});
  const float* px = x.data();
  float* py = y.data();
  const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock, tasks = B * blocks;
#pragma omp parallel if (tasks > 1 && x.numel() > kParallelMin)
  {
    std::vector<double> acc(static_cast<std::size_t>(kChannelBlock));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / blocks, c0 = (t % blocks) * kChannelBlock, nc = std::min(kChannelBlock, C - c0);
      std::fill(acc.begin(), acc.begin() + nc, 0.0);
      for (int64_t p = 0; p < P; ++p) {
        const float* src = px + (b * P + p) * C + c0;
        for (int64_t c = 0; c < nc; ++c) acc[c] += src[c];
      }
      for (int64_t c = 0; c < nc; ++c) py[b * C + c0 + c] = static_cast<float>(acc[c] / static_cast<double>(P));
    }
  }
  return y;
}

Tensor global_avg_pool_backward(const Tensor& x, const Tensor& dy) {
  const int64_t B = x.dim(0), P = x.dim(1) * x.dim(2), C = x.dim(3);
  Tensor dx = Tensor::empty(x.shape());
  const float* pg = dy.data();
  float* pd = dx.data();
  const float n = static_cast<float>(P);
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
  for (int64_t r = 0; r < B * P; ++r) {
    const float* gy = pg + (r / P) * C;
    float* out = pd + r * C;
    for (int64_t c = 0; c < C; ++c) out[c] = gy[c] / n;
  }
  return dx;
}

}  // namespace dd::kernels::cpu
