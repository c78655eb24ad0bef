#pragma once
// A training set held in memory as uint8 NHWC [N, H, W, C]: every image of one
// dataset has the same H, W and C, so the loader can copy batches without
// per-image bookkeeping. Bytes (not floats) keep CIFAR-10 at 150 MB instead of 600.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dd::data {

struct Dataset {
  std::string name;         // short, e.g. "fashion-mnist"
  std::string description;  // where it came from and what was done to it
  int64_t count = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;
  std::vector<uint8_t> pixels;  // count * height * width * channels bytes, NHWC

  int64_t image_bytes() const { return height * width * channels; }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * image_bytes(); }
  uint8_t* image(int64_t i) { return pixels.data() + i * image_bytes(); }
  Shape shape() const { return {count, height, width, channels}; }
  // Throws unless the sizes are positive, C is 1 or 3 and pixels holds exactly N*H*W*C bytes.
  void validate() const;
};

// "fashion-mnist: 60000x28x28x1" for logs and error messages.
std::string summary(const Dataset& d);

// Mean pixel value over the whole dataset, in [0, 255] (a sanity check for loaders).
double pixel_mean(const Dataset& d);

}  // namespace dd::data
