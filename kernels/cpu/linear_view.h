#pragma once
// The CPU linear layer over a view of x (kernels/cpu/channel_parts.h: channel parts, or the
// U-Net's pixel_unshuffle read in place): each row block is gathered into a buffer in cache and dx
// is scattered back through the view. x's tensors must already carry the GEMM rounding
// (gemm_rounding of the context's precision, as linear_forward applies); w and dy are rounded here.
#include <cstdint>

#include "engine/tensor.h"
#include "kernels/cpu/channel_parts.h"

namespace dd::kernels::cpu {

// y [m, n] = x w^T (+ bias) for x's m rows of x.total columns.
Tensor linear_forward_view(const ChannelParts& x, int64_t m, const Tensor& w, const Tensor& bias);
// dx = dy w into dx's view (unless null); *dw = dy^T x (unless null). No dbias.
void linear_backward_view(const ChannelParts& x, int64_t m, const Tensor& w, const Tensor& dy,
                          const ChannelPartsOut* dx, Tensor* dw);

}  // namespace dd::kernels::cpu
