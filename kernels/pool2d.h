#pragma once
// 2-D max and average pooling of NHWC activations (Inception-v3's pools, pytorch-fid's FIDInception
// blocks), with torch.nn.functional.max_pool2d / avg_pool2d semantics and ceil_mode=False:
//   x [B, H, W, C] -> y [B, Ho, Wo, C], Ho = (H + 2*pad - kernel) / stride + 1, Wo likewise with W;
//   window (oh, ow) covers rows oh*stride - pad .. + kernel - 1 and the same columns.
// max: padding acts as -inf (only in-image elements compete; pad <= kernel/2 leaves every window at
//      least one); a NaN in the window wins, as torch's CPU kernel (`val > max || isnan(val)`).
//      The backward sends dy to the first maximum in (kh, kw) scan order, as torch's CPU kernel; an
//      input that is the maximum of several windows sums their dy in raster order of the windows.
// avg: the sum of the in-image elements, divided by kernel^2 (count_include_pad) or by their number.
// global_avg_pool: adaptive_avg_pool2d(x, 1) flattened, [B, H, W, C] -> [B, C]; sums in double.
// CPU and CUDA add in the same order: the two backends agree bit for bit.
#include "engine/tensor.h"

namespace dd::kernels {

struct Pool2dGeometry {
  int kernel = 3;
  int stride = 1;
  int pad = 0;
  bool count_include_pad = true;  // avg only
};

// Ho = (H + 2*pad - kernel)/stride + 1; torch.nn.functional.max_pool2d / avg_pool2d semantics.
Tensor max_pool2d_forward(const Tensor& x, const Pool2dGeometry& g);  // padding acts as -inf
// dx; gradient to the first maximum in (kh, kw) scan order, as torch's CPU kernel
Tensor max_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g);
// divisor: kernel^2 when count_include_pad, else the number of in-image elements of the window
Tensor avg_pool2d_forward(const Tensor& x, const Pool2dGeometry& g);
Tensor avg_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g);  // dx
Tensor global_avg_pool_forward(const Tensor& x);  // [B,H,W,C] -> [B,C], adaptive_avg_pool2d to 1x1
Tensor global_avg_pool_backward(const Tensor& x, const Tensor& dy);  // dy [B,C] -> dx [B,H,W,C]

// The output shape [B, Ho, Wo, C] for x and g; throws, naming the op, x and g, unless x is a non-empty
// NHWC tensor, kernel > 0, stride > 0, 0 <= pad <= kernel/2 (torch's rule) and Ho, Wo >= 1.
Shape pool2d_out_shape(const char* op, const Tensor& x, const Pool2dGeometry& g);

namespace cpu {
Tensor max_pool2d_forward(const Tensor& x, const Pool2dGeometry& g);
Tensor max_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g);
Tensor avg_pool2d_forward(const Tensor& x, const Pool2dGeometry& g);
Tensor avg_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g);
Tensor global_avg_pool_forward(const Tensor& x);
Tensor global_avg_pool_backward(const Tensor& x, const Tensor& dy);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor max_pool2d_forward(const Tensor& x, const Pool2dGeometry& g);
Tensor max_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g);
Tensor avg_pool2d_forward(const Tensor& x, const Pool2dGeometry& g);
Tensor avg_pool2d_backward(const Tensor& x, const Tensor& dy, const Pool2dGeometry& g);
Tensor global_avg_pool_forward(const Tensor& x);
Tensor global_avg_pool_backward(const Tensor& x, const Tensor& dy);
}  // namespace cuda
#endif

}  // namespace dd::kernels
