// Max / average pooling and the global average pool (kernels/pool2d.h): the CPU backend against
// the float64 references (tests/reference/pool2d.h) on odd shapes, central-difference gradchecks,
// torch's tie rule for the max pool's gradient, NaN and -inf padding, geometry errors, thread-count
// determinism and the autograd ops.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <omp.h>

#include "autograd/elementwise.h"
#include "autograd/pool2d.h"
#include "engine/error.h"
#include "kernels/pool2d.h"
#include "tests/reference/pool2d.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;
using ref::PoolDims;

namespace {
kernels::Pool2dGeometry geo_of(const PoolDims& d, bool include_pad = true) {
  return {static_cast<int>(d.k), static_cast<int>(d.s), static_cast<int>(d.p), include_pad};
}
Shape x_shape(const PoolDims& d) { return {d.b, d.h, d.w, d.c}; }
Shape y_shape(const PoolDims& d) { return {d.b, d.ho(), d.wo(), d.c}; }
std::string dims_str(const PoolDims& d) {
  return str_cat("B", d.b, " ", d.h, "x", d.w, " C", d.c, " kernel ", d.k, " stride ", d.s, " pad ", d.p);
}

// Fields: b, h, w, c, kernel, stride, pad.
const std::vector<PoolDims> kShapes = {
    {1, 1, 1, 1, 1, 1, 0},    // one pixel
    {2, 7, 9, 5, 3, 2, 0},    // Inception's max pools: 3x3 stride 2, odd sides
    {1, 8, 6, 3, 3, 1, 1},    // Inception's avg pools: 3x3 stride 1 pad 1
    {2, 5, 5, 3, 2, 2, 1},    // even kernel, padding on both sides
    {1, 9, 7, 4, 5, 3, 2},    // 5x5 stride 3 pad 2: rows only the stride skips
    {1, 3, 3, 2, 3, 3, 0},    // one window
    {1, 13, 11, 3, 4, 3, 2},  // windows past the last row and column
    {2, 6, 7, 70, 3, 2, 1},   // channels past one CPU channel block (64)
};

// Tie-free inputs: a permutation of 0.01 * i, shifted; far apart against the gradcheck's step 1e-6.
std::vector<double> distinct_values(Random& rng, int64_t n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0.0);
  std::shuffle(v.begin(), v.end(), rng.engine());
  for (double& x : v) x = static_cast<float>(0.01 * x - 0.005 * static_cast<double>(n));
  return v;
}
}  // namespace

TEST_CASE("pool2d: max and avg forward match the float64 reference", "[pool2d]") {
  DD_TEST_RANDOM(rng);
  for (const PoolDims& d : kShapes) {
    INFO(dims_str(d));
    const std::vector<double> x = rng.normal_f32(d.x_numel());
    const Tensor xt = from_double(x_shape(d), x);
    const Tensor ym = kernels::max_pool2d_forward(xt, geo_of(d));
    REQUIRE(ym.shape() == y_shape(d));
    // A maximum of floats is one of them: exact.
    expect_close("max_pool2d", ym, ref::max_pool2d(d, x), 0.0);
    for (bool include_pad : {true, false}) {
      INFO("count_include_pad " << include_pad);
      const Tensor ya = kernels::avg_pool2d_forward(xt, geo_of(d, include_pad));
      REQUIRE(ya.shape() == y_shape(d));
      // <= 25 float additions and a division: <= 26 * 6e-8 of the inputs' scale, which the
      // outputs' largest element is within a few times of: 1e-5.
      expect_close("avg_pool2d", ya, ref::avg_pool2d(d, x, include_pad), 1e-5);
    }
  }
}

TEST_CASE("pool2d: avg_pool2d gradcheck, both count_include_pad settings", "[pool2d]") {
  DD_TEST_RANDOM(rng);
  for (std::size_t i = 0; i + 1 < kShapes.size(); ++i) {
    const PoolDims& d = kShapes[i];
    for (bool include_pad : {true, false}) {
      INFO(dims_str(d) << " count_include_pad " << include_pad);
      const std::vector<double> x = rng.normal_f32(d.x_numel()), dy = rng.normal_f32(d.y_numel());
      const Tensor dx = kernels::avg_pool2d_backward(from_double(x_shape(d), x), from_double(y_shape(d), dy),
                                                     geo_of(d, include_pad));
      REQUIRE(dx.shape() == x_shape(d));
      // Sums of <= 9 float quotients (a pixel lies in <= ceil(kernel/stride)^2 = 9 windows here): <= 18
      // roundings, 1.1e-6 of the terms' size, which the largest gradient is within a few times of: 1e-5.
      gradcheck(
          "avg_pool2d " + dims_str(d), [&](const auto& in) { return ref::avg_pool2d(d, in[0], include_pad); }, {x},
          dy, {dx.to_vector()}, 1e-5);
    }
  }
}

TEST_CASE("pool2d: max_pool2d gradcheck on inputs without ties", "[pool2d]") {
  DD_TEST_RANDOM(rng);
  for (std::size_t i = 0; i + 1 < kShapes.size(); ++i) {
    const PoolDims& d = kShapes[i];
    INFO(dims_str(d));
    const std::vector<double> x = distinct_values(rng, d.x_numel()), dy = rng.normal_f32(d.y_numel());
    const Tensor dx =
        kernels::max_pool2d_backward(from_double(x_shape(d), x), from_double(y_shape(d), dy), geo_of(d));
    REQUIRE(dx.shape() == x_shape(d));
    // Each dx element is a float sum of the dy of the <= 9 windows it wins: <= 8 roundings, 5e-7 of the
    // terms' size: 1e-5 of the gradient's scale.
    gradcheck(
        "max_pool2d " + dims_str(d), [&](const auto& in) { return ref::max_pool2d(d, in[0]); }, {x}, dy,
        {dx.to_vector()}, 1e-5);
  }
}

TEST_CASE("pool2d: max_pool2d sends the gradient to the first maximum, as torch's CPU kernel", "[pool2d]") {
  DD_TEST_RANDOM(rng);
  // All ones, 3x3 stride 1 pad 1: window (oh, ow)'s first in-image element is (max(oh-1, 0), max(ow-1, 0)),
  // so with dy = 1 pixel (0,0) wins 4 windows, (0,1) and (1,0) two, (1,1) one, the rest none.
  {
    const Tensor x = Tensor::from_vector({1, 3, 3, 1}, std::vector<float>(9, 1.0f));
    const Tensor dy = Tensor::from_vector({1, 3, 3, 1}, std::vector<float>(9, 1.0f));
    const kernels::Pool2dGeometry g{3, 1, 1, true};
    CHECK(kernels::max_pool2d_forward(x, g).to_vector() == std::vector<float>(9, 1.0f));
    CHECK(kernels::max_pool2d_backward(x, dy, g).to_vector() == std::vector<float>{4, 2, 0, 2, 1, 0, 0, 0, 0});
  }
  // Many ties (values in {-1, 0, 1}) on every shape: the reference applies torch's rule.
  for (const PoolDims& d : kShapes) {
    INFO(dims_str(d));
    std::vector<double> x(static_cast<std::size_t>(d.x_numel()));
    for (double& v : x) v = rng.uniform_int(-1, 1);
    const std::vector<double> dy = rng.normal_f32(d.y_numel());
    const Tensor dx = kernels::max_pool2d_backward(from_double(x_shape(d), x), from_double(y_shape(d), dy), geo_of(d));
    // Float sums of <= 9 dy values (a pixel wins at most ceil(kernel/stride)^2 windows) vs float64: <= 8
    // roundings, 5e-7 of the terms' size: 1e-5. A wrong winner would be off by a whole dy.
    expect_close("max_pool2d ties", dx, ref::max_pool2d_backward(d, x, dy), 1e-5);
  }
}

TEST_CASE("pool2d: max padding acts as -inf and a NaN in a window wins", "[pool2d]") {
  DD_TEST_RANDOM(rng);
  const PoolDims d{2, 5, 6, 3, 3, 2, 1};
  std::vector<double> x = rng.uniform(d.x_numel(), -3.0, -1.0);
  for (double& v : x) v = static_cast<float>(v);
  const Tensor y = kernels::max_pool2d_forward(from_double(x_shape(d), x), geo_of(d));
  // Zero padding would make every border window 0.
  for (float v : y.to_vector()) CHECK(v < -0.5f);
  expect_close("max_pool2d negative", y, ref::max_pool2d(d, x), 0.0);
  // One NaN at pixel (3, 3) of image 0, channel 1: the four windows holding it (oh, ow in {1, 2}) give
  // NaN there, only there.
  x[static_cast<std::size_t>((3 * d.w + 3) * d.c + 1)] = std::nan("");
  const std::vector<float> yn = kernels::max_pool2d_forward(from_double(x_shape(d), x), geo_of(d)).to_vector();
  int nans = 0;
  for (int64_t oh = 0; oh < d.ho(); ++oh)
    for (int64_t ow = 0; ow < d.wo(); ++ow)
      for (int64_t c = 0; c < d.c; ++c) {
        const bool holds = c == 1 && oh * 2 - 1 <= 3 && 3 <= oh * 2 + 1 && ow * 2 - 1 <= 3 && 3 <= ow * 2 + 1;
        const bool is_nan = std::isnan(yn[static_cast<std::size_t>((oh * d.wo() + ow) * d.c + c)]);
        CHECK(is_nan == holds);
        nans += is_nan;
      }
  CHECK(nans == 4);
}

TEST_CASE("pool2d: global_avg_pool matches the reference and its gradcheck", "[pool2d]") {
  DD_TEST_RANDOM(rng);
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{2, 3, 5, 7}, Shape{3, 8, 8, 70}, Shape{1, 1, 9, 2}}) {
    INFO("x " << shape_str(s));
    const std::vector<double> x = rng.normal_f32(shape_numel(s));
    const Tensor y = kernels::global_avg_pool_forward(from_double(s, x));
    REQUIRE(y.shape() == Shape{s[0], s[3]});
    // Summed in double, rounded once: 1e-7 of the scale (one float rounding is 6e-8).
    expect_close("global_avg_pool", y, ref::global_avg_pool(x, s[0], s[1], s[2], s[3]), 1e-7);
    const std::vector<double> dy = rng.normal_f32(s[0] * s[3]);
    const Tensor dx = kernels::global_avg_pool_backward(from_double(s, x), from_double({s[0], s[3]}, dy));
    REQUIRE(dx.shape() == s);
    // One float division per element vs float64 differences of a linear map: 1e-6.
    gradcheck(
        "global_avg_pool", [&](const auto& in) { return ref::global_avg_pool(in[0], s[0], s[1], s[2], s[3]); }, {x}, dy,
        {dx.to_vector()}, 1e-6);
  }
}

TEST_CASE("pool2d: geometry and shape errors name the op, the argument and the shapes", "[pool2d]") {
  const Tensor x = Tensor::zeros({2, 5, 6, 3});
  CHECK_THROWS_WITH(kernels::max_pool2d_forward(x, {0, 1, 0, true}), Catch::Contains("max_pool2d") &&
                                                                         Catch::Contains("kernel 0") &&
                                                                         Catch::Contains("[2,5,6,3]"));
  CHECK_THROWS_WITH(kernels::avg_pool2d_forward(x, {3, 0, 0, true}),
                    Catch::Contains("avg_pool2d") && Catch::Contains("stride 0"));
  CHECK_THROWS_WITH(kernels::max_pool2d_forward(x, {3, 2, 2, true}),
                    Catch::Contains("pad 2") && Catch::Contains("half the kernel 3"));
  CHECK_THROWS_WITH(kernels::avg_pool2d_forward(x, {3, 1, -1, true}), Catch::Contains("pad -1"));
  CHECK_THROWS_WITH(kernels::max_pool2d_forward(Tensor::zeros({1, 2, 7, 1}), {3, 1, 0, true}),
                    Catch::Contains("leaves no output") && Catch::Contains("[1,2,7,1]"));
  CHECK_THROWS_WITH(kernels::max_pool2d_forward(Tensor::zeros({5, 6, 3}), {3, 1, 1, true}),
                    Catch::Contains("NHWC") && Catch::Contains("[5,6,3]"));
  CHECK_THROWS_WITH(kernels::max_pool2d_backward(x, Tensor::zeros({2, 2, 3, 3}), {3, 2, 0, true}),
                    Catch::Contains("max_pool2d_backward") && Catch::Contains("dy [2,2,3,3]") &&
                        Catch::Contains("must be [2,2,2,3]"));
  CHECK_THROWS_WITH(kernels::avg_pool2d_backward(x, Tensor::zeros({2, 5, 6, 4}), {3, 1, 1, false}),
                    Catch::Contains("avg_pool2d_backward") && Catch::Contains("must be [2,5,6,3]"));
  CHECK_THROWS_WITH(kernels::global_avg_pool_forward(Tensor::zeros({2, 3})), Catch::Contains("global_avg_pool"));
  CHECK_THROWS_WITH(kernels::global_avg_pool_backward(x, Tensor::zeros({2, 4})),
                    Catch::Contains("dy [2,4]") && Catch::Contains("must be [2,3]"));
  // The largest legal pad (kernel / 2) works; 1x1 output is enough.
  CHECK(kernels::max_pool2d_forward(Tensor::zeros({1, 1, 1, 2}), {3, 1, 1, true}).shape() == Shape{1, 1, 1, 2});
}

TEST_CASE("pool2d: every op is bitwise the same for any thread count", "[pool2d]") {
  DD_TEST_RANDOM(rng);
  const PoolDims d{4, 35, 35, 72, 3, 2, 1};
  const Tensor x = from_double(x_shape(d), rng.normal_f32(d.x_numel()));
  const Tensor dy = from_double(y_shape(d), rng.normal_f32(d.y_numel()));
  const Tensor gdy = from_double({d.b, d.c}, rng.normal_f32(d.b * d.c));
  auto run = [&] {
    return std::vector<std::vector<float>>{kernels::max_pool2d_forward(x, geo_of(d)).to_vector(),
                                           kernels::max_pool2d_backward(x, dy, geo_of(d)).to_vector(),
                                           kernels::avg_pool2d_forward(x, geo_of(d, false)).to_vector(),
                                           kernels::avg_pool2d_backward(x, dy, geo_of(d, false)).to_vector(),
                                           kernels::global_avg_pool_forward(x).to_vector(),
                                           kernels::global_avg_pool_backward(x, gdy).to_vector()};
  };
  const auto many = run();
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = run();
  omp_set_num_threads(threads);
  for (std::size_t i = 0; i < many.size(); ++i) {
    INFO("output " << i);
    CHECK(many[i] == one[i]);
  }
}

TEST_CASE("pool2d: the autograd ops backpropagate the kernels' gradients", "[pool2d][autograd]") {
  DD_TEST_RANDOM(rng);
  const PoolDims d{2, 7, 9, 5, 3, 2, 1};
  const kernels::Pool2dGeometry g = geo_of(d, false);
  ag::Var x(from_double(x_shape(d), rng.normal_f32(d.x_numel())), true);
  const Tensor rm = from_double(y_shape(d), rng.normal_f32(d.y_numel()));
  const Tensor ra = from_double(y_shape(d), rng.normal_f32(d.y_numel()));
  const Tensor rg = from_double({d.b, d.c}, rng.normal_f32(d.b * d.c));
  // Three separate losses, so each gradient is one kernel's output (d loss / d y is r exactly).
  for (int which = 0; which < 3; ++which) {
    INFO("op " << which);
    x.zero_grad();
    ag::Var loss = which == 0   ? ag::sum(ag::mul(ag::max_pool2d(x, g), ag::Var(rm)))
                   : which == 1 ? ag::sum(ag::mul(ag::avg_pool2d(x, g), ag::Var(ra)))
                                : ag::sum(ag::mul(ag::global_avg_pool(x), ag::Var(rg)));
    ag::Tape::current().backward(loss);
    const Tensor expected = which == 0   ? kernels::max_pool2d_backward(x.value(), rm, g)
                            : which == 1 ? kernels::avg_pool2d_backward(x.value(), ra, g)
                                         : kernels::global_avg_pool_backward(x.value(), rg);
    CHECK(x.grad().to_vector() == expected.to_vector());
    ag::Tape::current().clear();
  }
}
