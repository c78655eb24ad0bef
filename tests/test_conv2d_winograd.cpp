// Winograd F(2x2, 3x3) and F(4x4, 3x3) on the CPU backend (kernels/cpu/conv2d_winograd.cpp),
// forced through the public kernels::conv2d_forward / conv2d_backward, against float64 references.
//
// F(2x2):
// Error bound (first order in u = 2^-24, fp32 unit roundoff), for one output of a conv with
// n input channels, D = max|input|, W = max|weight|:
//   weights: G g G^T in double, rounded once: |dU| <= u|U|; |U| <= 1.5 * 1.5 * W (the rows of G
//            sum in magnitude to at most 1.5).
//   input:   B^T d B, two stages of one add each: |dV| <= 2u |B^T||d||B|, and |B^T||d||B| <= 4 D
//            (every row of B^T has two entries of magnitude 1).
//   GEMMs:   n-term dot products: |dM| <= n u sum_ci |U||V| (Higham's gamma_n, first order).
//   output:  A^T m A, two stages of two adds, then the bias add: relative 5u of |A^T||m||A|.
// The output sums 9 of the 16 products per channel with coefficients +-1 (|A^T| (x) |A| has nine
// ones for each output), so sum_xi |a_xi||U_xi||V_xi| <= 9 * 2.25 W * 4 D = 81 W D per channel,
// 9x the direct conv's 9 W D. Altogether
//   |y_winograd - y| <= (n + 8) u * 81 n W D
// (n + 1 for the weights and the GEMM, 2 for the input, 5 for the output). winograd_bound() below
// returns it; the checks use it as an absolute tolerance, divided by max|y_ref| as expect_close
// wants. It is a worst case: errors measured on random data are ~100x smaller, and a wrong
// transform (a sign, a tile offset, a dropped halo) gives errors of the order of |y| itself.
//
// F(4x4) (kernels/cpu/conv2d_winograd_f4.h), the same way:
//   weights: in double, rounded once: |dU| <= u|U|, |U_rs| <= g_r g_s W with g = the row sums of
//            |G| = (1/4, 1/2, 1/2, 7/24, 7/24, 1).
//   input:   B^T d B, two stages, each output of a stage at most two roundings deep: |dV| <= 4u
//            |B^T||d||B|, and |B^T||d||B| <= b_r b_s D with b = the row sums of |B^T| = (10, 10,
//            10, 6, 6, 10).
//   GEMMs:   n u sum_ci |U||V| as above.
//   output:  A^T m A, two stages at most three roundings deep, then the bias add: 7u relative.
// Output (i, j) sums |A^T_ir| |A^T_js| |U_rs| |V_rs| over the 36 points, at most S_i S_j W D with
// S_i = sum_r |A^T_ir| g_r b_r = (16, 17, 24, 48): 48^2 = 2304 W D per channel (F(2x2): 81).
// Altogether |y_winograd4 - y| <= (n + 12) u * 2304 n W D (winograd4_bound() below). The
// coefficients up to 8 in A^T and 5 in B^T are why F(4x4) rounds more than F(2x2); measured on
// random data the error is again far below the bound.
//
// dw (winograd_weight_grad3x3), over T tiles, with D = max|x|, E = max|dy|:
//   input:   V = B^T d B as above: |V| <= 4 D, |dV| <= 2u * 4 D.
//   dy:      Yh = A e A^T (rows of A have at most two entries of magnitude 1): |Yh| <= 4 E, two
//            stages of one add: |dYh| <= 2u * 4 E.
//   GEMMs:   dU[xi] = sum over the T tiles of Yh V: |d dU| <= (T + 4) u * T * 16 E D.
//   output:  G^T dU G in double, rounded once; a tap takes at most 4 in coefficient magnitude
//            (each row of |G^T| sums to at most 2).
// Altogether |dw_winograd - dw| <= 64 (T + 5) T u E D (winograd_dw_bound() below). The sum runs
// over every pixel, so it grows with the map, unlike the forward's bound over channels.
//
// dw by F(4x4), over its T tiles (a quarter as many), the same way:
//   input:   |V_rs| <= b_r b_s D as above, |dV| <= 4u of that.
//   dy:      Yh = A e A^T; the row sums of |A| are a = (1, 4, 4, 15, 15, 1): |Yh_rs| <= a_r a_s E,
//            two stages at most three roundings deep: |dYh| <= 6u of that.
//   GEMMs:   |d dU_rs| <= (T + 10) u * T a_r a_s b_r b_s E D.
//   output:  G^T dU G in double, rounded once: tap (i, j) sums |G_ri| |G_sj| |d dU_rs|, at most
//            c_i c_j (T + 10) u T E D with c_i = sum_r |G_ri| a_r b_r = (70/3, 85/3, 160/3).
// Altogether |dw_winograd4 - dw| <= 2845 (T + 11) T u E D ((160/3)^2 < 2845, the one more u for
// the final rounding).
#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "tests/reference/conv2d.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;
using kernels::cpu::Conv3x3Algo;
using kernels::cpu::Conv3x3AlgoScope;
using ref::ConvDims;

namespace {
double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double a : v) m = std::max(m, std::fabs(a));
  return m;
}

// The bound derived at the top of this file, plus the bias (exact in double, rounded with the output).
double winograd_bound(int64_t n, double d_max, double w_max) {
  const double u = std::ldexp(1.0, -24);
  return double(n + 8) * u * 81.0 * double(n) * w_max * d_max;
}

// The F(4x4) bound derived at the top of this file.
double winograd4_bound(int64_t n, double d_max, double w_max) {
  const double u = std::ldexp(1.0, -24);
  return double(n + 12) * u * 2304.0 * double(n) * w_max * d_max;
}

// The forward's bound for Winograd's output tile (2 or 4).
double winograd_tile_bound(int tile, int64_t n, double d_max, double w_max) {
  return tile == 4 ? winograd4_bound(n, d_max, w_max) : winograd_bound(n, d_max, w_max);
}

Conv3x3Algo algo_of_tile(int tile) { return tile == 4 ? Conv3x3Algo::Winograd4 : Conv3x3Algo::Winograd; }

// The dw bounds derived at the top of this file, for T tiles of F(tile x tile).
double winograd_dw_bound(int tile, const ConvDims& d, double x_max, double dy_max) {
  const double u = std::ldexp(1.0, -24);
  const double tiles = double(d.b) * double((d.h + tile - 1) / tile) * double((d.w + tile - 1) / tile);
  if (tile == 4) return 2845.0 * (tiles + 11.0) * tiles * u * dy_max * x_max;
  return 64.0 * (tiles + 5.0) * tiles * u * dy_max * x_max;
}

// expect_close judges max|a - e| / max(max|e|, floor): the absolute bound over the output's scale.
double rel_tol(double bound, const std::vector<double>& expected) { return bound / std::max(max_abs(expected), 1e-6); }

// Calls f(yi, xi, wi) for every product y[yi] ~ x[xi] w[wi] of the 3x3/p1 conv (flat NHWC / OHWI
// indices; taps that fall in the padding skipped): the adjoints below written out in float64,
// independent of the rotated-kernel and Winograd identities the kernels use.
template <class F>
void each_product(const ConvDims& d, F f) {
  for (int64_t b = 0; b < d.b; ++b)
    for (int64_t oh = 0; oh < d.h; ++oh)
      for (int64_t ow = 0; ow < d.w; ++ow)
        for (int64_t kh = 0; kh < 3; ++kh)
          for (int64_t kw = 0; kw < 3; ++kw) {
            const int64_t ih = oh + kh - 1, iw = ow + kw - 1;
            if (ih < 0 || ih >= d.h || iw < 0 || iw >= d.w) continue;
            for (int64_t o = 0; o < d.co; ++o)
              for (int64_t c = 0; c < d.ci; ++c)
                f(static_cast<std::size_t>(((b * d.h + oh) * d.w + ow) * d.co + o),
                  static_cast<std::size_t>(((b * d.h + ih) * d.w + iw) * d.ci + c),
                  static_cast<std::size_t>(((o * 3 + kh) * 3 + kw) * d.ci + c));
          }
}

// dx[b,ih,iw,ci] = sum_{kh,kw,co} dy[b, ih+1-kh, iw+1-kw, co] w[co,kh,kw,ci].
std::vector<double> ref_dx(const ConvDims& d, const std::vector<double>& dy, const std::vector<double>& w) {
  std::vector<double> dx(static_cast<std::size_t>(d.x_numel()), 0.0);
  each_product(d, [&](std::size_t yi, std::size_t xi, std::size_t wi) { dx[xi] += dy[yi] * w[wi]; });
  return dx;
}

// dw[o,kh,kw,c] = sum_{b,oh,ow} dy[b, oh, ow, o] x[b, oh+kh-1, ow+kw-1, c].
std::vector<double> ref_dw(const ConvDims& d, const std::vector<double>& x, const std::vector<double>& dy) {
  std::vector<double> dw(static_cast<std::size_t>(d.w_numel()), 0.0);
  each_product(d, [&](std::size_t yi, std::size_t xi, std::size_t wi) { dw[wi] += dy[yi] * x[xi]; });
  return dw;
}

std::string name_of(const ConvDims& d, int64_t chunk) {
  return str_cat("B", d.b, " ", d.h, "x", d.w, " Ci", d.ci, " Co", d.co, " tiles_per_chunk ", chunk);
}

// Odd and even maps, 1x1 and 2x2 maps, batch 1 and 3, channel counts that are not multiples of
// the 8- or 16-float vector width (and some that are).
const std::vector<ConvDims> kShapes = {
    {1, 1, 1, 5, 3, 3, 1},    {3, 2, 2, 7, 9, 3, 1},  {1, 5, 7, 3, 2, 3, 1},    {3, 6, 4, 17, 11, 3, 1},
    {1, 13, 11, 33, 19, 3, 1}, {3, 8, 9, 1, 1, 3, 1},  {3, 7, 7, 16, 32, 3, 1}, {1, 1, 6, 9, 4, 3, 1},
    {1, 4, 4, 40, 24, 3, 1},   {2, 12, 8, 20, 17, 3, 1},
    // More than one 32-channel GEMM panel and weight block, with tails (sgemm_small.h's packing).
    {1, 5, 6, 37, 70, 3, 1}};
}  // namespace

TEST_CASE("winograd conv2d forward, dx and dw match the float64 reference within the derived bounds",
          "[conv2d][winograd]") {
  DD_TEST_RANDOM(rng);
  for (int tile : {2, 4}) {
    Conv3x3AlgoScope force(algo_of_tile(tile));
    for (const ConvDims& d : kShapes)
      for (int64_t chunk : {int64_t{0}, int64_t{1}, int64_t{3}})
        for (bool with_bias : {true, false}) {
          const std::vector<double> x = rng.normal_f32(d.x_numel()), w = rng.normal_f32(d.w_numel(), 0.5);
          const std::vector<double> bias = with_bias ? rng.normal_f32(d.co) : std::vector<double>{};
          const std::vector<double> dy = rng.normal_f32(d.y_numel());
          const Tensor xt = from_double({d.b, d.h, d.w, d.ci}, x), wt = from_double({d.co, 3, 3, d.ci}, w);
          const Tensor bt = with_bias ? from_double({d.co}, bias) : Tensor();
          const Tensor dyt = from_double({d.b, d.h, d.w, d.co}, dy);
          const std::string what = str_cat("F", tile, " ", name_of(d, chunk), with_bias ? " bias" : "");
          const std::vector<double> y_ref = ref::conv2d(d, x, w, bias);
          // n = Ci input channels; the bias is added exactly in double by the reference.
          const double fwd_bound = winograd_tile_bound(tile, d.ci, max_abs(x), max_abs(w));
          expect_close("winograd forward " + what, kernels::cpu::conv2d_forward(xt, wt, bt, 1, chunk), y_ref,
                       rel_tol(fwd_bound, y_ref));
          const std::vector<double> dx_ref = ref_dx(d, dy, w);
          // dx is the 3x3/p1 conv of dy (n = Co input channels) with the rotated kernel: same bound.
          const double dx_bound = winograd_tile_bound(tile, d.co, max_abs(dy), max_abs(w));
          kernels::Conv2dGrads g = kernels::cpu::conv2d_backward(xt, wt, dyt, 1, true, false, false, chunk);
          expect_close("winograd dx " + what, g.dx, dx_ref, rel_tol(dx_bound, dx_ref));
          const std::vector<double> dw_ref = ref_dw(d, x, dy);
          const double dw_bound = winograd_dw_bound(tile, d, max_abs(x), max_abs(dy));
          expect_close("winograd dw " + what,
                       kernels::cpu::conv2d_backward(xt, wt, dyt, 1, false, true, false, chunk).dw, dw_ref,
                       rel_tol(dw_bound, dw_ref));
          if (chunk == 0) {  // the dispatching entry points take the same path
            expect_close("winograd dw (dispatch) " + what,
                         kernels::conv2d_backward(xt, wt, dyt, 1, false, true, false).dw, dw_ref,
                         rel_tol(dw_bound, dw_ref));
            expect_close("winograd forward (dispatch) " + what, kernels::conv2d_forward(xt, wt, bt, 1), y_ref,
                         rel_tol(fwd_bound, y_ref));
            expect_close("winograd dx (dispatch) " + what,
                         kernels::conv2d_backward(xt, wt, dyt, 1, true, false, false).dx, dx_ref,
                         rel_tol(dx_bound, dx_ref));
          }
        }
  }
}

TEST_CASE("winograd and im2col agree, and the switch picks the path asked for", "[conv2d][winograd]") {
  DD_TEST_RANDOM(rng);
  const ConvDims d{2, 9, 10, 24, 20, 3, 1};
  const std::vector<double> x = rng.normal_f32(d.x_numel()), w = rng.normal_f32(d.w_numel(), 0.5);
  const Tensor xt = from_double({d.b, d.h, d.w, d.ci}, x), wt = from_double({d.co, 3, 3, d.ci}, w);
  auto forward = [&](Conv3x3Algo a, int expect_tile) {
    Conv3x3AlgoScope force(a);
    CHECK(kernels::cpu::use_winograd(d.b, d.h, d.w, d.ci, d.co) == expect_tile);
    return kernels::conv2d_forward(xt, wt, Tensor(), 1);
  };
  const Tensor y_i = forward(Conv3x3Algo::Im2col, 0), y_2 = forward(Conv3x3Algo::Winograd, 2),
               y_4 = forward(Conv3x3Algo::Winograd4, 4);
  const std::vector<double> y_ref = ref::conv2d(d, x, w, {});
  // Each within its Winograd bound of the reference (im2col's own is tighter still), and they
  // must differ pairwise: equal bits would mean the switch ran one path twice.
  const double tol2 = rel_tol(winograd_bound(d.ci, max_abs(x), max_abs(w)), y_ref);
  expect_close("winograd", y_2, y_ref, tol2);
  expect_close("im2col", y_i, y_ref, tol2);
  expect_close("winograd4", y_4, y_ref, rel_tol(winograd4_bound(d.ci, max_abs(x), max_abs(w)), y_ref));
  CHECK(y_2.to_vector() != y_i.to_vector());
  CHECK(y_4.to_vector() != y_i.to_vector());
  CHECK(y_4.to_vector() != y_2.to_vector());
}

TEST_CASE("the forward's rule picks im2col, F(2x2) or F(4x4) per shape, and the dispatch follows it",
          "[conv2d][winograd]") {
  using kernels::cpu::winograd_tile_rule;
  CHECK(winograd_tile_rule(8, 32, 32, 64, 64) == 4);
  CHECK(winograd_tile_rule(8, 7, 7, 64, 64) == 4);    // an 8x8 tile set either way
  CHECK(winograd_tile_rule(8, 14, 14, 64, 64) == 2);  // F(2x2) tiles it exactly, F(4x4) does not
  CHECK(winograd_tile_rule(8, 4, 4, 256, 256) == 0);  // one F(4x4) tile per image
  CHECK(winograd_tile_rule(8, 4, 4, 512, 768) == 2);
  CHECK(winograd_tile_rule(8, 32, 32, 8, 64) == 0);   // below 16 channels
  CHECK(winograd_tile_rule(4, 8, 8, 128, 128) == 2);  // 16 F(4x4) tiles: one chunk, one busy core
  CHECK(winograd_tile_rule(4, 4, 4, 512, 512) == 0);  // 16 F(2x2) tiles, likewise
  DD_TEST_RANDOM(rng);
  for (const ConvDims& d : {ConvDims{8, 8, 8, 16, 20, 3, 1}, ConvDims{2, 10, 10, 16, 20, 3, 1}}) {
    const int tile = winograd_tile_rule(d.b, d.h, d.w, d.ci, d.co);
    CHECK(tile == (d.h == 8 ? 4 : 2));
    const Tensor xt = from_double({d.b, d.h, d.w, d.ci}, rng.normal_f32(d.x_numel()));
    const Tensor wt = from_double({d.co, 3, 3, d.ci}, rng.normal_f32(d.w_numel(), 0.5));
    const Tensor dyt = from_double({d.b, d.h, d.w, d.co}, rng.normal_f32(d.y_numel()));
    auto run = [&](Conv3x3Algo a) {
      Conv3x3AlgoScope force(a);
      return std::make_pair(kernels::conv2d_forward(xt, wt, Tensor(), 1).to_vector(),
                            kernels::conv2d_backward(xt, wt, dyt, 1, true, false, false).dx.to_vector());
    };
    // dx is the conv of dy with Co -> Ci channels: the rule is symmetric in the two here.
    CHECK(winograd_tile_rule(d.b, d.h, d.w, d.co, d.ci) == tile);
    const auto by_rule = run(Conv3x3Algo::Auto), forced = run(algo_of_tile(tile)), other = run(algo_of_tile(6 - tile));
    CHECK(by_rule == forced);
    CHECK(by_rule.first != other.first);
    CHECK(by_rule.second != other.second);
  }
}

TEST_CASE("the weight gradient's rule picks its path, and the paths differ", "[conv2d][winograd]") {
  using kernels::cpu::winograd_dw_tile_rule;
  CHECK(winograd_dw_tile_rule(8, 4, 4, 256, 256) == 2);
  CHECK(winograd_dw_tile_rule(8, 4, 4, 128, 128) == 0);
  DD_TEST_RANDOM(rng);
  // 8x8: F(4x4); 10x10: F(2x2) (it tiles the map exactly, F(4x4) does not); 8x8 at 8 channels: im2col.
  for (const ConvDims& d : {ConvDims{8, 8, 8, 32, 40, 3, 1}, ConvDims{2, 10, 10, 16, 40, 3, 1},
                            ConvDims{2, 8, 8, 8, 40, 3, 1}}) {
    const int rule = winograd_dw_tile_rule(d.b, d.h, d.w, d.ci, d.co);
    CHECK(rule == (d.ci == 8 ? 0 : d.h == 8 ? 4 : 2));
    const Tensor xt = from_double({d.b, d.h, d.w, d.ci}, rng.normal_f32(d.x_numel()));
    const Tensor wt = from_double({d.co, 3, 3, d.ci}, rng.normal_f32(d.w_numel(), 0.5));
    const Tensor dyt = from_double({d.b, d.h, d.w, d.co}, rng.normal_f32(d.y_numel()));
    auto dw = [&](Conv3x3Algo a) {
      Conv3x3AlgoScope force(a);
      return kernels::conv2d_backward(xt, wt, dyt, 1, false, true, false).dw.to_vector();
    };
    const auto by_rule = dw(Conv3x3Algo::Auto), im2col = dw(Conv3x3Algo::Im2col);
    const auto f2 = dw(Conv3x3Algo::Winograd), f4 = dw(Conv3x3Algo::Winograd4);
    CHECK(f2 != im2col);
    CHECK(f4 != im2col);
    CHECK(f4 != f2);
    CHECK(by_rule == (rule == 4 ? f4 : rule == 2 ? f2 : im2col));
  }
}

TEST_CASE("winograd conv2d is bitwise deterministic for any thread count and chunking is fixed",
          "[conv2d][winograd]") {
  DD_TEST_RANDOM(rng);
  // 4*8*8 = 256 2x2 tiles over 24 + 16 channels: several default chunks (F(4x4): 64 tiles, again
  // several); a 3x4 map: a single chunk.
  const std::vector<ConvDims> shapes = {{4, 16, 15, 24, 16, 3, 1}, {1, 3, 4, 40, 36, 3, 1}};
  for (int tile : {2, 4}) {
    for (const ConvDims& d : shapes) {
      Conv3x3AlgoScope force(algo_of_tile(tile));
      const Tensor xt = from_double({d.b, d.h, d.w, d.ci}, rng.normal_f32(d.x_numel()));
      const Tensor wt = from_double({d.co, 3, 3, d.ci}, rng.normal_f32(d.w_numel(), 0.5));
      const Tensor bt = from_double({d.co}, rng.normal_f32(d.co));
      const Tensor dyt = from_double({d.b, d.h, d.w, d.co}, rng.normal_f32(d.y_numel()));
      const auto y = kernels::conv2d_forward(xt, wt, bt, 1).to_vector();
      const auto dx = kernels::conv2d_backward(xt, wt, dyt, 1, true, false, false).dx.to_vector();
      const auto dw = kernels::conv2d_backward(xt, wt, dyt, 1, false, true, false).dw.to_vector();
      CHECK(kernels::conv2d_forward(xt, wt, bt, 1).to_vector() == y);
      CHECK(kernels::conv2d_backward(xt, wt, dyt, 1, true, false, false).dx.to_vector() == dx);
      CHECK(kernels::conv2d_backward(xt, wt, dyt, 1, false, true, false).dw.to_vector() == dw);
      const int threads = omp_get_max_threads();
      for (int t : {1, 3}) {
        omp_set_num_threads(t);
        const auto y_t = kernels::conv2d_forward(xt, wt, bt, 1).to_vector();
        const auto dx_t = kernels::conv2d_backward(xt, wt, dyt, 1, true, false, false).dx.to_vector();
        const auto dw_t = kernels::conv2d_backward(xt, wt, dyt, 1, false, true, false).dw.to_vector();
        omp_set_num_threads(threads);
        CHECK(y_t == y);
        CHECK(dx_t == dx);
        CHECK(dw_t == dw);
      }
    }
  }
}

TEST_CASE("winograd conv2d gradcheck of x, w and bias (dbias stays a column sum)", "[conv2d][winograd]") {
  DD_TEST_RANDOM(rng);
  const std::vector<ConvDims> shapes = {{2, 5, 4, 3, 2, 3, 1}, {1, 3, 3, 4, 5, 3, 1}, {1, 6, 9, 2, 3, 3, 1}};
  for (int tile : {2, 4})
    for (const ConvDims& d : shapes)
      for (int64_t chunk : {int64_t{0}, int64_t{2}}) {
        Conv3x3AlgoScope force(algo_of_tile(tile));
        const std::vector<double> x = rng.normal_f32(d.x_numel()), w = rng.normal_f32(d.w_numel(), 0.5);
        const std::vector<double> bias = rng.normal_f32(d.co), dy = rng.normal_f32(d.y_numel());
        kernels::Conv2dGrads g = kernels::cpu::conv2d_backward(
            from_double({d.b, d.h, d.w, d.ci}, x), from_double({d.co, 3, 3, d.ci}, w),
            from_double({d.b, d.h, d.w, d.co}, dy), 1, true, true, true, chunk);
        auto f = [&](const std::vector<std::vector<double>>& v) { return ref::conv2d(d, v[0], v[1], v[2]); };
        // dx (Winograd): gradcheck's tol is relative to the largest numerical gradient, which is
        // ref_dx's largest element to ~1e-10; the derived bound with n = Co over that scale.
        const double dx_tol = rel_tol(winograd_tile_bound(tile, d.co, max_abs(dy), max_abs(w)), ref_dx(d, dy, w));
        gradcheck(str_cat("winograd F", tile, " conv2d dx ", name_of(d, chunk)), f, {x, w, bias}, dy,
                  {g.dx.to_vector(), {}, {}}, dx_tol);
        // dw (Winograd): the derived bound over the largest gradient, as for dx.
        const double dw_tol = rel_tol(winograd_dw_bound(tile, d, max_abs(x), max_abs(dy)), ref_dw(d, x, dy));
        gradcheck(str_cat("winograd F", tile, " conv2d dw ", name_of(d, chunk)), f, {x, w, bias}, dy,
                  {{}, g.dw.to_vector(), {}}, dw_tol);
        // dbias: fp32 column sums of <= 40 values, 1e-5 as in test_conv2d.cpp.
        gradcheck("winograd conv2d dbias " + name_of(d, chunk), f, {x, w, bias}, dy, {{}, {}, g.dbias.to_vector()},
                  1e-5);
      }
}

TEST_CASE("the conv3x3 path override nests and restores the previous setting", "[conv2d][winograd]") {
  {
    Conv3x3AlgoScope a(Conv3x3Algo::Im2col);
    CHECK(kernels::cpu::conv3x3_algo() == Conv3x3Algo::Im2col);
    {
      Conv3x3AlgoScope b(Conv3x3Algo::Winograd);
      CHECK(kernels::cpu::conv3x3_algo() == Conv3x3Algo::Winograd);
      {
        Conv3x3AlgoScope c(Conv3x3Algo::Winograd4);
        CHECK(kernels::cpu::conv3x3_algo() == Conv3x3Algo::Winograd4);
      }
      CHECK(kernels::cpu::conv3x3_algo() == Conv3x3Algo::Winograd);
    }
    CHECK(kernels::cpu::conv3x3_algo() == Conv3x3Algo::Im2col);
  }
  CHECK(kernels::cpu::conv3x3_algo() == Conv3x3Algo::Auto);
}
