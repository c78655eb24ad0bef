// The strided / asymmetrically padded conv (kernels/conv2d.h, Conv2dGeometry): diffusers'
// Downsample2D (padding 0: F.pad(0, 1, 0, 1) then a 3x3 stride-2 conv) and its neighbours,
// against the float64 reference, by central differences, and through the autograd op.
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
  return str_cat("B", d.b, " ", d.h, "x", d.w, " Ci", d.ci, " Co", d.co, " K", d.k, " s", d.s, " pad t", d.pt, " l",
                 d.pl, " b", d.pb, " r", d.pr, bias ? " bias" : " no-bias");
}
kernels::Conv2dGeometry geo_of(const StridedConvDims& d) {
  return {static_cast<int>(d.s), static_cast<int>(d.pt), static_cast<int>(d.pl), static_cast<int>(d.pb),
          static_cast<int>(d.pr)};
}
const std::vector<StridedConvDims> kShapes = {
    {1, 4, 4, 3, 2, 3, 2, 0, 0, 1, 1},   // diffusers' Downsample2D(padding=0)
    {2, 5, 7, 3, 4, 3, 2, 0, 0, 1, 1},   // odd sides: the last row/column is never read
    {2, 6, 6, 5, 3, 3, 2, 1, 1, 1, 1},   // Downsample2D(padding=1)
    {1, 7, 5, 2, 3, 3, 3, 2, 0, 1, 2},   // stride 3, every side different
    {2, 4, 5, 3, 2, 1, 2, 0, 0, 0, 0},   // 1x1 stride 2
    {1, 5, 5, 4, 2, 3, 1, 0, 0, 1, 1},   // stride 1, asymmetric padding
    {1, 9, 8, 33, 70, 3, 2, 0, 0, 1, 1}, // channels past one GEMM tile
};
}  // namespace

TEST_CASE("strided conv2d forward matches the float64 reference", "[conv2d][strided]") {
  DD_TEST_RANDOM(rng);
  for (const StridedConvDims& d : kShapes)
    for (bool with_bias : {true, false}) {
      std::vector<double> x = rng.normal_f32(d.x_numel()), w = rng.normal_f32(d.w_numel(), 0.5);
      std::vector<double> b = with_bias ? rng.normal_f32(d.co) : std::vector<double>{};
      Tensor y = kernels::conv2d_forward(from_double({d.b, d.h, d.w, d.ci}, x), from_double({d.co, d.k, d.k, d.ci}, w),
                                         with_bias ? from_double({d.co}, b) : Tensor(), geo_of(d));
      REQUIRE(y.shape() == Shape{d.b, d.ho(), d.wo(), d.co});
      // fp32 dot products of <= 300 terms vs float64: 1e-5 of the output's scale.
      expect_close("strided conv2d " + dims_str(d, with_bias), y, ref::conv2d_strided(d, x, w, b), 1e-5);
    }
}

TEST_CASE("strided conv2d gradcheck of x, w and bias", "[conv2d][strided]") {
  DD_TEST_RANDOM(rng);
  for (std::size_t i = 0; i + 1 < kShapes.size(); ++i)
    for (bool with_bias : {true, false}) {
      const StridedConvDims& d = kShapes[i];
      std::vector<double> x = rng.normal_f32(d.x_numel()), w = rng.normal_f32(d.w_numel(), 0.5);
      std::vector<double> b = with_bias ? rng.normal_f32(d.co) : std::vector<double>{};
      std::vector<double> dy = rng.normal_f32(d.y_numel());
      kernels::Conv2dGrads g = kernels::conv2d_backward(
          from_double({d.b, d.h, d.w, d.ci}, x), from_double({d.co, d.k, d.k, d.ci}, w),
          from_double({d.b, d.ho(), d.wo(), d.co}, dy), geo_of(d), true, true, with_bias);
      CHECK(g.dbias.defined() == with_bias);
      auto f = [&](const std::vector<std::vector<double>>& v) { return ref::conv2d_strided(d, v[0], v[1], v[2]); };
      // fp32 sums of <= 60 products vs float64 central differences: 1e-5 of the gradient's scale.
      gradcheck("strided conv2d " + dims_str(d, with_bias), f, {x, w, b}, dy,
                {g.dx.to_vector(), g.dw.to_vector(), with_bias ? g.dbias.to_vector() : std::vector<float>{}}, 1e-5);
    }
}

TEST_CASE("strided conv2d is bitwise deterministic for any thread count and plain geometry takes the old path",
          "[conv2d][strided]") {
  DD_TEST_RANDOM(rng);
  const StridedConvDims d{4, 16, 16, 16, 24, 3, 2, 0, 0, 1, 1};
  Tensor x = from_double({d.b, d.h, d.w, d.ci}, rng.normal_f32(d.x_numel()));
  Tensor w = from_double({d.co, d.k, d.k, d.ci}, rng.normal_f32(d.w_numel(), 0.5));
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
  const StridedConvDims d{2, 5, 7, 3, 4, 3, 2, 0, 0, 1, 1};
  ag::Var x(from_double({d.b, d.h, d.w, d.ci}, rng.normal_f32(d.x_numel())), true);
  ag::Var w(from_double({d.co, d.k, d.k, d.ci}, rng.normal_f32(d.w_numel(), 0.5)), true);
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
