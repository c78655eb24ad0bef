#include <catch2/catch.hpp>

#include "kernels/activation.h"
#include "tests/reference/activation.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
using Fwd = Tensor (*)(const Tensor&);
using Bwd = Tensor (*)(const Tensor&, const Tensor&);
using RefAct = std::vector<double> (*)(const std::vector<double>&);

void check_activation(const char* name, Fwd fwd, Bwd bwd, RefAct ref) {
  DD_TEST_RANDOM(rng);
  for (Shape shape : {Shape{1}, Shape{7}, Shape{2, 3, 5, 3}, Shape{3, 11, 13, 5}}) {
    SECTION(std::string(name) + " " + shape_str(shape)) {
      const int64_t n = shape_numel(shape);
      std::vector<double> x = rng.normal_f32(n, 3.0);
      Tensor xt = from_double(shape, x);
      // fp32 pointwise (expf/erff) vs float64: a few ulp of the tensor's scale; 1e-5.
      expect_close(std::string(name) + " forward", fwd(xt), ref(x), 1e-5);
      if (n <= 200) {
        std::vector<double> dy = rng.normal_f32(n);
        Tensor dx = bwd(xt, from_double(shape, dy));
        gradcheck(std::string(name) + " backward", [&](const auto& in) { return ref(in[0]); }, {x}, dy,
                  {dx.to_vector()}, 1e-5);
      }
    }
  }
}
}  // namespace

TEST_CASE("silu forward and gradcheck", "[activation][silu]") {
  check_activation("silu", kernels::silu_forward, kernels::silu_backward, ref::silu);
}

TEST_CASE("gelu (exact erf) forward and gradcheck", "[activation][gelu]") {
  check_activation("gelu", kernels::gelu_forward, kernels::gelu_backward, ref::gelu);
}

TEST_CASE("relu forward and gradcheck", "[activation][relu]") {
  // Normal inputs of scale 3 are never within the finite-difference step of the kink at 0.
  check_activation("relu", kernels::relu_forward, kernels::relu_backward, ref::relu);
}

TEST_CASE("relu keeps NaN and gives no gradient at 0, as torch", "[activation][relu]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = from_double({4}, {nan, 0.0, -2.0, 3.0});
  std::vector<float> y = kernels::relu_forward(x).to_vector();
  CHECK(std::isnan(y[0]));
  CHECK(y[1] == 0.0f);
  CHECK(y[2] == 0.0f);
  CHECK(y[3] == 3.0f);
  std::vector<float> dx = kernels::relu_backward(x, from_double({4}, {1, 1, 1, 1})).to_vector();
  CHECK(dx[1] == 0.0f);
  CHECK(dx[2] == 0.0f);
  CHECK(dx[3] == 1.0f);
}

TEST_CASE("activation errors name the op and shapes", "[activation]") {
  Tensor x = Tensor::zeros({2, 3});
  Tensor dy = Tensor::zeros({3, 2});
  REQUIRE_THROWS_WITH(kernels::silu_backward(x, dy), Catch::Contains("silu_backward") && Catch::Contains("[2,3]") &&
                                                         Catch::Contains("[3,2]"));
}
