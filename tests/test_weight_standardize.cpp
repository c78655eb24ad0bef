#include <catch2/catch.hpp>

#include "autograd/elementwise.h"
#include "autograd/weight_standardize.h"
#include "kernels/weight_standardize.h"
#include "tests/reference/weight_standardize.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
struct TapeGuard {
  ~TapeGuard() { ag::Tape::current().clear(); }
};

// Conv-like weights: small, with a per-channel offset so the mean matters.
std::vector<double> random_weight(Random& rng, const Shape& shape) {
  std::vector<double> w = rng.normal_f32(shape_numel(shape), 0.1);
  const int64_t n = shape_numel(shape) / shape[0];
  std::vector<double> offset = rng.normal(shape[0], 0.2);
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = static_cast<double>(static_cast<float>(w[i] + offset[i / static_cast<std::size_t>(n)]));
  return w;
}
}  // namespace

TEST_CASE("weight_standardize forward matches the float64 reference", "[weight_standardize]") {
  DD_TEST_RANDOM(rng);
  for (Shape shape : {Shape{1, 1}, Shape{1, 7}, Shape{5, 9}, Shape{2, 3, 3, 3}, Shape{7, 1, 1, 13},
                      Shape{64, 3, 3, 32}, Shape{3, 2, 5, 3, 2}}) {
    std::vector<double> w = random_weight(rng, shape);
    // Statistics in double, one float rounding of w_hat (~1 in scale): 1e-6.
    expect_close("weight_standardize " + shape_str(shape), kernels::weight_standardize_forward(from_double(shape, w)),
                 ref::weight_standardize(shape[0], w), 1e-6);
  }
  // eps is a parameter: a constant channel maps to 0 and a large eps shrinks the result.
  std::vector<double> w = random_weight(rng, {3, 8});
  expect_close("weight_standardize eps 0.5", kernels::weight_standardize_forward(from_double({3, 8}, w), 0.5f),
               ref::weight_standardize(3, w, 0.5), 1e-6);
}

TEST_CASE("weight_standardize gradcheck", "[weight_standardize]") {
  DD_TEST_RANDOM(rng);
  for (Shape shape : {Shape{2, 5}, Shape{3, 3, 3, 2}, Shape{2, 1, 1, 3}}) {
    std::vector<double> w = random_weight(rng, shape), dy = rng.normal_f32(shape_numel(shape));
    Tensor dw = kernels::weight_standardize_backward(from_double(shape, w), from_double(shape, dy));
    auto f = [&](const std::vector<std::vector<double>>& v) { return ref::weight_standardize(shape[0], v[0]); };
    // Double-precision internals, one float rounding; the numeric side divides
    // O(1e-16) rounding by 2h with w ~ 0.1: 1e-5 of the gradient's scale.
    gradcheck("weight_standardize " + shape_str(shape), f, {w}, dy, {dw.to_vector()}, 1e-5);
  }
}

TEST_CASE("weight_standardize errors name the op and the shapes", "[weight_standardize]") {
  REQUIRE_THROWS_WITH(kernels::weight_standardize_backward(Tensor::zeros({4, 3, 3, 2}), Tensor::zeros({4, 3, 3, 3})),
                      Catch::Contains("weight_standardize_backward") && Catch::Contains("[4,3,3,2]") &&
                          Catch::Contains("[4,3,3,3]"));
  REQUIRE_THROWS_WITH(kernels::weight_standardize_forward(Tensor::zeros({4})),
                      Catch::Contains("weight_standardize") && Catch::Contains("[4]"));
  REQUIRE_THROWS_WITH(kernels::weight_standardize_forward(Tensor::zeros({4, 2}), 0.0f),
                      Catch::Contains("weight_standardize") && Catch::Contains("eps"));
}

TEST_CASE("autograd weight_standardize hands the kernel gradient to w", "[weight_standardize]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Shape shape{4, 3, 3, 2};
  std::vector<double> wv = random_weight(rng, shape), r = rng.normal_f32(shape_numel(shape));
  ag::Var w(from_double(shape, wv), true), rv(from_double(shape, r));
  ag::Tape::current().backward(ag::sum(ag::mul(ag::weight_standardize(w), rv)));
  CHECK(w.grad().to_vector() == kernels::weight_standardize_backward(w.value(), rv.value()).to_vector());
}
