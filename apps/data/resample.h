#pragma once
// Bringing images of any size and channel count to the square size and channel
// count the model trains on: center-crop to a square, resize (area averaging
// when shrinking, bilinear when enlarging), convert channels, round once.
#include <cstdint>
#include <vector>

#include "apps/data/dataset.h"

namespace dd::data {

// Per-axis filter taps: output o reads source indices first[o] .. first[o]+count[o]-1
// with weights w[offset[o] ..]. The crop offset is folded into first[].
struct AxisTaps {
  std::vector<int64_t> first, count, offset;
  std::vector<float> w;
};

// Taps mapping `in` source pixels starting at `start` onto `out` pixels. Shrinking averages
// over each output pixel's footprint (exact box filter, fractional edges weighted by
// coverage), so no source pixel is skipped; enlarging interpolates bilinearly between
// pixel centres (half-pixel convention, as PIL and torch with align_corners=False).
AxisTaps axis_taps(int64_t in, int64_t out, int64_t start);

// Resamples images of one source size to one target size; built once per source size
// and reused (the taps depend only on the sizes).
class Resampler {
 public:
  // size > 0: center-crop to the largest centred square (odd excess: the extra row/column
  // is dropped at the bottom/right) and resize to size x size. size <= 0: keep h x w.
  Resampler(int64_t height, int64_t width, int64_t size);
  int64_t out_height() const { return out_h_; }
  int64_t out_width() const { return out_w_; }

  // src: height x width pixels of `stride` bytes (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA;
  // alpha is ignored, not composited). dst: out_height x out_width x channels bytes,
  // channels 1 (luminance 0.299 R + 0.587 G + 0.114 B) or 3 (gray is replicated).
  // scratch is resized as needed, so a caller looping over images allocates once.
  void run(const uint8_t* src, int64_t stride, int64_t channels, uint8_t* dst, std::vector<float>& scratch) const;

 private:
  int64_t h_, w_, out_h_, out_w_;
  bool identity_;
  AxisTaps rows_, cols_;
};

// The dataset at size x size with `channels` channels (size <= 0 / channels <= 0: keep
// the dataset's own). Returns d unchanged when nothing needs doing.
Dataset conform(Dataset d, int64_t size, int64_t channels);

}  // namespace dd::data
