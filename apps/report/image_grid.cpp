#include "apps/report/image_grid.h"

#include <stb_image_write.h>

#include <algorithm>
#include <cmath>

#include "apps/report/atomic_file.h"
#include "engine/error.h"

namespace dd::report {
namespace {

uint8_t to_u8(float x) {
  const float v = std::min(std::max((x + 1.0f) * 0.5f, 0.0f), 1.0f);
  // floor(v * 255 + 0.5) is what save_image computes (mul(255).add_(0.5) then truncation).
  return static_cast<uint8_t>(std::floor(v * 255.0f + 0.5f));
}

}  // namespace

void write_png(const std::string& path, const std::vector<uint8_t>& pixels, int w, int h, int channels) {
  DD_CHECK(w > 0 && h > 0, "write_png '", path, "': image size ", w, "x", h, " must be positive");
  DD_CHECK(channels >= 1 && channels <= 4 && channels != 2, "write_png '", path, "': channels must be 1, 3 or 4, got ",
           channels);
  const size_t expected = static_cast<size_t>(w) * static_cast<size_t>(h) * static_cast<size_t>(channels);
  DD_CHECK(pixels.size() == expected, "write_png '", path, "': ", w, "x", h, "x", channels, " needs ", expected,
           " bytes, got ", pixels.size());
  // stb encodes into memory; the file is then written atomically.
  std::vector<uint8_t> png;
  auto sink = [](void* ctx, void* data, int size) {
    auto* out = static_cast<std::vector<uint8_t>*>(ctx);
    const auto* p = static_cast<const uint8_t*>(data);
    out->insert(out->end(), p, p + size);
  };
  const int ok = stbi_write_png_to_func(sink, &png, w, h, channels, pixels.data(), w * channels);
  DD_CHECK(ok != 0 && !png.empty(), "write_png '", path, "': PNG encoding failed");
  write_file_atomically(path, png.data(), png.size(), "write_png");
}

ImageGrid make_image_grid(const Tensor& images, int nrow, int padding, uint8_t pad_value) {
  DD_CHECK(images.defined() && images.ndim() == 4, "make_image_grid: images must be [N,H,W,C], got ",
           images.defined() ? describe(images) : std::string("an undefined tensor"));
  const int64_t n = images.dim(0), h = images.dim(1), w = images.dim(2), c = images.dim(3);
  DD_CHECK(n > 0 && h > 0 && w > 0, "make_image_grid: no pixels in ", describe(images));
  DD_CHECK(c == 1 || c == 3, "make_image_grid: images ", describe(images), " must have 1 or 3 channels (NHWC)");
  DD_CHECK(nrow > 0, "make_image_grid: nrow must be positive, got ", nrow);
  DD_CHECK(padding >= 0, "make_image_grid: padding must be >= 0, got ", padding);

  const int64_t cols = std::min<int64_t>(nrow, n);
  const int64_t rows = (n + cols - 1) / cols;
  const int64_t gw = cols * (w + padding) + padding;
  const int64_t gh = rows * (h + padding) + padding;
  DD_CHECK(gw <= (1 << 16) && gh <= (1 << 16), "make_image_grid: a ", gw, "x", gh, " grid is too large for a PNG");

  const std::vector<float> v = images.to_vector();
  const int64_t nan_count = std::count_if(v.begin(), v.end(), [](float x) { return std::isnan(x); });
  DD_CHECK(nan_count == 0, "make_image_grid: images ", describe(images), " contain ", nan_count, " NaN values");

  ImageGrid g;
  g.width = static_cast<int>(gw);
  g.height = static_cast<int>(gh);
  g.channels = static_cast<int>(c);
  g.pixels.assign(static_cast<size_t>(gw * gh * c), pad_value);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t y0 = (k / cols) * (h + padding) + padding;
    const int64_t x0 = (k % cols) * (w + padding) + padding;
    for (int64_t y = 0; y < h; ++y) {
      const float* src = v.data() + ((k * h + y) * w) * c;
      uint8_t* dst = g.pixels.data() + ((y0 + y) * gw + x0) * c;
      for (int64_t i = 0; i < w * c; ++i) dst[i] = to_u8(src[i]);
    }
  }
  return g;
}

void write_image_grid(const std::string& path, const Tensor& images, int nrow, int padding, uint8_t pad_value) {
  ImageGrid g;
  try {
    g = make_image_grid(images, nrow, padding, pad_value);
  } catch (const Error& e) {
    DD_FAIL("write_image_grid '", path, "': ", e.what());
  }
  write_png(path, g.pixels, g.width, g.height, g.channels);
}

}  // namespace dd::report
