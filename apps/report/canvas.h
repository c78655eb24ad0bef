#pragma once
// A small anti-aliased RGB rasterizer for the charts (lines, rectangles, text), nothing more.
//
// Shapes are first accumulated into a coverage Mask (per-pixel max), then painted onto the Canvas
// with one colour and opacity. Painting a whole polyline at once keeps a faint, semi-transparent
// curve uniform: the joints between its segments are not blended twice.
#include <cstdint>
#include <string>
#include <vector>

namespace dd::report {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

class Mask {
 public:
  Mask(int w, int h);
  // Only pixels inside the clip rectangle [x0, x1) x [y0, y1) receive coverage.
  void set_clip(int x0, int y0, int x1, int y1);
  // A segment of the given width (pixels); coverage falls off over one pixel at its edges.
  void add_segment(float x0, float y0, float x1, float y1, float width);
  // An axis-aligned rectangle with exact area coverage at fractional edges.
  void add_rect(float x0, float y0, float x1, float y1);
  // ASCII text (stb_easy_font glyphs) with its top-left corner at (x, y), scaled.
  void add_text(float x, float y, const std::string& text, float scale);

  int width() const { return w_; }
  int height() const { return h_; }
  float at(int x, int y) const { return a_[static_cast<size_t>(y) * w_ + x]; }

 private:
  void cover(int x, int y, float c);
  int w_, h_;
  int cx0_, cy0_, cx1_, cy1_;
  std::vector<float> a_;
};

// Width of text drawn by Mask::add_text at this scale; cap height is text_cap_height(scale).
float text_width(const std::string& text, float scale);
float text_cap_height(float scale);

class Canvas {
 public:
  Canvas(int w, int h, Rgb background);
  int width() const { return w_; }
  int height() const { return h_; }
  Mask mask() const { return Mask(w_, h_); }
  void paint(const Mask& m, Rgb color, float opacity = 1.0f);
  void fill_rect(float x0, float y0, float x1, float y1, Rgb color, float opacity = 1.0f);
  // Row-major RGB bytes.
  std::vector<uint8_t> rgb() const;

 private:
  int w_, h_;
  std::vector<float> px_;  // linear blend in [0, 255] per channel
};

}  // namespace dd::report
