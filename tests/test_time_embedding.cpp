#include <catch2/catch.hpp>

#include <cmath>

#include "autograd/elementwise.h"
#include "autograd/time_embedding.h"
#include "kernels/time_embedding.h"
#include "tests/reference/time_embedding.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("time_embedding forward matches float64 for DDPM timesteps", "[time_embedding]") {
  DD_TEST_RANDOM(rng);
  for (int64_t B : {1, 3, 13, 128})
    for (int64_t dim : {4, 6, 28, 32, 130}) {
      SECTION("B=" + std::to_string(B) + " dim=" + std::to_string(dim)) {
        // Integer timesteps as in training (0..999) plus non-integers.
        std::vector<double> t = rng.uniform(B, 0.0, 999.0);
        for (int64_t b = 0; b < B; b += 2) t[b] = rng.uniform_int(0, 999);
        Tensor y = kernels::time_embedding_forward(from_double({B}, t), dim);
        REQUIRE(y.shape() == Shape{B, dim});
        // The argument t * f_i is one fp32 product as in PyTorch: for |t f| up
        // to 1000 its rounding (ulp 6e-5, half-ulp 3e-5, plus f_i's own
        // rounding times t) moves sin/cos by up to ~1e-4 absolute. The output
        // scale is 1, so 2e-4 relative.
        expect_close("time_embedding", y, ref::time_embedding(t, dim), 2e-4);
      }
    }
}

TEST_CASE("time_embedding forward is accurate for small t", "[time_embedding]") {
  DD_TEST_RANDOM(rng);
  // With t < 1 the argument rounding is < 6e-8: only sinf/cosf and f_i's
  // rounding remain, a few ulp; 1e-6.
  std::vector<double> t = rng.uniform(17, 0.0, 1.0);
  expect_close("small t", kernels::time_embedding_forward(from_double({17}, t), 64),
               ref::time_embedding(t, 64), 1e-6);
}

TEST_CASE("time_embedding backward: gradcheck in t", "[time_embedding]") {
  DD_TEST_RANDOM(rng);
  for (int64_t dim : {4, 8, 16, 34}) {
    SECTION("gradcheck dim=" + std::to_string(dim)) {
      const int64_t B = 3;
      std::vector<double> t = rng.uniform(B, 0.0, 50.0);
      std::vector<double> dy = rng.normal_f32(B * dim);
      Tensor dt = kernels::time_embedding_backward(from_double({B}, t), from_double({B, dim}, dy));
      REQUIRE(dt.shape() == Shape{B});
      // fp32 argument (abs. error <= 50 * 6e-8) and fp32 sin/cos, summed in
      // double: ~1e-6 of the largest dt; 2e-5.
      gradcheck(
          "time_embedding dim=" + std::to_string(dim),
          [dim](const auto& in) { return ref::time_embedding(in[0], dim); }, {t}, dy, {dt.to_vector()}, 2e-5);
    }
  }
}

TEST_CASE("time_embedding errors name the op and the shapes", "[time_embedding]") {
  Tensor t = Tensor::zeros({3});
  REQUIRE_THROWS_WITH(kernels::time_embedding_forward(t, 7), Catch::Contains("time_embedding") &&
                                                                 Catch::Contains("dim = 7") &&
                                                                 Catch::Contains("even"));
  REQUIRE_THROWS_WITH(kernels::time_embedding_forward(t, 2), Catch::Contains("dim = 2"));
  REQUIRE_THROWS_WITH(kernels::time_embedding_forward(Tensor::zeros({3, 1}), 8),
                      Catch::Contains("time_embedding") && Catch::Contains("[3,1]"));
  REQUIRE_THROWS_WITH(
      kernels::time_embedding_backward(t, Tensor::zeros({2, 8})),
      Catch::Contains("time_embedding_backward") && Catch::Contains("[2,8]") && Catch::Contains("[3]"));
  REQUIRE_THROWS_WITH(kernels::time_embedding_backward(t, Tensor::zeros({3, 5})),
                      Catch::Contains("time_embedding_backward") && Catch::Contains("dim = 5"));
}

TEST_CASE("time_embedding autograd: t's grad equals the kernel backward", "[time_embedding]") {
  DD_TEST_RANDOM(rng);
  struct TapeGuard {
    ~TapeGuard() { ag::Tape::current().clear(); }
  } guard;
  const int64_t B = 5, dim = 32;
  Tensor tt = from_double({B}, rng.uniform(B, 0.0, 50.0));
  ag::Var t(tt, true), r(from_double({B, dim}, rng.normal_f32(B * dim)));
  // L = sum(r * embed(t))
  ag::Tape::current().backward(ag::sum(ag::mul(ag::time_embedding(t, dim), r)));
  CHECK(t.grad().to_vector() == kernels::time_embedding_backward(tt, r.value()).to_vector());

  // Timesteps without grad (the U-Net's case) record nothing.
  ag::Tape::current().clear();
  ag::Var frozen(tt);
  ag::Var y = ag::time_embedding(frozen, dim);
  CHECK_FALSE(y.requires_grad());
  CHECK(ag::Tape::current().size() == 0);
}
