#pragma once
// Window arithmetic of the 2-D pools (kernels/pool2d.h), written once for the CPU
// (kernels/cpu/pool2d.cpp) and the GPU (kernels/cuda/pool2d.cu), so both pick the same windows,
// divisors and maxima.
#include <cstdint>

#include "engine/host_device.h"
#include "kernels/pool2d.h"

namespace dd::kernels {

struct PoolDims {
  int64_t b, h, w, c, ho, wo;
  int k, s, p;
  bool include_pad;
};

inline PoolDims pool_dims(const Tensor& x, const Pool2dGeometry& g) {
  PoolDims d{x.dim(0), x.dim(1), x.dim(2), x.dim(3), 0, 0, g.kernel, g.stride, g.pad, g.count_include_pad};
  d.ho = (d.h + 2 * d.p - d.k) / d.s + 1;
  d.wo = (d.w + 2 * d.p - d.k) / d.s + 1;
  return d;
}

// The windows along one axis that hold input coordinate i: o in [first, last], possibly empty
// (a row that only the stride skips). q = i + pad is i's place in the padded axis; window o covers
// q in [o*s, o*s + k - 1].
DD_HOST_DEVICE inline int64_t pool_first_window(int64_t i, int k, int s, int p) {
  const int64_t lo = i + p - k + 1;  // the first o with o*s + k - 1 >= i + p is ceil(lo / s)
  return lo <= 0 ? 0 : (lo + s - 1) / s;
}
DD_HOST_DEVICE inline int64_t pool_last_window(int64_t i, int s, int p, int64_t n_out) {
  const int64_t o = (i + p) / s;
  return o < n_out - 1 ? o : n_out - 1;
}

// The in-image part of window (oh, ow): rows [h0, h1), columns [w0, w1).
struct PoolWindow {
  int64_t h0, h1, w0, w1;
};
DD_HOST_DEVICE inline PoolWindow pool_window(const PoolDims& d, int64_t oh, int64_t ow) {
  const int64_t hs = oh * d.s - d.p, ws = ow * d.s - d.p;
  PoolWindow r;
  r.h0 = hs < 0 ? 0 : hs;
  r.w0 = ws < 0 ? 0 : ws;
  r.h1 = hs + d.k < d.h ? hs + d.k : d.h;
  r.w1 = ws + d.k < d.w ? ws + d.k : d.w;
  return r;
}

// avg_pool2d's divisor: kernel^2, or the in-image count. (In floor mode with pad <= kernel/2 no
// window reaches past the padding, so torch's clipped "pool size" is always kernel^2.)
DD_HOST_DEVICE inline float pool_avg_divisor(const PoolDims& d, const PoolWindow& win) {
  return d.include_pad ? static_cast<float>(d.k * d.k) : static_cast<float>((win.h1 - win.h0) * (win.w1 - win.w0));
}

// torch's CPU rule for the running maximum: a larger value or any NaN takes over, so ties keep the
// first element in scan order and a NaN propagates.
DD_HOST_DEVICE inline bool pool_max_takes(float v, float best) { return v > best || v != v; }

}  // namespace dd::kernels
