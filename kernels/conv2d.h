#pragma once
// 2-D convolution, stride 1, square kernel, the same zero padding on all sides
// (the U-Net's 1x1/p0 and 3x3/p1 convs, plain and weight-standardised):
//   x NHWC [B, H, W, Ci], w OHWI [Co, K, K, Ci], optional bias [Co]
//   y [B, Ho, Wo, Co], Ho = H + 2p - K + 1, Wo = W + 2p - K + 1
//   y[b,oh,ow,o] = bias[o] + sum_{kh,kw,ci} x[b, oh+kh-p, ow+kw-p, ci] * w[o,kh,kw,ci]
// (cross-correlation, as torch.nn.Conv2d). An absent bias is an undefined Tensor.
#include <cstdint>

#include "engine/tensor.h"

namespace dd::kernels {

struct Conv2dGrads {
  Tensor dx, dw, dbias;  // each undefined unless asked for
};

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding);
Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                            bool need_dw, bool need_dbias);

namespace cpu {
// The CPU backend lowers the conv to GEMMs over an im2col buffer built for
// chunk_rows output pixels at a time; chunk_rows = 0 picks the default (a
// buffer of at most kConv2dColBytes). Tests pass a small value to exercise
// the multi-chunk path on small shapes; results are the same for any value
// up to float rounding, and bitwise the same run to run for a given value.
constexpr int64_t kConv2dColBytes = int64_t{64} << 20;
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, int64_t chunk_rows = 0);
Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                            bool need_dw, bool need_dbias, int64_t chunk_rows = 0);
}  // namespace cpu

}  // namespace dd::kernels
