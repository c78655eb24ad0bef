#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "models/schedule.h"
#include "tests/reference/diffusion.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using models::BetaSchedule;
using models::Schedule;

namespace {
const BetaSchedule kAll[] = {BetaSchedule::Linear, BetaSchedule::Cosine, BetaSchedule::Quadratic,
                             BetaSchedule::Sigmoid};

struct Named {
  const char* name;
  const std::vector<double> Schedule::*buf;
};
const Named kBuffers[] = {
    {"betas", &Schedule::betas},
    {"alphas", &Schedule::alphas},
    {"alphas_cumprod", &Schedule::alphas_cumprod},
    {"alphas_cumprod_prev", &Schedule::alphas_cumprod_prev},
    {"sqrt_recip_alphas", &Schedule::sqrt_recip_alphas},
    {"sqrt_alphas_cumprod", &Schedule::sqrt_alphas_cumprod},
    {"sqrt_one_minus_alphas_cumprod", &Schedule::sqrt_one_minus_alphas_cumprod},
    {"posterior_variance", &Schedule::posterior_variance},
    {"sqrt_recip_alphas_cumprod", &Schedule::sqrt_recip_alphas_cumprod},
    {"sqrt_recipm1_alphas_cumprod", &Schedule::sqrt_recipm1_alphas_cumprod},
};

// Worst per-element relative error (absolute where the reference is 0).
template <typename T>
double max_rel(const std::vector<double>& ours, const std::vector<T>& ref, std::size_t* worst) {
  REQUIRE(ours.size() == ref.size());
  double m = 0.0;
  for (std::size_t i = 0; i < ours.size(); ++i) {
    const double r = static_cast<double>(ref[i]);
    const double e = r == 0.0 ? std::fabs(ours[i]) : std::fabs(ours[i] - r) / std::fabs(r);
    if (!(e <= m)) {  // NaN counts as worst
      m = e;
      *worst = i;
    }
  }
  return m;
}
}  // namespace

TEST_CASE("schedule names parse and round-trip, unknown names list the valid ones", "[schedule]") {
  for (BetaSchedule s : kAll) CHECK(models::parse_beta_schedule(models::beta_schedule_name(s)) == s);
  REQUIRE_THROWS_WITH(models::parse_beta_schedule("cosin"),
                      Catch::Contains("'cosin'") && Catch::Contains("linear") && Catch::Contains("cosine") &&
                          Catch::Contains("quadratic") && Catch::Contains("sigmoid"));
}

TEST_CASE("schedules need T >= 1 and every beta strictly between 0 and 1", "[schedule]") {
  for (BetaSchedule s : kAll) {
    REQUIRE_THROWS_WITH(models::make_betas(s, 0), Catch::Contains("T >= 1") && Catch::Contains("T = 0"));
    REQUIRE_THROWS_WITH(Schedule::make(s, -3), Catch::Contains("T = -3"));
  }
  REQUIRE_THROWS_WITH(Schedule::from_betas({}), Catch::Contains("T >= 1"));
  REQUIRE_THROWS_WITH(Schedule::from_betas({0.1, 1.0, 0.2}), Catch::Contains("beta[1]"));
  REQUIRE_THROWS_WITH(Schedule::from_betas({1.0, 0.2}), Catch::Contains("beta[0]"));
  REQUIRE_THROWS_WITH(Schedule::from_betas({1.0}), Catch::Contains("beta[0]"));
  CHECK(Schedule::from_betas({0.1, 1.0}).zero_terminal_snr());  // only the last may be 1
  REQUIRE_THROWS_WITH(Schedule::from_betas({0.0}), Catch::Contains("beta[0]"));
}

TEST_CASE("schedule constants, endpoints and buffer identities", "[schedule]") {
  // linspace endpoints are exact (torch's two-sided formula).
  for (int T : {1000, 7, 2}) {
    auto lin = models::make_betas(BetaSchedule::Linear, T);
    CHECK(lin.front() == 1e-4);
    CHECK(lin.back() == 0.02);
    auto quad = models::make_betas(BetaSchedule::Quadratic, T);
    CHECK(quad.front() == std::sqrt(1e-4) * std::sqrt(1e-4));
    CHECK(quad.back() == std::sqrt(0.02) * std::sqrt(0.02));
    auto sig = models::make_betas(BetaSchedule::Sigmoid, T);
    CHECK(sig.front() == 1.0 / (1.0 + std::exp(6.0)) * (0.02 - 1e-4) + 1e-4);
  }
  // T = 1: linspace gives its start; the cosine beta hits the upper clip.
  CHECK(models::make_betas(BetaSchedule::Linear, 1) == std::vector<double>{1e-4});
  CHECK(models::make_betas(BetaSchedule::Cosine, 1) == std::vector<double>{0.9999});
  for (double b : models::make_betas(BetaSchedule::Cosine, 1000)) CHECK((b >= 1e-4 && b <= 0.9999));

  for (BetaSchedule s : kAll)
    for (int T : {1000, 7, 1}) {
      const Schedule sc = Schedule::make(s, T);
      INFO(models::beta_schedule_name(s) << " T=" << T);
      REQUIRE(sc.T == T);
      for (const Named& n : kBuffers) REQUIRE((sc.*n.buf).size() == static_cast<std::size_t>(T));
      CHECK(sc.alphas_cumprod_prev[0] == 1.0);
      CHECK(sc.posterior_variance[0] == 0.0);  // beta_0 (1 - 1) / (1 - abar_0)
      for (int t = 1; t < T; ++t) CHECK(sc.alphas_cumprod_prev[t] == sc.alphas_cumprod[t - 1]);
      for (int t = 0; t < T; ++t) {
        // Identities of exact arithmetic, true in double to a few ulps.
        CHECK(std::fabs(sc.sqrt_alphas_cumprod[t] * sc.sqrt_recip_alphas_cumprod[t] - 1.0) < 1e-14);
        CHECK(std::fabs(sc.sqrt_alphas_cumprod[t] * sc.sqrt_alphas_cumprod[t] +
                        sc.sqrt_one_minus_alphas_cumprod[t] * sc.sqrt_one_minus_alphas_cumprod[t] - 1.0) <
              1e-14);
        // x0 = x/sqrt(abar) - sqrt(1/abar - 1) eps inverts q_sample: the ratio of the
        // eps coefficients is sqrt(1 - abar)/sqrt(abar) both ways (relative 1e-12).
        const double r = sc.sqrt_recipm1_alphas_cumprod[t] * sc.sqrt_alphas_cumprod[t];
        CHECK(std::fabs(r - sc.sqrt_one_minus_alphas_cumprod[t]) <=
              1e-12 * sc.sqrt_one_minus_alphas_cumprod[t]);
      }
    }
}

TEST_CASE("schedule extract gathers per-sample float32 coefficients", "[schedule]") {
  const Schedule sc = Schedule::make(BetaSchedule::Linear, 10);
  Tensor c = sc.extract(sc.betas, {3, 0, 9, 3});
  REQUIRE(c.shape() == Shape{4});
  const std::vector<float> v = c.to_vector();
  CHECK(v[0] == static_cast<float>(sc.betas[3]));
  CHECK(v[1] == static_cast<float>(sc.betas[0]));
  CHECK(v[2] == static_cast<float>(sc.betas[9]));
  REQUIRE_THROWS_WITH(sc.extract(sc.betas, {10}), Catch::Contains("t[0] = 10") && Catch::Contains("[0, 10)"));
  REQUIRE_THROWS_WITH(sc.extract(sc.betas, {-1}), Catch::Contains("t[0] = -1"));
  REQUIRE_THROWS_WITH(sc.extract({1.0, 2.0}, {0}), Catch::Contains("T = 10"));
}

TEST_CASE("schedules match seed 003's torch formulas (float64 and the seed's float32)", "[schedule][torch]") {
  ref::TempDir dir("dd_schedule");
  REQUIRE(ref::run_torch_ref("schedules " + dir.str() + " 1000 7") == 0);
  for (BetaSchedule s : kAll)
    for (int T : {1000, 7}) {
      const Schedule sc = Schedule::make(s, T);
      const std::string name = models::beta_schedule_name(s);
      for (const Named& n : kBuffers) {
        const std::string stem = dir.file(name + "_" + std::to_string(T) + "_" + n.name);
        INFO(name << " T=" << T << " " << n.name);
        std::size_t worst = 0;
        // Same formulas in float64 (torch's linspace, sequential cumprod): only
        // libm-vs-torch ulps of cos/exp/sqrt remain, so 1e-12 relative per element.
        // One exception, measured: torch's vectorized cos differs from glibc's by
        // 1 ulp on 28 of the 1001 cosine points, and 1 - abar_t/abar_{t-1} turns
        // that into ~2e-16 absolute on betas of ~1e-4 (2e-12 relative, t = 14);
        // the betas-derived posterior variance inherits it. For cosine those two
        // are judged as 1e-12 relative plus 1e-15 absolute (5 ulps of 1, the
        // scale the subtraction happens at).
        const std::vector<double> r64 = ref::read_raw<double>(stem + ".f64");
        const double e64 = max_rel(sc.*n.buf, r64, &worst);
        INFO("float64: max rel err " << e64 << " at t=" << worst);
        const bool cos_cancel = s == BetaSchedule::Cosine && (std::string(n.name) == "betas" ||
                                                              std::string(n.name) == "posterior_variance");
        if (!cos_cancel) {
          CHECK(e64 <= 1e-12);
        } else {
          for (std::size_t i = 0; i < r64.size(); ++i) {
            INFO("t=" << i << " ours " << (sc.*n.buf)[i] << " torch " << r64[i]);
            CHECK(std::fabs((sc.*n.buf)[i] - r64[i]) <= 1e-12 * std::fabs(r64[i]) + 1e-15);
          }
        }
        // The seed itself computes in float32. Measured worst per-element relative
        // distance (our float64 is the accurate one): <= 7e-7 for betas, alphas
        // and cumulative products of linear/quadratic/sigmoid; up to 1.7e-4 where
        // 1 - abar cancels (sqrt_one_minus, posterior variance, recipm1) and
        // 7.5e-4 for cosine (1 - abar_t/abar_{t-1} in float32).
        const bool cancels = std::string(n.name) == "sqrt_one_minus_alphas_cumprod" ||
                             std::string(n.name) == "posterior_variance" ||
                             std::string(n.name) == "sqrt_recipm1_alphas_cumprod";
        const double tol32 = (s == BetaSchedule::Cosine || cancels) ? 1e-3 : 1e-6;
        const double e32 = max_rel(sc.*n.buf, ref::read_raw<float>(stem + ".f32"), &worst);
        INFO("float32 seed code: max rel err " << e32 << " at t=" << worst << " (tol " << tol32 << ")");
        CHECK(e32 <= tol32);
      }
    }
}

TEST_CASE("zero terminal SNR: the rescaled schedule keeps abar_0, ends at abar = 0, against diffusers", "[schedule][torch]") {
  for (BetaSchedule s : kAll) {
    INFO(models::beta_schedule_name(s));
    const std::vector<double> betas = models::make_betas(s, 1000);
    const Schedule z = Schedule::make(s, 1000, true), plain = Schedule::make(s, 1000);
    CHECK(z.zero_terminal_snr());
    CHECK_FALSE(plain.zero_terminal_snr());
    CHECK(z.alphas_cumprod.back() == 0.0);
    CHECK(z.betas.back() == 1.0);
    CHECK(std::fabs(z.alphas_cumprod[0] - plain.alphas_cumprod[0]) <= 1e-15);
    // sqrt(abar) is an affine map of the original's: (sqrt(abar) - last) * first / (first - last).
    const double first = plain.sqrt_alphas_cumprod[0], last = plain.sqrt_alphas_cumprod.back();
    for (std::size_t t = 0; t < 1000; t += 37)
      CHECK(std::fabs(z.sqrt_alphas_cumprod[t] - (plain.sqrt_alphas_cumprod[t] - last) * first / (first - last)) <=
            1e-12);
    for (double v : z.posterior_variance) CHECK(std::isfinite(v));
    // diffusers' rescale_zero_terminal_snr on the same float64 betas: the same operations, ~1 ulp each.
    dd::test::TempDir dir("zero_snr");
    {
      std::ofstream f(dir.file("betas.json"));
      f << nlohmann::json(betas).dump();
    }
    dd::test::run_reference_script("zero_snr_diffusers.py", {dir.file("betas.json"), dir.file("out.json")});
    std::ifstream in(dir.file("out.json"));
    const std::vector<double> ref = nlohmann::json::parse(in).get<std::vector<double>>();
    std::size_t worst = 0;
    const double err = max_rel(z.betas, ref, &worst);
    INFO("worst beta " << worst << ": " << z.betas[worst] << " vs " << ref[worst]);
    CHECK(err <= 1e-12);
  }
  REQUIRE_THROWS_WITH(Schedule::make(BetaSchedule::Linear, 1, true), Catch::Contains("T >= 2"));
}
