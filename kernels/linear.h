#pragma once
// Fully connected layer with PyTorch's layout (the U-Net's time MLP and the
// ResNet blocks' time projections): x [M, K], w [N, K], optional bias [N],
//   y = x w^T + b   ([M, N]).
// An absent bias is an undefined Tensor (Tensor()).
#include <vector>

#include "engine/tensor.h"

namespace dd::kernels {

struct LinearGrads {
  Tensor dx, dw, dbias;  // each undefined unless asked for
};

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias);
// dx = dy w, dw = dy^T x, dbias = column sums of dy.
LinearGrads linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, bool need_dx, bool need_dw,
                            bool need_dbias);

namespace cpu {
Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias);
LinearGrads linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, bool need_dx, bool need_dw,
                            bool need_dbias);
// x = concat(xs) along the last dim, xs [M, K_i] (the 1x1 convs of kernels::conv2d_forward_parts),
// never built: each row block is gathered into a buffer in cache, and dx is scattered into parts.
// Bitwise linear_forward / linear_backward of the concatenation (no dbias here).
struct LinearPartsGrads {
  std::vector<Tensor> dx;  // one per part when asked for
  Tensor dw;
};
Tensor linear_forward_parts(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias);
LinearPartsGrads linear_backward_parts(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& dy, bool need_dx,
                                       bool need_dw);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias);
LinearGrads linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, bool need_dx, bool need_dw,
                            bool need_dbias);
}  // namespace cuda
#endif

}  // namespace dd::kernels
