// The strided / asymmetrically padded / rectangular conv (kernels/conv2d.h, Conv2dGeometry): diffusers'
// Downsample2D (padding 0: F.pad(0, 1, 0, 1) then a 3x3 stride-2 conv) and its neighbours, and
// Inception-v3's kernels (1x7, 7x1, 1x3, 3x1, 5x5 pad 2, 3x3 stride 2 pad 0), against the float64
// reference, by central differences, and through the autograd op.
#include <catch2/catch.hpp>

#include <omp.h>

#include "autograd/conv2d.h"
#include "autograd/elementwise.h"
#include "engine/error.h"
#include "kernels/conv2d.h"
#include "tests/reference/conv2d_strided.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;
using ref::StridedConvDims;

namespace {
std::string dims_str(const StridedConvDims& d, bool bias) {
  return str_cat("B", d.b, " ", d.h, "x", d.w, " Ci", d.ci, " Co", d.co, " K", d.kh, "x", d.kw, " s", d.s, " pad t",
                 d.pt, " l", d.pl, " b", d.pb, " r", d.pr, bias ? " bias" : " no-bias");
}
kernels::Conv2dGeometry geo_of(const StridedConvDims& d) {
  return {static_cast<int>(d.s), static_cast<int>(d.pt), static_cast<int>(d.pl), static_cast<int>(d.pb),
          static_cast<int>(d.pr)};
}
// Fields: b, h, w, ci, co, kh, kw, s, pad top, left, bottom, right. The last entry of each list is
// too large for the gradcheck and runs the forward only.
const std::vector<StridedConvDims> kShapes = {
    {1, 4, 4, 3, 2, 3, 3, 2, 0, 0, 1, 1},   // diffusers' Downsample2D(padding=0)
    {2, 5, 7, 3, 4, 3, 3, 2, 0, 0, 1, 1},   // odd sides: the last row/column is never read
    {2, 6, 6, 5, 3, 3, 3, 2, 1, 1, 1, 1},   // Downsample2D(padding=1)
    {1, 7, 5, 2, 3, 3, 3, 3, 2, 0, 1, 2},   // stride 3, every side different
    {2, 4, 5, 3, 2, 1, 1, 2, 0, 0, 0, 0},   // 1x1 stride 2
    {1, 5, 5, 4, 2, 3, 3, 1, 0, 0, 1, 1},   // stride 1, asymmetric padding
    {1, 9, 8, 33, 70, 3, 3, 2, 0, 0, 1, 1}, // channels past one GEMM tile
};
// Inception-v3's kernels (pytorch-fid's FIDInceptionA..E, Mixed_6a/7a, Conv2d_1a..4a) on odd sizes.
const std::vector<StridedConvDims> kInceptionShapes = {
    {2, 5, 9, 3, 4, 1, 7, 1, 0, 3, 0, 3},    // 1x7, padding (0, 3)
    {1, 9, 5, 5, 3, 7, 1, 1, 3, 0, 3, 0},    // 7x1, padding (3, 0)
    {2, 6, 7, 3, 5, 1, 3, 1, 0, 1, 0, 1},    // 1x3, padding (0, 1)
    {1, 7, 6, 5, 3, 3, 1, 1, 1, 0, 1, 0},    // 3x1, padding (1, 0)
    {1, 7, 9, 3, 5, 5, 5, 1, 2, 2, 2, 2},    // 5x5, padding 2 (a plain geometry: the stride-1 path)
    {2, 9, 11, 3, 4, 3, 3, 2, 0, 0, 0, 0},   // 3x3, stride 2, padding 0
    {1, 8, 7, 3, 2, 3, 1, 2, 1, 0, 0, 0},    // 3x1, stride 2, uneven padding
    {1, 6, 5, 2, 3, 2, 3, 1, 0, 0, 0, 0},    // 2x3, no padding: plain geometry, non-square kernel
    {1, 5, 13, 37, 70, 1, 7, 1, 0, 3, 0, 3}, // 1x7 with channels past one GEMM tile
};
std::vector<StridedConvDims> all_shapes() {
  std::vector<StridedConvDims> v = kShapes;
  v.insert(v.end(), kInceptionShapes.begin(), kInceptionShapes.end());
  return v;
}
std::vector<StridedConvDims> gradcheck_shapes() {
  std::vector<StridedConvDims> v(kShapes.begin(), kShapes.end() - 1);
  v.insert(v.end(), kInceptionShapes.begin(), kInceptionShapes.end() - 1);
  return v;
}
}  // namespace

TEST_CASE("strided conv2d forward matches the float64 reference", "[conv2d][strided]") {
  DD_TEST_RANDOM(rng);
  for (const StridedConvDims& d : all_shapes())
    for (bool with_bias : {true, false}) {
      std::vector<double> x = rng.normal_f32(d.x_numel()), w = rng.normal_f32(d.w_numel(), 0.5);
      std::vector<double> b = with_bias ? rng.normal_f32(d.co) : std::vector<double>{};
      Tensor y = kernels::conv2d_forward(from_double({d.b, d.h, d.w, d.ci}, x), from_double({d.co, d.kh, d.kw, d.ci}, w),
                                         with_bias ? from_double({d.co}, b) : Tensor(), geo_of(d));
      REQUIRE(y.shape() == Shape{d.b, d.ho(), d.wo(), d.co});
      // fp32 dot products of <= 300 terms vs float64 (rounding ~ sqrt(300) * 6e-8 of the terms' size): 1e-5 of the
      // output's scale.
      expect_close("strided conv2d " + dims_str(d, with_bias), y, ref::conv2d_strided(d, x, w, b), 1e-5);
    }
}

TEST_CASE("strided conv2d gradcheck of x, w and bias", "[conv2d][strided]") {
  DD_TEST_RANDOM(rng);
  for (const StridedConvDims& d : gradcheck_shapes())
    for (bool with_bias : {true, false}) {
      std::vector<double> x = rng.normal_f32(d.x_numel()), w = rng.normal_f32(d.w_numel(), 0.5);
      std::vector<double> b = with_bias ? rng.normal_f32(d.co) : std::vector<double>{};
      std::vector<double> dy = rng.normal_f32(d.y_numel());
      kernels::Conv2dGrads g = kernels::conv2d_backward(
          from_double({d.b, d.h, d.w, d.ci}, x), from_double({d.co, d.kh, d.kw, d.ci}, w),
          from_double({d.b, d.ho(), d.wo(), d.co}, dy), geo_of(d), true, true, with_bias);
      CHECK(g.dbias.defined() == with_bias);
      auto f = [&](const std::vector<std::vector<double>>& v) { return ref::conv2d_strided(d, v[0], v[1], v[2]); };
      // fp32 sums of <= 100 products (dw: B*Ho*Wo <= 99 pixels; dx: KH*KW*Co <= 75 taps) vs float64 central
      // differences: 1e-5 of the gradient's scale.
      gradcheck("strided conv2d " + dims_str(d, with_bias), f, {x, w, b}, dy,
                {g.dx.to_vector(), g.dw.to_vector(), with_bias ? g.dbias.to_vector() : std::vector<float>{}}, 1e-5);
    }
}

TEST_CASE("strided conv2d is bitwise deterministic for any thread count and plain geometry takes the old path",
          "[conv2d][strided]") {
  DD_TEST_RANDOM(rng);
  const StridedConvDims d{4, 16, 16, 16, 24, 3, 3, 2, 0, 0, 1, 1};
  Tensor x = from_double({d.b, d.h, d.w, d.ci}, rng.normal_f32(d.x_numel()));
  Tensor w = from_double({d.co, d.kh, d.kw, d.ci}, rng.normal_f32(d.w_numel(), 0.5));
  Tensor dy = from_double({d.b, d.ho(), d.wo(), d.co}, rng.normal_f32(d.y_numel()));
  kernels::Conv2dGrads a = kernels::conv2d_backward(x, w, dy, geo_of(d), true, true, true);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  kernels::Conv2dGrads s = kernels::conv2d_backward(x, w, dy, geo_of(d), true, true, true);
  Tensor ys = kernels::conv2d_forward(x, w, Tensor(), geo_of(d));
  omp_set_num_threads(threads);
  CHECK(s.dx.to_vector() == a.dx.to_vector());
  CHECK(s.dw.to_vector() == a.dw.to_vector());
  CHECK(s.dbias.to_vector() == a.dbias.to_vector());
  CHECK(ys.to_vector() == kernels::conv2d_forward(x, w, Tensor(), geo_of(d)).to_vector());
  // Stride 1 with equal padding is the existing op, bit for bit.
  Tensor y1 = kernels::conv2d_forward(x, w, Tensor(), kernels::Conv2dGeometry{1, 1, 1, 1, 1});
  CHECK(y1.to_vector() == kernels::conv2d_forward(x, w, Tensor(), 1).to_vector());
  // Errors name the geometry.
  CHECK_THROWS_WITH(kernels::conv2d_forward(x, w, Tensor(), kernels::Conv2dGeometry{0, 0, 0, 1, 1}),
                    Catch::Contains("stride 0"));
  CHECK_THROWS_WITH(kernels::conv2d_forward(x, w, Tensor(), kernels::Conv2dGeometry{2, -1, 0, 1, 1}),
                    Catch::Contains("must be >= 0"));
}

TEST_CASE("ag::conv2d with a geometry backpropagates the kernel's gradients", "[conv2d][strided][autograd]") {
  DD_TEST_RANDOM(rng);
  const StridedConvDims d{2, 5, 7, 3, 4, 3, 3, 2, 0, 0, 1, 1};
  ag::Var x(from_double({d.b, d.h, d.w, d.ci}, rng.normal_f32(d.x_numel())), true);
  ag::Var w(from_double({d.co, d.kh, d.kw, d.ci}, rng.normal_f32(d.w_numel(), 0.5)), true);
  ag::Var b(from_double({d.co}, rng.normal_f32(d.co)), true);
  Tensor dy = from_double({d.b, d.ho(), d.wo(), d.co}, rng.normal_f32(d.y_numel()));
  ag::Var y = ag::conv2d(x, w, b, geo_of(d));
  ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(dy))));
  kernels::Conv2dGrads g = kernels::conv2d_backward(x.value(), w.value(), dy, geo_of(d), true, true, true);
  CHECK(x.grad().to_vector() == g.dx.to_vector());
  CHECK(w.grad().to_vector() == g.dw.to_vector());
  CHECK(b.grad().to_vector() == g.dbias.to_vector());
  ag::Tape::current().clear();
}

TEST_CASE("rectangular kernels: a plain geometry takes the strided kernels, bitwise for any thread count",
          "[conv2d][strided]") {
  DD_TEST_RANDOM(rng);
  // 1x7 and 7x1 with padding 0 on every side are plain geometries, which the stride-1 kernels would
  // take for a square w; a non-square one must reach the strided kernels (they throw on it).
  for (const StridedConvDims& d : {StridedConvDims{3, 9, 17, 8, 12, 1, 7, 1, 0, 0, 0, 0},
                                   StridedConvDims{3, 17, 9, 8, 12, 7, 1, 1, 0, 0, 0, 0}}) {
    INFO(dims_str(d, true));
    const std::vector<double> xv = rng.normal_f32(d.x_numel()), wv = rng.normal_f32(d.w_numel(), 0.5);
    const std::vector<double> bv = rng.normal_f32(d.co);
    const Tensor x = from_double({d.b, d.h, d.w, d.ci}, xv), w = from_double({d.co, d.kh, d.kw, d.ci}, wv);
    const Tensor b = from_double({d.co}, bv), dy = from_double({d.b, d.ho(), d.wo(), d.co}, rng.normal_f32(d.y_numel()));
    CHECK_FALSE(kernels::conv2d_uses_plain_path(w, geo_of(d)));
    const Tensor y = kernels::conv2d_forward(x, w, b, geo_of(d));
    // 57 products per output vs float64: 1e-5 of the output's scale.
    expect_close("forward", y, ref::conv2d_strided(d, xv, wv, bv), 1e-5);
    const kernels::Conv2dGrads a = kernels::conv2d_backward(x, w, dy, geo_of(d), true, true, true);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const kernels::Conv2dGrads s = kernels::conv2d_backward(x, w, dy, geo_of(d), true, true, true);
    const Tensor ys = kernels::conv2d_forward(x, w, b, geo_of(d));
    omp_set_num_threads(threads);
    CHECK(ys.to_vector() == y.to_vector());
    CHECK(s.dx.to_vector() == a.dx.to_vector());
    CHECK(s.dw.to_vector() == a.dw.to_vector());
    CHECK(s.dbias.to_vector() == a.dbias.to_vector());
  }
  // A square kernel with a plain geometry keeps the stride-1 path.
  CHECK(kernels::conv2d_uses_plain_path(Tensor::zeros({2, 3, 3, 4}), kernels::Conv2dGeometry{1, 1, 1, 1, 1}));
  CHECK_FALSE(kernels::conv2d_uses_plain_path(Tensor::zeros({2, 3, 3, 4}), kernels::Conv2dGeometry{1, 0, 1, 0, 1}));
}

TEST_CASE("rectangular kernels: errors name the kernel and the shapes", "[conv2d][strided]") {
  const Tensor x = Tensor::zeros({1, 3, 8, 2});
  // 5x1 does not fit 3 rows without padding; 2 rows of padding above and below make it fit.
  CHECK_THROWS_WITH(kernels::conv2d_forward(x, Tensor::zeros({4, 5, 1, 2}), Tensor(), kernels::Conv2dGeometry{}),
                    Catch::Contains("kernel 5x1") && Catch::Contains("[4,5,1,2]") && Catch::Contains("[1,3,8,2]"));
  CHECK(kernels::conv2d_forward(x, Tensor::zeros({4, 5, 1, 2}), Tensor(), kernels::Conv2dGeometry{1, 2, 0, 2, 0})
            .shape() == Shape{1, 3, 8, 4});
  const kernels::Conv2dGeometry g{1, 0, 3, 0, 3};
  CHECK_THROWS_WITH(kernels::conv2d_backward(x, Tensor::zeros({4, 1, 7, 2}), Tensor::zeros({1, 3, 7, 4}), g, true,
                                             true, true),
                    Catch::Contains("dy [1,3,7,4]") && Catch::Contains("must be [1,3,8,4]"));
}

TEST_CASE("ag::conv2d with a rectangular kernel backpropagates the kernel's gradients",
          "[conv2d][strided][autograd]") {
  DD_TEST_RANDOM(rng);
  // Plain (1x3, no padding: the stride-1 entry would reject it) and non-plain (7x1, padding (3, 0)).
  for (const StridedConvDims& d : {StridedConvDims{2, 4, 6, 3, 5, 1, 3, 1, 0, 0, 0, 0},
                                   StridedConvDims{1, 7, 3, 2, 4, 7, 1, 1, 3, 0, 3, 0}}) {
    INFO(dims_str(d, true));
    ag::Var x(from_double({d.b, d.h, d.w, d.ci}, rng.normal_f32(d.x_numel())), true);
    ag::Var w(from_double({d.co, d.kh, d.kw, d.ci}, rng.normal_f32(d.w_numel(), 0.5)), true);
    ag::Var b(from_double({d.co}, rng.normal_f32(d.co)), true);
    Tensor dy = from_double({d.b, d.ho(), d.wo(), d.co}, rng.normal_f32(d.y_numel()));
    ag::Var y = ag::conv2d(x, w, b, geo_of(d));
    REQUIRE(y.shape() == Shape{d.b, d.ho(), d.wo(), d.co});
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(dy))));
    // d loss / d y is dy exactly, so the same kernel gives the same bits.
    kernels::Conv2dGrads g = kernels::conv2d_backward(x.value(), w.value(), dy, geo_of(d), true, true, true);
    CHECK(x.grad().to_vector() == g.dx.to_vector());
    CHECK(w.grad().to_vector() == g.dw.to_vector());
    CHECK(b.grad().to_vector() == g.dbias.to_vector());
    ag::Tape::current().clear();
  }
}
