#include <catch2/catch.hpp>

#include "autograd/elementwise.h"
#include "autograd/pixel_unshuffle.h"
#include "kernels/pixel_unshuffle.h"
#include "tests/reference/pixel_unshuffle.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
struct TapeGuard {
  ~TapeGuard() { ag::Tape::current().clear(); }
};
}  // namespace

TEST_CASE("pixel_unshuffle: forward against the einops pattern in float64", "[pixel_unshuffle]") {
  DD_TEST_RANDOM(rng);
  for (Shape s : {Shape{1, 2, 2, 1}, Shape{2, 2, 6, 3}, Shape{3, 6, 2, 5}, Shape{2, 10, 14, 13},
                  Shape{2, 32, 32, 64}}) {
    INFO("x " << shape_str(s));
    std::vector<double> x = rng.normal_f32(shape_numel(s));
    Tensor y = kernels::pixel_unshuffle_forward(from_double(s, x));
    REQUIRE(y.shape() == Shape{s[0], s[1] / 2, s[2] / 2, 4 * s[3]});
    // A permutation of float inputs: exact.
    expect_close("pixel_unshuffle forward", y, ref::pixel_unshuffle2(x, s[0], s[1], s[2], s[3]), 0.0);
  }
}

TEST_CASE("pixel_unshuffle: the channel order on a hand-made example", "[pixel_unshuffle]") {
  // One image, C = 2, 2x2: x[h][w][c] = 10 * (2h + w) + c, i.e. block pixels A B / C D
  // per channel. einops packs each channel's A, B, C, D together: [A0 B0 C0 D0 A1 B1 C1 D1].
  Tensor x = Tensor::from_vector({1, 2, 2, 2}, {0, 1, 10, 11, 20, 21, 30, 31});
  CHECK(kernels::pixel_unshuffle_forward(x).to_vector() == std::vector<float>{0, 10, 20, 30, 1, 11, 21, 31});
}

TEST_CASE("pixel_unshuffle: backward gradcheck and inverse", "[pixel_unshuffle]") {
  DD_TEST_RANDOM(rng);
  for (Shape s : {Shape{1, 2, 2, 1}, Shape{2, 2, 4, 3}, Shape{1, 4, 2, 5}}) {
    INFO("x " << shape_str(s));
    const int64_t n = shape_numel(s);
    std::vector<double> x = rng.normal_f32(n), dy = rng.normal_f32(n);
    Tensor dx = kernels::pixel_unshuffle_backward(from_double({s[0], s[1] / 2, s[2] / 2, 4 * s[3]}, dy));
    REQUIRE(dx.shape() == s);
    // A permutation: the analytic gradient is exact; 1e-6 covers the finite difference's rounding.
    gradcheck(
        "pixel_unshuffle", [&](const auto& in) { return ref::pixel_unshuffle2(in[0], s[0], s[1], s[2], s[3]); },
        {x}, dy, {dx.to_vector()}, 1e-6);
  }
  const Shape big{2, 16, 12, 24};
  Tensor x = from_double(big, rng.normal_f32(shape_numel(big)));
  CHECK(kernels::pixel_unshuffle_backward(kernels::pixel_unshuffle_forward(x)).to_vector() == x.to_vector());
}

TEST_CASE("pixel_unshuffle: odd H or W is an error naming the shape", "[pixel_unshuffle]") {
  REQUIRE_THROWS_WITH(kernels::pixel_unshuffle_forward(Tensor::zeros({1, 3, 4, 2})),
                      Catch::Contains("pixel_unshuffle") && Catch::Contains("[1,3,4,2]") &&
                          Catch::Contains("even"));
  REQUIRE_THROWS_WITH(kernels::pixel_unshuffle_forward(Tensor::zeros({1, 4, 5, 2})),
                      Catch::Contains("[1,4,5,2]"));
  REQUIRE_THROWS_WITH(kernels::pixel_unshuffle_forward(Tensor::zeros({4, 4, 2})), Catch::Contains("[4,4,2]"));
  REQUIRE_THROWS_WITH(kernels::pixel_unshuffle_backward(Tensor::zeros({1, 2, 2, 6})),
                      Catch::Contains("pixel_unshuffle_backward") && Catch::Contains("[1,2,2,6]"));
}

TEST_CASE("pixel_unshuffle: autograd gradient equals the kernel backward", "[pixel_unshuffle]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Shape s{2, 4, 6, 3};
  ag::Var x(from_double(s, rng.normal_f32(shape_numel(s))), true);
  Tensor r = from_double({2, 2, 3, 12}, rng.normal_f32(shape_numel(s)));
  ag::Var loss = ag::sum(ag::mul(ag::pixel_unshuffle(x), ag::Var(r)));
  ag::Tape::current().backward(loss);
  // d loss / d y is r exactly.
  expect_close("x.grad", x.grad(), kernels::pixel_unshuffle_backward(r), 0.0);
}
