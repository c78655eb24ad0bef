#pragma once
// An NHWC tensor given as parts along its channel dim: what the U-Net's skip connections
// concatenate (torch.cat(dim=1)) before a ResNet block. The convolutions read a run of pixels of
// the concatenation from the parts (gather) and write dx into the parts (scatter), so the
// concatenation and its split are never built: each was a full-tensor pass that only copied.
// Every path already copies those pixels into a buffer in cache (im2col rows, Winograd tiles, the
// 1x1's row blocks), so the gather costs what the copy cost; one part is the plain tensor.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>

#include "engine/error.h"

namespace dd::kernels::cpu {

template <class T>  // const float (inputs) or float (dx)
struct ChannelPartsOf {
  static constexpr int kMax = 4;
  T* part[kMax] = {};
  int64_t width[kMax] = {};
  int n = 0;
  int64_t total = 0;  // the concatenation's channels

  ChannelPartsOf() = default;
  ChannelPartsOf(T* p, int64_t c) { add(p, c); }
  void add(T* p, int64_t c) {
    DD_CHECK(n < kMax, "ChannelParts: at most ", kMax, " parts");
    part[n] = p, width[n] = c, ++n, total += c;
  }
  // One part read as it is: a run of pixels is one contiguous block.
  bool plain() const { return n == 1 && !up_w && !un_w; }

  // Read as nearest-2x upsampled to an H x W map (H, W even; the U-Net's Upsample before its
  // conv): pixel indices then count the upsampled map's pixels, and the parts hold the
  // (H/2) x (W/2) source, so the upsampled tensor is never built either. Inputs only.
  int64_t up_h = 0, up_w = 0;
  void upsampled(int64_t h, int64_t w) { up_h = h, up_w = w; }

  // Read as pixel_unshuffle'd to an h x w map of 4C channels (the U-Net's Downsample rearrange
  // before its 1x1 conv; kernels/pixel_unshuffle.h's order, y[b, i, j, 4c + 2p + q] =
  // x[b, 2i + p, 2j + q, c]): one part [B, 2h, 2w, C]; pixel indices count the h x w map. Each
  // unshuffled pixel has its own four source pixels, so scatter (dx) is a permutation too.
  int64_t un_h = 0, un_w = 0;
  void unshuffled(int64_t h, int64_t w) {
    DD_CHECK(n == 1, "ChannelParts: pixel_unshuffle reads one part");
    un_h = h, un_w = w, total = 4 * width[0];
  }

  // dst[i * total + ...] = the concatenation's pixels [pixel, pixel + count).
  void gather(int64_t pixel, int64_t count, float* dst) const {
    if (un_w) {
      for (int64_t q = pixel; q < pixel + count; ++q, dst += total) unshuffle_pixel<false>(q, dst);
      return;
    }
    if (up_w) {
      for (int64_t q = pixel; q < pixel + count; ++q) {
        const int64_t r = q / up_w, b = r / up_h;  // q = (b * up_h + ih) * up_w + iw
        copy_pixel(((b * (up_h / 2) + (r % up_h) / 2) * (up_w / 2) + (q % up_w) / 2), dst);
        dst += total;
      }
      return;
    }
    if (n == 1) {
      std::memcpy(dst, part[0] + pixel * total, static_cast<std::size_t>(count * total) * sizeof(float));
      return;
    }
    for (int64_t i = pixel; i < pixel + count; ++i, dst += total) copy_pixel(i, dst);
  }
  // The concatenation's pixels [pixel, pixel + count) = src[i * total + ...] (T = float only).
  void scatter(const float* src, int64_t pixel, int64_t count) const {
    DD_CHECK(!up_w, "ChannelParts: an upsampled view is read only");
    if (un_w) {
      for (int64_t q = pixel; q < pixel + count; ++q, src += total) unshuffle_pixel<true>(q, src);
      return;
    }
    if (n == 1) {
      std::memcpy(part[0] + pixel * total, src, static_cast<std::size_t>(count * total) * sizeof(float));
      return;
    }
    for (int64_t i = pixel; i < pixel + count; ++i)
      for (int k = 0; k < n; ++k) {
        std::memcpy(part[k] + i * width[k], src, static_cast<std::size_t>(width[k]) * sizeof(float));
        src += width[k];
      }
  }

 private:
  // Unshuffled pixel q <-> v[4c + 2p + r] (to_parts: v into the parts, else out of them).
  template <bool to_parts>
  void unshuffle_pixel(int64_t q, std::conditional_t<to_parts, const float*, float*> v) const {
    const int64_t c_n = width[0], j = q % un_w, r = q / un_w, i = r % un_h, b = r / un_h;
    for (int p = 0; p < 2; ++p)
      for (int s = 0; s < 2; ++s) {
        T* px = part[0] + ((b * 2 * un_h + 2 * i + p) * 2 * un_w + 2 * j + s) * c_n;
        for (int64_t c = 0; c < c_n; ++c) {
          if constexpr (to_parts)
            px[c] = v[4 * c + 2 * p + s];
          else
            v[4 * c + 2 * p + s] = px[c];
        }
      }
  }

  void copy_pixel(int64_t i, float* dst) const {
    for (int k = 0; k < n; ++k) {
      std::memcpy(dst, part[k] + i * width[k], static_cast<std::size_t>(width[k]) * sizeof(float));
      dst += width[k];
    }
  }
};

// Room for up to `rows` rows of a row-major [*, width] matrix, rows r0.. of which are placed
// (at(r0)) where they would sit in a tensor of it: engine tensors start 64-byte aligned, and
// Eigen's small products (coefficient-based below ~20 rows + columns + depth) vectorise according
// to the destination's alignment, so a chunk computed here has the bits it has computed in place.
class RowBuffer {
 public:
  RowBuffer(int64_t rows, int64_t width)
      : width_(width), p_(static_cast<float*>(std::aligned_alloc(64, bytes(rows, width)))) {
    DD_CHECK(p_, "RowBuffer: out of memory for ", rows, " x ", width, " floats");
  }
  float* at(int64_t r0) const { return p_.get() + (r0 * width_) % kLane; }

 private:
  static constexpr int64_t kLane = 16;  // floats per 64 bytes
  static std::size_t bytes(int64_t rows, int64_t width) {
    return static_cast<std::size_t>((rows * width + kLane + kLane - 1) / kLane * kLane) * sizeof(float);
  }
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  int64_t width_;
  std::unique_ptr<float, Free> p_;
};

using ChannelParts = ChannelPartsOf<const float>;
using ChannelPartsOut = ChannelPartsOf<float>;

}  // namespace dd::kernels::cpu
