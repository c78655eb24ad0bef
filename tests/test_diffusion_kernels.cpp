// The per-sample diffusion kernels (q_sample, p_sample_step, predict_x0) and
// their in-kernel Philox variants against float64 and against randn + the
// unfused ops.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"
#include "kernels/diffusion.h"
#include "models/schedule.h"
#include "tests/reference/diffusion.h"
#include "tests/support/compare.h"
#include "tests/support/diffusion_test_util.h"

using namespace dd;
using namespace dd::test;
using models::BetaSchedule;
using models::Schedule;

TEST_CASE("q_sample p_sample_step and predict_x0 match float64 with per-sample t", "[diffusion]") {
  DD_TEST_RANDOM(rng);
  const Schedule sc = Schedule::make(BetaSchedule::Linear, 1000);
  for (Shape shape :
       {Shape{1, 1, 1, 1}, Shape{3, 5, 4, 2}, Shape{2, 7}, Shape{4, 9, 11, 3}, Shape{2, 64, 64, 8}}) {
    SECTION(shape_str(shape)) {
      const int64_t B = shape[0], n = shape_numel(shape);
      std::vector<int64_t> t;
      for (int64_t b = 0; b < B; ++b) t.push_back(b == 0 ? 0 : rng.uniform_int(0, 999));
      const std::vector<double> x = rng.normal_f32(n), e = rng.normal_f32(n), z = rng.normal_f32(n);
      const Tensor xt = from_double(shape, x), et = from_double(shape, e), zt = from_double(shape, z);

      const auto a = as_f32(gather(sc.sqrt_alphas_cumprod, t)),
                 b = as_f32(gather(sc.sqrt_one_minus_alphas_cumprod, t));
      // Two fp32 products and a sum of O(1) values: a few ulps; 1e-6 of the scale.
      expect_close("q_sample", kernels::q_sample(xt, et, coef_tensor(a), coef_tensor(b)),
                   ref::q_sample(x, e, a, b), 1e-6);

      kernels::PSampleCoefs c;
      const auto ra = as_f32(gather(sc.sqrt_recip_alphas, t)), be = as_f32(gather(sc.betas, t)),
                 so = as_f32(gather(sc.sqrt_one_minus_alphas_cumprod, t)),
                 sg = as_f32(sqrt_all(gather(sc.posterior_variance, t)));
      c.sqrt_recip_alpha = coef_tensor(ra);
      c.beta = coef_tensor(be);
      c.sqrt_one_minus_ac = coef_tensor(so);
      c.sigma = coef_tensor(sg);
      // Five fp32 operations on O(1) values: 2e-6 of the scale.
      expect_close("p_sample_step + noise", kernels::p_sample_step(xt, et, zt, c),
                   ref::p_sample_step(x, e, z, ra, be, so, sg), 2e-6);
      expect_close("p_sample_step mean", kernels::p_sample_step(xt, et, Tensor(), c),
                   ref::p_sample_step(x, e, {}, ra, be, so, sg), 2e-6);

      const auto r1 = as_f32(gather(sc.sqrt_recip_alphas_cumprod, t)),
                 rm = as_f32(gather(sc.sqrt_recipm1_alphas_cumprod, t));
      // Coefficients up to ~150 at large t: 1e-6 of the (large) scale.
      const std::vector<double> unclamped = ref::predict_x0(x, e, r1, rm, false);
      expect_close("predict_x0", kernels::predict_x0(xt, et, coef_tensor(r1), coef_tensor(rm), false),
                   unclamped, 1e-6);
      // Clamped values are O(1) but come from terms of the unclamped scale:
      // 1e-6 of that scale.
      const Tensor clamped = kernels::predict_x0(xt, et, coef_tensor(r1), coef_tensor(rm), true);
      expect_close("predict_x0 clamped", clamped, ref::predict_x0(x, e, r1, rm, true),
                   1e-6 * max_abs(unclamped));
      for (float v : clamped.to_vector()) REQUIRE((v >= -1.0f && v <= 1.0f));
    }
  }
}

TEST_CASE("diffusion kernels reject mismatched operands and name them", "[diffusion]") {
  const Tensor x = Tensor::zeros({2, 3, 3, 1}), c2 = Tensor::zeros({2}), c3 = Tensor::zeros({3});
  REQUIRE_THROWS_WITH(
      kernels::q_sample(x, Tensor::zeros({2, 3, 3, 2}), c2, c2),
      Catch::Contains("q_sample") && Catch::Contains("noise") && Catch::Contains("[2,3,3,2]"));
  REQUIRE_THROWS_WITH(kernels::q_sample(x, x, c3, c2),
                      Catch::Contains("coef_a") && Catch::Contains("[3]") && Catch::Contains("[B] = [2]"));
  REQUIRE_THROWS_WITH(kernels::q_sample(Tensor(), x, c2, c2), Catch::Contains("x0 is undefined"));
  kernels::PSampleCoefs c{c2, c2, c2, c3};
  REQUIRE_THROWS_WITH(kernels::p_sample_step(x, x, x, c), Catch::Contains("sigma") && Catch::Contains("[3]"));
  c.sigma = c2;
  REQUIRE_THROWS_WITH(kernels::p_sample_step(x, Tensor::zeros({2, 9}), Tensor(), c),
                      Catch::Contains("p_sample_step") && Catch::Contains("eps"));
  REQUIRE_THROWS_WITH(kernels::predict_x0(x, x, c2, Tensor(), true),
                      Catch::Contains("sqrt_recipm1_ac is undefined"));
}

TEST_CASE("q_sample_philox and p_sample_step_philox equal randn plus the unfused ops bitwise", "[diffusion]") {
  DD_TEST_RANDOM(rng);
  const Schedule sc = Schedule::make(BetaSchedule::Linear, 1000);
  // Sizes that are not multiples of 4 put Philox blocks across sample boundaries.
  for (Shape shape : {Shape{1, 1, 1, 1}, Shape{3, 5, 3, 1}, Shape{2, 7}, Shape{4, 9, 11, 3}, Shape{5, 3}}) {
    SECTION(shape_str(shape)) {
      const int64_t B = shape[0], n = shape_numel(shape);
      const uint64_t seed = rng.engine()(), offset = rng.engine()() % 100000;
      std::vector<int64_t> t;
      for (int64_t b = 0; b < B; ++b) t.push_back(b == 0 ? 0 : rng.uniform_int(1, 999));
      const Tensor x = from_double(shape, rng.normal_f32(n)), e = from_double(shape, rng.normal_f32(n));
      const Tensor noise = randn(shape, seed, offset);

      const Tensor a = coef_tensor(gather(sc.sqrt_alphas_cumprod, t)),
                   b = coef_tensor(gather(sc.sqrt_one_minus_alphas_cumprod, t));
      const kernels::QSampleOut q = kernels::q_sample_philox(x, a, b, seed, offset);
      // Same counters, same expression: bitwise (tolerance 0).
      CHECK(bitwise_equal(q.noise, noise));
      CHECK(bitwise_equal(q.x_t, kernels::q_sample(x, noise, a, b)));

      kernels::PSampleCoefs c;
      c.sqrt_recip_alpha = coef_tensor(gather(sc.sqrt_recip_alphas, t));
      c.beta = coef_tensor(gather(sc.betas, t));
      c.sqrt_one_minus_ac = coef_tensor(gather(sc.sqrt_one_minus_alphas_cumprod, t));
      c.sigma = coef_tensor(sqrt_all(gather(sc.posterior_variance, t)));
      REQUIRE(c.sigma.to_vector()[0] == 0.0f);  // sample 0 sits at t = 0
      const Tensor fused = kernels::p_sample_step_philox(x, e, c, seed, offset);
      const Tensor noisy = kernels::p_sample_step(x, e, noise, c);
      const Tensor mean = kernels::p_sample_step(x, e, Tensor(), c);
      // Per sample, bitwise: the mean alone where sigma == 0, mean + sigma * noise elsewhere.
      const int64_t inner = n / B;
      const std::vector<float> sg = c.sigma.to_vector();
      for (int64_t s = 0; s < B; ++s) {
        const float* want = (sg[static_cast<std::size_t>(s)] == 0.0f ? mean : noisy).data() + s * inner;
        CHECK(std::memcmp(fused.data() + s * inner, want, sizeof(float) * inner) == 0);
      }
    }
  }
}

TEST_CASE("philox diffusion ops reject mismatched operands", "[diffusion]") {
  const Tensor x = Tensor::zeros({2, 3, 3, 1}), c2 = Tensor::zeros({2}), c3 = Tensor::zeros({3});
  REQUIRE_THROWS_WITH(kernels::q_sample_philox(x, c2, c3, 1, 0),
                      Catch::Contains("q_sample_philox") && Catch::Contains("coef_b") && Catch::Contains("[3]"));
  kernels::PSampleCoefs c{c2, c2, c2, c3};
  REQUIRE_THROWS_WITH(kernels::p_sample_step_philox(x, x, c, 1, 0),
                      Catch::Contains("p_sample_step_philox") && Catch::Contains("sigma"));
  c.sigma = c2;
  REQUIRE_THROWS_WITH(kernels::p_sample_step_philox(x, Tensor::zeros({2, 9}), c, 1, 0),
                      Catch::Contains("eps"));
}

// ---------------------------------------------------------------- torch parity

