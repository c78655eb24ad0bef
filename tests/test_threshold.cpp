// Dynamic thresholding's per-sample scale (kernels/threshold.h) on the CPU backend against the
// float64 reference, its edge cases, and the samplers' step kernels applying it.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "kernels/ddim_step.h"
#include "kernels/dpm_solver_step.h"
#include "kernels/threshold.h"
#include "tests/support/compare.h"
#include "tests/support/threshold_reference.h"

using namespace dd;
using namespace dd::test;

namespace {
void check_scales(const Tensor& x0, double ratio, double max_value) {
  const std::vector<float> got = kernels::dynamic_threshold_scale(x0, ratio, max_value).to_vector();
  const std::vector<double> want = threshold_scale_reference(x0, ratio, max_value);
  REQUIRE(got.size() == want.size());
  for (std::size_t b = 0; b < got.size(); ++b) {
    INFO("sample " << b << " ratio " << ratio << " max " << max_value << ": " << got[b] << " vs " << want[b]);
    if (std::isnan(want[b]))
      CHECK(std::isnan(got[b]));
    else
      CHECK(std::fabs(got[b] - want[b]) <= threshold_scale_tolerance(want[b]));
  }
}
}  // namespace

TEST_CASE("dynamic threshold: the per-sample quantile of |x0| against the float64 reference", "[threshold]") {
  DD_TEST_RANDOM(rng);
  for (const Shape& s : {Shape{1, 1, 1, 1}, Shape{3, 5, 7, 3}, Shape{2, 32, 32, 3}, Shape{4, 9, 1, 1}}) {
    const Tensor x0 = from_double(s, rng.normal_f32(shape_numel(s), 2.5));
    for (double ratio : {0.0, 0.5, 0.9, 0.995, 1.0})
      for (double max_value : {1.0, 1.7, 100.0}) check_scales(x0, ratio, max_value);
  }
}

TEST_CASE("dynamic threshold: ties, the clamp to [1, max], NaN, and bad arguments", "[threshold]") {
  // Ties: every order statistic equal.
  check_scales(Tensor::full({2, 3, 3, 1}, -4.0f), 0.7, 10.0);
  // All below 1: the scale is 1 (no thresholding); all far above max: max.
  check_scales(Tensor::full({1, 4, 4, 1}, 0.25f), 0.995, 3.0);
  CHECK(kernels::dynamic_threshold_scale(Tensor::full({1, 4, 4, 1}, 0.25f), 0.995, 3.0).to_vector()[0] == 1.0f);
  CHECK(kernels::dynamic_threshold_scale(Tensor::full({1, 4, 4, 1}, 50.0f), 0.995, 3.0).to_vector()[0] == 3.0f);
  // A NaN poisons its own sample only.
  Tensor x = Tensor::full({2, 2, 2, 1}, 2.0f);
  x.data()[1] = NAN;
  const std::vector<float> s = kernels::dynamic_threshold_scale(x, 0.5, 5.0).to_vector();
  CHECK(std::isnan(s[0]));
  CHECK(s[1] == 2.0f);
  REQUIRE_THROWS_WITH(kernels::dynamic_threshold_scale(x, 1.5, 2.0), Catch::Contains("[0, 1]"));
  REQUIRE_THROWS_WITH(kernels::dynamic_threshold_scale(x, 0.5, 0.5), Catch::Contains("sample_max_value"));
}

TEST_CASE("dynamic threshold: the ddim and dpm-solver steps clamp x0 to [-s, s] and divide by s", "[threshold]") {
  DD_TEST_RANDOM(rng);
  const Shape shape{2, 3, 3, 1};
  const Tensor x = from_double(shape, rng.uniform(18, -3.0, 3.0)), out = from_double(shape, rng.uniform(18, -1.0, 1.0));
  const Tensor thresh = Tensor::from_vector({2}, {1.5f, 2.25f});
  kernels::DdimStepCoefs c;
  c.sqrt_abar = 0.5f;
  c.sqrt_one_minus_abar = 0.8660254f;
  c.sqrt_abar_prev = 0.7f;
  c.dir = 0.6f;
  c.clip = 1.0f;  // thresholding replaces clipping
  c.rederive_eps = true;
  Tensor x0;
  const std::vector<float> prev = kernels::ddim_step(x, out, c, 0, 0, &x0, thresh).to_vector();
  kernels::DpmStepCoefs k{0.5f, 0.8660254f, 0.3f, 0.6f, 0.0f, 0.0f};
  Tensor m0;
  const std::vector<float> next = kernels::dpm_solver_step(x, out, Tensor(), Tensor(), k, &m0, thresh).to_vector();
  const std::vector<float> xv = x.to_vector(), ov = out.to_vector(), x0v = x0.to_vector(), m0v = m0.to_vector();
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const double s = i < 9 ? 1.5 : 2.25;
    const double raw = (double(xv[i]) - double(c.sqrt_one_minus_abar) * ov[i]) / double(c.sqrt_abar);
    const double want_x0 = std::min(std::max(raw, -s), s) / s;
    const double eps = (double(xv[i]) - double(c.sqrt_abar) * want_x0) / double(c.sqrt_one_minus_abar);
    // A handful of float32 operations on values up to ~6: 4e-6.
    CHECK(std::fabs(x0v[i] - want_x0) <= 4e-6);
    CHECK(std::fabs(prev[i] - (double(c.sqrt_abar_prev) * want_x0 + double(c.dir) * eps)) <= 4e-6);
    CHECK(std::fabs(m0v[i] - want_x0) <= 4e-6);
    CHECK(std::fabs(next[i] - (double(k.a) * xv[i] + double(k.b) * want_x0)) <= 4e-6);
  }
  REQUIRE_THROWS_WITH(kernels::ddim_step(x, out, c, 0, 0, nullptr, Tensor::full({3}, 1.0f)),
                      Catch::Contains("thresh must be float32 [2]"));
}
