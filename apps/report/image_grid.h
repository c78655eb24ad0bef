#pragma once
// PNG output: raw pixel buffers and grids of generated images.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dd::report {

// Writes an 8-bit PNG. pixels holds h rows of w pixels, each `channels` bytes (1 gray, 3 RGB, 4 RGBA).
void write_png(const std::string& path, const std::vector<uint8_t>& pixels, int w, int h, int channels);

// The grid's pixels, as write_image_grid would save them (kept separate for tests and for callers that
// add their own annotations). Layout as torchvision.utils.make_grid: min(nrow, N) images per row,
// ceil(N / nrow) rows, `padding` pixels of pad_value around and between images. Values map from
// [-1, 1] to [0, 255] by round(clamp((x + 1) / 2, 0, 1) * 255), as save_image does after the usual
// (x + 1) / 2. Unlike make_grid, a single image keeps its padding (one rule for every N).
struct ImageGrid {
  std::vector<uint8_t> pixels;
  int width = 0, height = 0, channels = 0;
};
ImageGrid make_image_grid(const Tensor& images, int nrow, int padding = 2, uint8_t pad_value = 0);

// images: [N, H, W, C] (NHWC, C = 1 or 3) in [-1, 1] on any device. NaN values are refused (a diverged
// model should not silently produce black squares); +-inf clamp like any out-of-range value.
void write_image_grid(const std::string& path, const Tensor& images, int nrow, int padding = 2,
                      uint8_t pad_value = 0);

}  // namespace dd::report
