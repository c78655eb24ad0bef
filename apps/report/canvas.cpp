#include "apps/report/canvas.h"

#include <stb_easy_font.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace dd::report {
namespace {

// stb_easy_font indexes its glyph table with (c - 32) unchecked: anything outside printable ASCII
// would read out of bounds, so it becomes '?'.
std::vector<char> printable(const std::string& text) {
  std::vector<char> s;
  for (char c : text) s.push_back((c >= 32 && c < 127) ? c : '?');
  s.push_back('\0');
  return s;
}

}  // namespace

Mask::Mask(int w, int h) : w_(w), h_(h), cx0_(0), cy0_(0), cx1_(w), cy1_(h), a_(static_cast<size_t>(w) * h, 0.0f) {
  DD_CHECK(w > 0 && h > 0, "Mask: size ", w, "x", h, " must be positive");
}

void Mask::set_clip(int x0, int y0, int x1, int y1) {
  cx0_ = std::max(0, x0);
  cy0_ = std::max(0, y0);
  cx1_ = std::min(w_, x1);
  cy1_ = std::min(h_, y1);
}

void Mask::cover(int x, int y, float c) {
  if (x < cx0_ || x >= cx1_ || y < cy0_ || y >= cy1_ || c <= 0.0f) return;
  float& a = a_[static_cast<size_t>(y) * w_ + x];
  a = std::max(a, std::min(c, 1.0f));
}

void Mask::add_segment(float x0, float y0, float x1, float y1, float width) {
  const float r = 0.5f * width + 0.5f;  // beyond half-width + half a pixel the coverage is zero
  const int ix0 = std::max(cx0_, static_cast<int>(std::floor(std::min(x0, x1) - r)));
  const int ix1 = std::min(cx1_ - 1, static_cast<int>(std::ceil(std::max(x0, x1) + r)));
  const int iy0 = std::max(cy0_, static_cast<int>(std::floor(std::min(y0, y1) - r)));
  const int iy1 = std::min(cy1_ - 1, static_cast<int>(std::ceil(std::max(y0, y1) + r)));
  const float dx = x1 - x0, dy = y1 - y0;
  const float len2 = dx * dx + dy * dy;
  for (int y = iy0; y <= iy1; ++y) {
    for (int x = ix0; x <= ix1; ++x) {
      const float px = x + 0.5f - x0, py = y + 0.5f - y0;
      const float t = len2 > 0.0f ? std::clamp((px * dx + py * dy) / len2, 0.0f, 1.0f) : 0.0f;
      const float ex = px - t * dx, ey = py - t * dy;
      const float d = std::sqrt(ex * ex + ey * ey);
      // A line thinner than a pixel is drawn one pixel wide at reduced strength, so it stays visible.
      const float strength = std::min(width, 1.0f);
      cover(x, y, strength * std::clamp(0.5f * std::max(width, 1.0f) + 0.5f - d, 0.0f, 1.0f));
    }
  }
}

void Mask::add_rect(float x0, float y0, float x1, float y1) {
  if (x1 <= x0 || y1 <= y0) return;
  const int ix0 = std::max(cx0_, static_cast<int>(std::floor(x0)));
  const int ix1 = std::min(cx1_ - 1, static_cast<int>(std::ceil(x1)) - 1);
  const int iy0 = std::max(cy0_, static_cast<int>(std::floor(y0)));
  const int iy1 = std::min(cy1_ - 1, static_cast<int>(std::ceil(y1)) - 1);
  for (int y = iy0; y <= iy1; ++y) {
    const float oy = std::min(y1, y + 1.0f) - std::max(y0, static_cast<float>(y));
    for (int x = ix0; x <= ix1; ++x) {
      const float ox = std::min(x1, x + 1.0f) - std::max(x0, static_cast<float>(x));
      cover(x, y, ox * oy);
    }
  }
}

void Mask::add_text(float x, float y, const std::string& text, float scale) {
  std::vector<char> s = printable(text);
  // About 270 bytes per character per stb_easy_font's documentation; 64 bytes per quad.
  std::vector<char> buf(400 * s.size() + 64);
  const int quads = stb_easy_font_print(0.0f, 0.0f, s.data(), nullptr, buf.data(), static_cast<int>(buf.size()));
  for (int q = 0; q < quads; ++q) {
    // Vertices 0 and 2 of each quad are opposite corners (16 bytes per vertex: x, y, z, rgba).
    const float* v0 = reinterpret_cast<const float*>(buf.data() + q * 64);
    const float* v2 = reinterpret_cast<const float*>(buf.data() + q * 64 + 32);
    add_rect(x + v0[0] * scale, y + v0[1] * scale, x + v2[0] * scale, y + v2[1] * scale);
  }
}

float text_width(const std::string& text, float scale) {
  std::vector<char> s = printable(text);
  // stb_easy_font_width includes the trailing one-pixel gap after the last glyph.
  return std::max(0, stb_easy_font_width(s.data()) - 1) * scale;
}

float text_cap_height(float scale) { return 7.0f * scale; }

Canvas::Canvas(int w, int h, Rgb bg) : w_(w), h_(h), px_(static_cast<size_t>(w) * h * 3) {
  DD_CHECK(w > 0 && h > 0, "Canvas: size ", w, "x", h, " must be positive");
  for (size_t i = 0; i < px_.size(); i += 3) {
    px_[i] = bg.r;
    px_[i + 1] = bg.g;
    px_[i + 2] = bg.b;
  }
}

void Canvas::paint(const Mask& m, Rgb c, float opacity) {
  DD_CHECK(m.width() == w_ && m.height() == h_, "Canvas::paint: mask ", m.width(), "x", m.height(), " vs canvas ", w_,
           "x", h_);
  const float col[3] = {static_cast<float>(c.r), static_cast<float>(c.g), static_cast<float>(c.b)};
  for (int y = 0; y < h_; ++y) {
    for (int x = 0; x < w_; ++x) {
      const float a = m.at(x, y) * opacity;
      if (a <= 0.0f) continue;
      float* p = &px_[(static_cast<size_t>(y) * w_ + x) * 3];
      for (int k = 0; k < 3; ++k) p[k] += a * (col[k] - p[k]);
    }
  }
}

void Canvas::fill_rect(float x0, float y0, float x1, float y1, Rgb color, float opacity) {
  Mask m = mask();
  m.add_rect(x0, y0, x1, y1);
  paint(m, color, opacity);
}

std::vector<uint8_t> Canvas::rgb() const {
  std::vector<uint8_t> out(px_.size());
  for (size_t i = 0; i < px_.size(); ++i) out[i] = static_cast<uint8_t>(std::clamp(std::lround(px_[i]), 0L, 255L));
  return out;
}

}  // namespace dd::report
