// Which path a CPU 3x3/p1 convolution takes: the process-wide override, DD_CPU_CONV3X3, and the
// per-shape rules measured on this project's 2-core machine (kernels/cpu/conv2d_winograd.h).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "engine/error.h"
#include "kernels/cpu/conv2d_winograd.h"

namespace dd::kernels::cpu {

namespace {
std::atomic<int> g_algo{static_cast<int>(Conv3x3Algo::Auto)};

Conv3x3Algo env_algo() {
  static const Conv3x3Algo algo = [] {
    const char* v = std::getenv("DD_CPU_CONV3X3");
    const std::string s = v ? v : "auto";
    if (s == "im2col") return Conv3x3Algo::Im2col;
    if (s == "winograd") return Conv3x3Algo::Winograd;
    if (s == "winograd4") return Conv3x3Algo::Winograd4;
    DD_CHECK(s == "auto" || s.empty(), "DD_CPU_CONV3X3='", s, "' must be im2col, winograd, winograd4 or auto");
    return Conv3x3Algo::Auto;
  }();
  return algo;
}

// The override, then the environment, as a tile (0 = im2col, 2, 4); -1 when both are Auto.
int forced_tile() {
  Conv3x3Algo algo = conv3x3_algo();
  if (algo == Conv3x3Algo::Auto) algo = env_algo();
  switch (algo) {
    case Conv3x3Algo::Im2col: return 0;
    case Conv3x3Algo::Winograd: return 2;
    case Conv3x3Algo::Winograd4: return 4;
    case Conv3x3Algo::Auto: break;
  }
  return -1;
}
}  // namespace

void set_conv3x3_algo(Conv3x3Algo algo) { g_algo.store(static_cast<int>(algo)); }
Conv3x3Algo conv3x3_algo() { return static_cast<Conv3x3Algo>(g_algo.load()); }

// Measured 2026-11-27 on this project's 2-core Xeon (AVX-512, native build), shared with another
// engineer's builds, so one thread (OMP_NUM_THREADS=1, 15 repeats, median; with two threads the
// other jobs' time slices swamped the difference):
//   OMP_NUM_THREADS=1 bench_conv2d --cpu --preset fmnist|cifar --only "k3 p1" --repeats 15   (batch 8)
// ms, im2col / Winograd, fwd and bwd-data:
//   fmnist 28x28  32->32   1.33/0.855  1.32/0.814    cifar 32x32  64->64   5.52/3.26  5.27/3.24
//          28x28  64->32   2.88/1.83   2.07/1.30           32x32 128->64  18.1/12.5  21.0/12.7
//          14x14  32->32  0.359/0.231 0.368/0.210          16x16  64->64   1.29/0.803 1.29/0.757
//          14x14  64->64   1.02/0.704 0.976/0.675          16x16 128->128  8.61/4.14  6.61/3.93
//          14x14  96->64   1.66/1.09   1.36/0.947          16x16 192->128  10.1/9.47  10.8/9.19
//          14x14 128->64   2.12/1.45   1.83/1.31           16x16 256->128  11.1/7.01  8.99/6.34
//           7x7   64->64  0.288/0.301 0.266/0.250           8x8 128->128  1.33/1.08  1.21/1.01
//           7x7   64->128 0.490/0.549 0.505/0.463           8x8 256->256  5.62/4.89  5.17/4.52
//           7x7  128->128  1.04/1.03  0.943/0.911           8x8 384->256  10.7/7.05  7.46/6.52
//           7x7  192->128  1.55/1.62   1.37/1.45            8x8 512->256  12.4/9.13  14.6/8.60
//                                                           4x4 256->256  1.37/1.32  1.30/1.29
//                                                           4x4 256->512  2.98/3.13  2.64/4.17
//                                                           4x4 512->512  6.13/5.54  5.25/5.32
//                                                           4x4 768->512  13.2/10.1  7.46/10.3
// and the CPU demo preset (bench_conv2d ... --preset fmnist --dim 16, same settings, two runs):
//   28x28 16->16  0.573/0.461 0.663/0.471 | 0.661/0.491 0.752/0.483
//   14x14 16->16  0.186/0.140 0.181/0.133 | 0.167/0.145 0.199/0.139
//   28x28 32->16  1.11/0.618  0.926/0.552 | 1.31/0.986  1.07/0.706
//    7x7  32->32 0.0958/0.146 0.0927/0.128 | 0.112/0.146 0.119/0.128
//    7x7  64->64  0.345/0.465 0.487/0.314 | 0.362/0.362 0.346/0.353
// Winograd wins 1.1-2x from 8x8 maps up; at 7x7 and 4x4 the two are within noise or im2col wins
// (a 4x4 map is 4 tiles per image, so the weight transform, 16 (ci, co) planes, is not amortised;
// 7x7 computes 8x8 and drops a row and a column). So, F(2x2) alone: maps of 64 pixels or more. Below 16
// channels nothing was measured (the presets' 3x3 convs have 16 and more); those stay on im2col.
//
// F(4x4, 3x3), measured 2026-11-28 on the same machine (2-core AMD EPYC, AVX-512) the same way
// (OMP_NUM_THREADS=1, batch 8, --repeats 5), ms, im2col / F(2x2) / F(4x4), fwd and bwd-data:
//   cifar 32x32  64->64   7.37/4.82/3.07   7.74/4.96/2.90    16x16  64->64  1.82/1.07/0.846 1.89/1.06/0.799
//         32x32 128->64   15.0/8.01/5.13   15.4/7.99/4.96     8x8 128->128  1.99/1.28/0.947 1.94/1.21/0.913
//         16x16 128->128  7.61/4.09/3.33   7.45/4.18/3.13     8x8 256->256  7.73/5.52/3.85  7.28/4.62/3.77
//         16x16 256->128  16.2/8.26/6.10   14.3/7.38/5.58     8x8 512->256  16.1/13.7/10.1  15.0/9.65/9.66
//          4x4 256->256   1.92/1.45/2.19   1.81/1.30/2.53     4x4 768->512  14.8/14.3/43.8  12.8/12.0/40.4
//   fmnist 28x28 32->32   1.83/1.03/0.677  1.99/1.02/0.666   14x14 32->32  0.434/0.272/0.363 0.467/0.255/0.255
//          28x28 64->32   3.49/1.81/1.32   3.10/1.61/1.05    14x14 128->64 2.88/1.52/1.75   2.90/1.50/1.78
//           7x7 128->128  1.51/1.27/0.918  1.48/1.20/0.867   14x14 64->64  1.39/0.796/0.776 1.42/0.836/0.757
//   dim 16 28x28 16->16   0.477/0.324/0.204 0.522/0.317/0.193  7x7 32->32 0.113/0.107/0.0824 0.118/0.102/0.0784
// F(4x4) does 2.25 products per output and (ci, co) against F(2x2)'s 4, and wins 1.2-1.7x from 8x8
// maps up, and at 7x7 (an 8x8 tile set, as F(2x2) computes there too). At 14x14 it computes 16x16
// where F(2x2) fits exactly, and the two tie or F(2x2) wins; at 4x4 one tile per image leaves the
// weight transform (36 (ci, co) planes) unamortised and it loses. So: F(4x4) on maps of 49 pixels or
// more, except where F(2x2) tiles the map exactly and F(4x4) does not.
// The 4x4 maps again at the bench's training batch, 16, on 2 threads (bench_conv2d --cpu --batch 16
// --repeats 3), ms, im2col / F(2x2) / F(4x4): 512->512 9.44/7.70/12.0 8.57/7.26/10.5, 768->512
// 15.2/14.5/19.1 12.8/11.2/15.9, 256->256 2.27/3.16/3.96 2.30/2.96/3.51. At batch 8 on one thread
// (above) 512->512 was a tie, 768->512 F(2x2)'s. So F(2x2) from 512 channels on 4x4 maps.
// A call needs two chunks of kMinTiles (conv2d_winograd.cpp) to keep both cores busy: the sampler's
// 4 images have 16 F(4x4) tiles at 8x8 and 16 F(2x2) tiles at 4x4, one chunk each, and its step took
// 151-159 ms against 128-133 before F(4x4) (bench_train_step --cpu --sample --images 4, alternating
// binaries; at 16 images it was 261-274 against 315-322). Below 32 tiles a call takes the next path
// down. The threshold counts tiles, never threads, so the bits stay independent of the thread count.
int winograd_tile_rule(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout) {
  constexpr int64_t kMinCallTiles = 32;
  auto tiles = [&](int64_t m) { return b * ((h + m - 1) / m) * ((w + m - 1) / m); };
  if (std::min(cin, cout) < 16) return 0;
  if (h * w < 49) return h * w >= 16 && std::min(cin, cout) >= 512 && tiles(2) >= kMinCallTiles ? 2 : 0;
  const bool f2_exact = h % 2 == 0 && w % 2 == 0, f4_exact = h % 4 == 0 && w % 4 == 0;
  if (!(f2_exact && !f4_exact) && tiles(4) >= kMinCallTiles) return 4;
  return h * w >= 64 && tiles(2) >= kMinCallTiles ? 2 : 0;
}

int use_winograd(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout) {
  const int forced = forced_tile();
  return forced >= 0 ? forced : winograd_tile_rule(b, h, w, cin, cout);
}

// The weight gradient's rule, measured 2026-11-27 on the same machine the same way (one thread,
// batch 8, `DD_CPU_CONV3X3=im2col|winograd bench_conv2d --cpu --only "k3 p1" --repeats 5`, two
// alternating runs each), GFLOP/s of the direct conv's FLOPs, im2col / Winograd:
//   cifar  32x32 64->64 74-76/103-114   16x16 64->64 75-76/87-96    8x8 128->128 69-81/111-150
//          4x4 256->256 72-74/99-143    4x4 512->512 73-89/98-110   8x8 512->256 53-54/116-134
//          16x16 256->128 80-86/106-144 32x32 128->64 84-102/114-133
//   fmnist 28x28 32->32 58-62/68-80     14x14 64->64 72-85/101-124  7x7 64->64 54-72/68-69
//          7x7 64->128 76-93/71-82      7x7 128->128 85-95/91-94
//   dim 16 28x28 16->16 62/41           14x14 16->16 57/42          7x7 32->32 66/46
// Winograd wins from 32 channels on maps of 64 pixels or more, and on the 4x4 maps from 256
// channels; 16-channel convs and the 7x7 maps (a quarter of each 8x8 tile set dropped) are
// im2col's. Unlike the forward's rule, 4x4 maps qualify: the weight transform runs once per call
// on the summed dU, not per tile.
//
// F(4x4) for the weight gradient, measured 2026-11-28 as the forward's table above, ms, im2col /
// F(2x2) / F(4x4) (a build ran beside these; the ratios are far outside its noise):
//   cifar 32x32  64->64  8.39/5.24/3.11    16x16  64->64  2.04/1.44/0.772   8x8 128->128 2.20/1.11/0.858
//         32x32 128->64  16.4/9.20/6.63    16x16 256->128 16.2/10.2/6.67    8x8 512->256 19.8/10.9/9.38
//          4x4 256->256  2.02/1.39/2.32     4x4 512->512  10.1/8.45/14.7    4x4 768->512 16.5/9.94/49.4
//   fmnist 28x28 32->32  1.76/1.11/0.866   14x14  32->32  0.460/0.312/0.353  7x7 128->128 1.54/1.07/0.856
//          14x14 64->64  1.60/0.938/0.745  14x14 128->64  2.97/1.61/1.50
//   dim 16 28x28 16->16  0.562/0.382/0.294 14x14  16->16  0.150/0.101/0.103  7x7 32->32 0.141/0.123/0.0789
//          14x14 48->32  0.649/0.418/0.508
// The forward's rule fits (F(4x4) from 7x7 maps up but at 14x14, where F(2x2) ties or wins), from
// 16 channels: the older rule's im2col at 16 channels and 7x7 maps is now slower than either
// Winograd. The 4x4 maps keep the older rule.
int winograd_dw_tile_rule(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout) {
  const int64_t c = std::min(cin, cout);
  if (h * w >= 49) return winograd_tile_rule(b, h, w, cin, cout);
  return c >= 256 && h * w >= 16 ? 2 : 0;
}

int use_winograd_dw(int64_t b, int64_t h, int64_t w, int64_t cin, int64_t cout) {
  const int forced = forced_tile();
  return forced >= 0 ? forced : winograd_dw_tile_rule(b, h, w, cin, cout);
}

}  // namespace dd::kernels::cpu
