#pragma once
// Winograd F(m x m, 3x3) for the CPU backend's 3x3, stride-1, padding-1 convolutions (Lavin & Gray
// 2015), m = 2 or 4: each m x m block of outputs is A^T [ (G g G^T) .* (B^T d B) ] A over its
// (m+2) x (m+2) input tile d, so a tile's 9 m^2 multiplications per (ci, co) become (m+2)^2
// elementwise products (16 instead of 36 for m = 2, 36 instead of 144 for m = 4), and over a chunk
// of tiles those products are (m+2)^2 independent GEMMs [tiles x Ci] x [Ci x Co]. F(4x4) does 1.78x
// fewer multiplications than F(2x2) but rounds more (its transforms have coefficients up to 8; the
// bounds are in tests/test_conv2d_winograd.cpp). kernels/cpu/conv2d.cpp chooses im2col, F(2x2) or
// F(4x4) per shape and direction (use_winograd and use_winograd_dw below).
#include <cstdint>
#include <vector>

#include "kernels/cpu/channel_parts.h"

namespace dd::kernels::cpu {

// Winograd is F(2x2, 3x3), Winograd4 F(4x4, 3x3), for all three directions.
enum class Conv3x3Algo { Auto, Im2col, Winograd, Winograd4 };

// The path 3x3/p1 convs take. Auto (the default) reads DD_CPU_CONV3X3=im2col|winograd|winograd4|auto
// from the environment, then the per-shape rule. set_conv3x3_algo overrides both for the process
// (tests, benches); Conv3x3AlgoScope restores the previous setting.
void set_conv3x3_algo(Conv3x3Algo algo);
Conv3x3Algo conv3x3_algo();
struct Conv3x3AlgoScope {
  explicit Conv3x3AlgoScope(Conv3x3Algo algo) : prev(conv3x3_algo()) { set_conv3x3_algo(algo); }
  ~Conv3x3AlgoScope() { set_conv3x3_algo(prev); }
  Conv3x3AlgoScope(const Conv3x3AlgoScope&) = delete;
  Conv3x3AlgoScope& operator=(const Conv3x3AlgoScope&) = delete;
  Conv3x3Algo prev;
};

// The per-shape rule alone (measured, see conv2d_winograd_rules.cpp): the fastest path of a 3x3/p1
// conv of a [b, h, w, cin] input to cout channels, as Winograd's output tile m: 0 = im2col, 2 =
// F(2x2, 3x3), 4 = F(4x4, 3x3).
int winograd_tile_rule(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout);
// The override, then the environment, then the rule; the same 0, 2 or 4.
int use_winograd(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout);
// The same two for the weight gradient (winograd_weight_grad3x3), whose measured rule differs.
int winograd_dw_tile_rule(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout);
int use_winograd_dw(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout);

// y [b, h, w, cout] = conv3x3, padding 1, of x [b, h, w, cin] (+ bias[cout] unless null) by
// F(tile x tile, 3x3), tile 2 or 4, with
//   flip = false: w OHWI [cout, 3, 3, cin]    (the forward)
//   flip = true:  w OHWI [cin, 3, 3, cout] rotated 180 degrees with its channels swapped: the tap
//                 (kh, kw) from input channel i to output channel o is w[i, 2-kh, 2-kw, o]. dx of a
//                 3x3/p1 conv is this conv of dy (cin = the forward's Co, cout = its Ci).
// tiles_per_chunk = 0 picks a cache-sized chunk from the shapes; tests pass small values to run the
// multi-chunk paths. Results depend only on the shapes, tile and tiles_per_chunk: bitwise the same run to
// run and for any thread count.
// sums (optional): y's per-(image, channel) sums and sums of squares (conv2d_forward_sums' layout),
// each tile's taken from its output transform while in cache.
// x (cin = x.total channels) and y may be given in channel parts (kernels/cpu/channel_parts.h):
// tiles are gathered from x's parts, output rows scattered into y's.
void winograd_conv3x3(const ChannelParts& x, int64_t b, int64_t h, int64_t w, const float* wt, int64_t cout,
                      bool flip, const float* bias, const ChannelPartsOut& y, int tile = 2,
                      int64_t tiles_per_chunk = 0, std::vector<double>* sums = nullptr);

// dw [cout, 3, 3, cin] (OHWI, overwritten) of that conv (flip = false) from x [b, h, w, cin] and
// dy [b, h, w, cout] by F(tile x tile, 3x3): the same tiles, dL/dU summed over them as (tile+2)^2
// GEMMs [cout x tiles] x [tiles x cin] ((tile+2)^2 products per tile and (ci, co) pair against
// im2col's 9 tile^2), then G^T dU G. Deterministic in the same sense as winograd_conv3x3.
// x (cin = x.total channels) may be given in channel parts.
void winograd_weight_grad3x3(const ChannelParts& x, int64_t b, int64_t h, int64_t w, const float* dy, int64_t cout,
                             float* dw, int tile = 2, int64_t tiles_per_chunk = 0);

}  // namespace dd::kernels::cpu
