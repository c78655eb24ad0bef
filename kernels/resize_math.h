#pragma once
// The bilinear taps of kernels/resize.h along one axis, written once for the CPU
// (kernels/cpu/resize.cpp) and the GPU (kernels/cuda/resize.cu).
#include <cstdint>

#include "engine/host_device.h"

namespace dd::kernels {

struct LinearTap {
  int64_t i0, i1;
  float l0, l1;
};

// Output index dst of an axis resized from n_in to n_out (align_corners=False). The source
// coordinate is computed in double as torch's CPU kernel does: scale has 24 significant bits and
// dst + 0.5 at most 25 (kernels/resize.cpp bounds n_out by 2^24), so scale * (dst + 0.5) is exact and
// one rounding (the - 0.5) follows, fused or not; src - i0 is exact, then rounded once to float.
DD_HOST_DEVICE inline LinearTap resize_linear_tap(int64_t n_in, int64_t n_out, int64_t dst) {
  LinearTap t;
  if (n_in == n_out) {
    t.i0 = t.i1 = dst;
    t.l0 = 1.0f;
    t.l1 = 0.0f;
    return t;
  }
  const float scale = static_cast<float>(n_in) / static_cast<float>(n_out);
  double src = static_cast<double>(scale) * (static_cast<double>(dst) + 0.5) - 0.5;
  if (src < 0.0) src = 0.0;
  t.i0 = static_cast<int64_t>(src);
  if (t.i0 > n_in - 1) t.i0 = n_in - 1;
  t.i1 = t.i0 + (t.i0 < n_in - 1 ? 1 : 0);
  t.l1 = static_cast<float>(src - static_cast<double>(t.i0));
  t.l0 = 1.0f - t.l1;
  return t;
}

}  // namespace dd::kernels
