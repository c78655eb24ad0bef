#include "apps/data/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/error.h"

namespace dd::data {

AxisTaps axis_taps(int64_t in, int64_t out, int64_t start) {
  DD_CHECK(in > 0 && out > 0 && start >= 0, "axis_taps: bad sizes in=", in, " out=", out, " start=", start);
  AxisTaps t;
  t.first.resize(out);
  t.count.resize(out);
  t.offset.resize(out);
  const double s = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t o = 0; o < out; ++o) {
    t.offset[o] = static_cast<int64_t>(t.w.size());
    if (in == out) {
      t.first[o] = start + o;
      t.count[o] = 1;
      t.w.push_back(1.0f);
    } else if (in > out) {
      const double lo = o * s, hi = (o + 1) * s;
      const int64_t i0 = static_cast<int64_t>(std::floor(lo));
      const int64_t i1 = std::min<int64_t>(in, static_cast<int64_t>(std::ceil(hi)));
      t.first[o] = start + i0;
      t.count[o] = i1 - i0;
      for (int64_t i = i0; i < i1; ++i) {
        const double cover = std::min(hi, static_cast<double>(i + 1)) - std::max(lo, static_cast<double>(i));
        t.w.push_back(static_cast<float>(std::max(0.0, cover) / s));
      }
    } else {
      const double x = std::max(0.0, (o + 0.5) * s - 0.5);
      const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(std::floor(x)), in - 1);
      const int64_t i1 = std::min<int64_t>(i0 + 1, in - 1);
      const double f = x - static_cast<double>(i0);
      t.first[o] = start + i0;
      if (i1 == i0) {
        t.count[o] = 1;
        t.w.push_back(1.0f);
      } else {
        t.count[o] = 2;
        t.w.push_back(static_cast<float>(1.0 - f));
        t.w.push_back(static_cast<float>(f));
      }
    }
  }
  return t;
}

Resampler::Resampler(int64_t height, int64_t width, int64_t size) : h_(height), w_(width) {
  DD_CHECK(height > 0 && width > 0, "Resampler: empty source image ", height, "x", width);
  int64_t side_h = height, side_w = width, y0 = 0, x0 = 0;
  if (size > 0) {
    const int64_t side = std::min(height, width);
    y0 = (height - side) / 2;
    x0 = (width - side) / 2;
    side_h = side_w = side;
    out_h_ = out_w_ = size;
  } else {
    out_h_ = height;
    out_w_ = width;
  }
  identity_ = out_h_ == height && out_w_ == width;
  rows_ = axis_taps(side_h, out_h_, y0);
  cols_ = axis_taps(side_w, out_w_, x0);
}

namespace {
inline uint8_t round_u8(float v) {
  // Filters are convex combinations, but float sums can land a hair outside [0, 255].
  return static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, std::floor(v + 0.5f))));
}
}  // namespace

void Resampler::run(const uint8_t* src, int64_t stride, int64_t channels, uint8_t* dst,
                    std::vector<float>& scratch) const {
  DD_CHECK(stride >= 1 && stride <= 4, "Resampler: ", stride, " bytes per pixel; expected 1 to 4");
  DD_CHECK(channels == 1 || channels == 3, "Resampler: ", channels, " output channels; expected 1 or 3");
  const int64_t used = stride >= 3 ? 3 : 1;  // colour channels; alpha is never read
  if (identity_ && used == channels && used == stride) {
    std::memcpy(dst, src, static_cast<std::size_t>(h_ * w_ * stride));
    return;
  }
  // Horizontal pass over every source row the crop keeps, then vertical pass; the values
  // stay float until the channel conversion, so each output byte is rounded once.
  const int64_t row0 = rows_.first.front();
  const int64_t nrows = rows_.first.back() + rows_.count.back() - row0;
  const std::size_t hpass = static_cast<std::size_t>(nrows * out_w_ * used);
  const std::size_t vpass = static_cast<std::size_t>(out_h_ * out_w_ * used);
  if (scratch.size() < hpass + vpass) scratch.resize(hpass + vpass);
  float* hbuf = scratch.data();
  float* vbuf = scratch.data() + hpass;
  for (int64_t y = 0; y < nrows; ++y) {
    const uint8_t* srow = src + (row0 + y) * w_ * stride;
    float* hrow = hbuf + y * out_w_ * used;
    for (int64_t ox = 0; ox < out_w_; ++ox) {
      const float* wt = cols_.w.data() + cols_.offset[ox];
      const uint8_t* sp = srow + cols_.first[ox] * stride;
      for (int64_t k = 0; k < used; ++k) {
        float acc = 0.0f;
        for (int64_t t = 0; t < cols_.count[ox]; ++t) acc += wt[t] * static_cast<float>(sp[t * stride + k]);
        hrow[ox * used + k] = acc;
      }
    }
  }
  const int64_t row_len = out_w_ * used;
  for (int64_t oy = 0; oy < out_h_; ++oy) {
    const float* wt = rows_.w.data() + rows_.offset[oy];
    const float* hp = hbuf + (rows_.first[oy] - row0) * row_len;
    float* vrow = vbuf + oy * row_len;
    for (int64_t j = 0; j < row_len; ++j) vrow[j] = wt[0] * hp[j];
    for (int64_t t = 1; t < rows_.count[oy]; ++t)
      for (int64_t j = 0; j < row_len; ++j) vrow[j] += wt[t] * hp[t * row_len + j];
  }
  const int64_t npix = out_h_ * out_w_;
  if (used == channels) {
    for (int64_t j = 0; j < npix * used; ++j) dst[j] = round_u8(vbuf[j]);
  } else if (used == 1) {
    for (int64_t p = 0; p < npix; ++p) dst[3 * p] = dst[3 * p + 1] = dst[3 * p + 2] = round_u8(vbuf[p]);
  } else {
    for (int64_t p = 0; p < npix; ++p)
      dst[p] = round_u8(0.299f * vbuf[3 * p] + 0.587f * vbuf[3 * p + 1] + 0.114f * vbuf[3 * p + 2]);
  }
}

Dataset conform(Dataset d, int64_t size, int64_t channels) {
  d.validate();
  DD_CHECK(channels <= 0 || channels == 1 || channels == 3, "dataset '", d.name, "': cannot convert to ", channels,
           " channels; expected 1 (grayscale) or 3 (RGB)");
  const int64_t out_c = channels > 0 ? channels : d.channels;
  const bool resize = size > 0 && (d.height != size || d.width != size);
  if (!resize && out_c == d.channels) return d;

  const Resampler rs(d.height, d.width, size);
  Dataset out;
  out.name = d.name;
  out.count = d.count;
  out.height = rs.out_height();
  out.width = rs.out_width();
  out.channels = out_c;
  out.description = d.description;
  if (resize)
    out.description += str_cat("; center-cropped and resized ", d.height, "x", d.width, " -> ", size, "x", size);
  if (out_c != d.channels) out.description += str_cat("; converted ", d.channels, " -> ", out_c, " channels");
  out.pixels.resize(static_cast<std::size_t>(out.count * out.image_bytes()));
#pragma omp parallel
  {
    std::vector<float> scratch;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < d.count; ++i) rs.run(d.image(i), d.channels, out_c, out.image(i), scratch);
  }
  return out;
}

}  // namespace dd::data
