#pragma once
// The distinct convolutions of a U-Net preset, found by running one forward of the real model
// (models/unet.cpp) on a 1-image batch with an observer on every conv entry point
// (kernels::set_conv2d_observer): the Block's fused conv, the skip concatenations' parts, the
// upsampling and downsampling convs included. No hand-typed shapes.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "models/unet.h"

namespace dd::bench {

struct ConvShape {
  int64_t h = 0, w = 0, ci = 0, co = 0, k = 0, pad = 0;
  bool bias = false;
  int uses = 0;  // calls per forward with this shape
  std::string key() const;
  // 2 * output pixels * Co * Ci * K * K for one image: forward, backward-data and backward-weight each.
  double flops_per_image() const { return 2.0 * double(h + 2 * pad - k + 1) * double(w + 2 * pad - k + 1) * co * ci * k * k; }
};

// In order of first use in the forward.
std::vector<ConvShape> unet_conv_shapes(const models::UnetConfig& cfg, int image_size);

// Random operands of one shape at batch B on d: x, w (scaled by 1/sqrt(fan-in)), bias when the
// shape has one, and dy of the output's shape.
struct ConvInputs {
  Tensor x, w, bias, dy;
};
ConvInputs make_conv_inputs(const ConvShape& s, int64_t B, Device d, uint64_t seed);

}  // namespace dd::bench
