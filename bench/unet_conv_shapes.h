#pragma once
// The distinct convolutions of a U-Net preset, found by running one forward of the real model
// (models/unet.cpp) on a 1-image batch and recording every conv2d_forward call: no hand-typed
// shapes. The recording needs the binary linked with
//   -Wl,--wrap=_ZN2dd7kernels14conv2d_forwardERKNS_6TensorES3_S3_i
// (dd::kernels::conv2d_forward), which bench/CMakeLists.txt adds for bench_conv2d only.
#include <cstdint>
#include <string>
#include <vector>

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

}  // namespace dd::bench
