#pragma once
// Per-(image, channel) sums of a conv's output and of its squares, taken chunk by chunk while each
// chunk's output is still in cache: GroupNorm's statistics without another pass over the tensor
// (kernels/conv2d_norm_act.h). The output is cut into the conv's own fixed chunks of `per` units
// (a unit is an output pixel for im2col, a Winograd tile for winograd_conv3x3; an image holds
// `per_image` units), chunk c covering units [c per, (c + 1) per). A chunk adds into one slot of its
// own per image it touches, and fold() adds each image's slots in chunk order, so the sums depend
// only on the shapes and the chunking: bitwise the same run to run and for any thread count.
#include <algorithm>
#include <cstdint>
#include <vector>

namespace dd::kernels::cpu {

class ChunkStats {
 public:
  ChunkStats(int64_t images, int64_t per_image, int64_t per, int64_t channels)
      : images_(images), per_image_(per_image), c_(channels) {
    const int64_t units = images * per_image, chunks = (units + per - 1) / per;
    first_.resize(static_cast<std::size_t>(chunks + 1));
    offset_.resize(static_cast<std::size_t>(chunks + 1));
    int64_t slots = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      const int64_t u0 = k * per, u1 = std::min(units, u0 + per);
      first_[k] = u0 / per_image;
      offset_[k] = slots;
      slots += (u1 - 1) / per_image - first_[k] + 1;
    }
    offset_[chunks] = slots;
    part_.assign(static_cast<std::size_t>(slots * 2 * c_), 0.0);
  }

  // Chunk k's slot for `image`: [2][C] doubles, sums then sums of squares, zero before the chunk.
  double* slot(int64_t chunk, int64_t image) { return part_.data() + (offset_[chunk] + image - first_[chunk]) * 2 * c_; }

  // Adds n rows of C values (row stride C) into a slot, row by row in order.
  static void add_rows(double* slot, const float* rows, int64_t n, int64_t c) {
    double* s = slot;
    double* q = slot + c;
    for (int64_t r = 0; r < n; ++r) {
      const float* v = rows + r * c;
#pragma omp simd
      for (int64_t j = 0; j < c; ++j) {
        const double d = v[j];
        s[j] += d;
        q[j] += d * d;
      }
    }
  }

  // Chunk k's pixel rows [r0, r1) of the output (one unit per pixel): split at image boundaries.
  void add_pixel_rows(int64_t chunk, int64_t r0, int64_t r1, const float* y) {
    for (int64_t r = r0; r < r1;) {
      const int64_t image = r / per_image_, end = std::min(r1, (image + 1) * per_image_);
      add_rows(slot(chunk, image), y + r * c_, end - r, c_);
      r = end;
    }
  }

  // sums[k * B*C + b*C + c]: k = 0 the sums, k = 1 the sums of squares (channel_sums<2>'s layout).
  std::vector<double> fold() const {
    const int64_t bc = images_ * c_, chunks = static_cast<int64_t>(first_.size()) - 1;
    std::vector<double> sums(static_cast<std::size_t>(2 * bc), 0.0);
    for (int64_t k = 0; k < chunks; ++k)
      for (int64_t s = offset_[k]; s < offset_[k + 1]; ++s) {
        const int64_t image = first_[k] + s - offset_[k];
        const double* p = part_.data() + s * 2 * c_;
        double* o = sums.data() + image * c_;
        for (int64_t j = 0; j < c_; ++j) {
          o[j] += p[j];
          o[bc + j] += p[c_ + j];
        }
      }
    return sums;
  }

 private:
  int64_t images_, per_image_, c_;
  std::vector<int64_t> first_, offset_;  // per chunk: its first image, its first slot
  std::vector<double> part_;
};

}  // namespace dd::kernels::cpu
