#pragma once
// pytorch-fid's Inception-v3 (the FID variant of TensorFlow's 2015-12-05 graph, not torchvision's):
// pool3 features, 2048 per image, the numbers every published FID is computed from.
//
// What makes it the FID variant, each of which changes the score if missed:
//   - the input is resized to 299x299 bilinearly with align_corners=False, then scaled 2x - 1
//     (images in [0, 1]); grayscale images are replicated to three channels (PIL's convert('RGB'));
//   - the average pools of Mixed_5b..5d (A), Mixed_6b..6e (C) and Mixed_7b (E_1) do not count the
//     padding (count_include_pad=False), and Mixed_7c (E_2) max-pools its pool branch;
//   - batch norm in inference form, eps 1e-3, folded here into the preceding bias-free convolution
//     (w * gamma / sqrt(var + eps), bias beta - mean * gamma / sqrt(var + eps), in float64).
// Weights: the state_dict of pytorch-fid's file pt_inception-2015-12-05-6726825d.pth under its own
// names and layouts, converted once to safetensors by scripts/convert_inception.py.
#include <cstdint>
#include <string>

#include "engine/device.h"
#include "engine/tensor.h"
#include "kernels/conv2d.h"

namespace dd {
struct SafeTensorsFile;
}

namespace dd::fid {

struct InceptionLoader;  // models/inception.cpp

constexpr int kInceptionSize = 299;
constexpr int kFeatureDim = 2048;

class InceptionV3 {
 public:
  // Loads and folds the weights onto dev. Errors name the file and the missing or misshapen tensor.
  static InceptionV3 load(const std::string& path, Device dev = Device::CPU);
  // Random weights in the same layout (He-scaled convolutions, batch-norm statistics around 1 and 0, so
  // activations stay O(1)): the tests' and benchmarks' stand-in for pytorch-fid's file. weights_out, when
  // given, receives them as that file would hold them (OIHW, batch norm unfolded).
  static InceptionV3 random(uint64_t seed, Device dev = Device::CPU, SafeTensorsFile* weights_out = nullptr);

  // images NHWC [B, H, W, C] in [0, 1], C = 1 or 3, any H and W >= 1 (resized to 299x299), on any
  // device (moved to the model's). Returns [B, 2048] on the model's device.
  Tensor features(const Tensor& images) const;

  Device device() const { return dev_; }
  // True when the file's metadata says it was converted from pytorch-fid's published weights
  // (sha256 prefix 6726825d): FIDs from anything else are not comparable with published ones.
  bool official() const { return official_; }
  const std::string& source() const { return source_; }

  // One BasicConv2d (conv, batch norm, ReLU) with the batch norm folded in.
  struct Conv {
    Tensor w, b;  // OHWI [Co, KH, KW, Ci], [Co]
    kernels::Conv2dGeometry geo;
    Tensor operator()(const Tensor& x) const;
  };

 private:
  struct BlockA { Conv b1x1, b5x5_1, b5x5_2, b3dbl_1, b3dbl_2, b3dbl_3, pool; };
  struct BlockB { Conv b3x3, b3dbl_1, b3dbl_2, b3dbl_3; };
  struct BlockC { Conv b1x1, b7_1, b7_2, b7_3, b7dbl_1, b7dbl_2, b7dbl_3, b7dbl_4, b7dbl_5, pool; };
  struct BlockD { Conv b3_1, b3_2, b7x3_1, b7x3_2, b7x3_3, b7x3_4; };
  struct BlockE { Conv b1x1, b3_1, b3_2a, b3_2b, b3dbl_1, b3dbl_2, b3dbl_3a, b3dbl_3b, pool; };

  static InceptionV3 build(const InceptionLoader& L);
  static Tensor block_a(const BlockA& m, const Tensor& x);
  static Tensor block_b(const BlockB& m, const Tensor& x);
  static Tensor block_c(const BlockC& m, const Tensor& x);
  static Tensor block_d(const BlockD& m, const Tensor& x);
  static Tensor block_e(const BlockE& m, const Tensor& x, bool max_pool_branch);

  Device dev_ = Device::CPU;
  bool official_ = false;
  std::string source_;
  Conv c1a, c2a, c2b, c3b, c4a;
  BlockA m5b, m5c, m5d;
  BlockB m6a;
  BlockC m6b, m6c, m6d, m6e;
  BlockD m7a;
  BlockE m7b, m7c;
};

// Images as pytorch-fid sees them: [B, H, W, C] in [-1, 1] (our samples' range) quantized to 8 bits
// as a PNG would store them, then divided by 255 (torchvision's ToTensor), so features of samples in
// memory equal those of the same samples written to PNG files and read back.
Tensor quantize_like_png(const Tensor& samples_pm1);

}  // namespace dd::fid
