#pragma once
#include <vector>

#include "autograd/var.h"
#include "kernels/conv2d.h"

namespace dd::ag {

// x NHWC [B, H, W, Ci], w OHWI [Co, K, K, Ci], bias [Co] or Var() for none.
Var conv2d(const Var& x, const Var& w, const Var& bias, int padding);
// With a stride, per-side padding and w [Co, KH, KW, Ci], KH != KW allowed (kernels::Conv2dGeometry).
Var conv2d(const Var& x, const Var& w, const Var& bias, const kernels::Conv2dGeometry& geo);
// conv2d(concat(xs), w, bias, padding) without the concatenation (kernels::conv2d_forward_parts):
// xs [B, H, W, C_i], each part getting its slice of dx.
Var conv2d(const std::vector<Var>& xs, const Var& w, const Var& bias, int padding);
// conv2d(upsample2x(x), w, bias, padding) without the upsampled map (kernels::conv2d_forward_up2).
Var conv2d_up2(const Var& x, const Var& w, const Var& bias, int padding);
// conv2d(pixel_unshuffle(x), w, bias, padding) without the rearranged tensor
// (kernels::conv2d_forward_unshuffle2).
Var conv2d_unshuffle2(const Var& x, const Var& w, const Var& bias, int padding);

}  // namespace dd::ag
