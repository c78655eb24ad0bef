// kernels/cuda/threshold.cu (the bisection over bit patterns) on the CPU emulation against the CPU
// backend and the float64 reference, and the step kernels' thresholded x0.
#include <catch2/catch.hpp>

#include <cmath>

#include "tests/emu/emu_ops.h"
#include "tests/emu/emu_test_util.h"
#include "tests/support/threshold_reference.h"

using namespace dd;
using namespace dd::test;
using namespace dd::emu_test;

TEST_CASE("emu: the dynamic-threshold scale matches the cpu and the float64 reference", "[emu][threshold]") {
  DD_TEST_RANDOM(rng);
  for (const Shape& s : {Shape{1, 1, 1, 1}, Shape{3, 5, 7, 3}, Shape{2, 17, 19, 1}}) {  // n below and above 256
    Tensor x0 = rnd(rng, s, 2.5);
    if (s[0] == 3) x0.data()[4] = 0.0f;  // a zero (bit pattern 0) among the values
    for (double ratio : {0.0, 0.5, 0.995, 1.0}) {
      INFO(shape_str(s) << " ratio " << ratio);
      // Both select the same two float32 order statistics and share the lerp: bitwise.
      expect_close("scale", kernels::emu::dynamic_threshold_scale(x0, ratio, 1.7),
                   kernels::cpu::dynamic_threshold_scale(x0, ratio, 1.7), 0.0);
      const std::vector<float> e = kernels::emu::dynamic_threshold_scale(x0, ratio, 100.0).to_vector();
      const std::vector<double> r = threshold_scale_reference(x0, ratio, 100.0);
      for (std::size_t b = 0; b < e.size(); ++b) CHECK(std::fabs(e[b] - r[b]) <= threshold_scale_tolerance(r[b]));
    }
  }
  Tensor ties = Tensor::full({2, 3, 3, 1}, -4.0f);
  ties.data()[10] = NAN;  // the second sample
  const std::vector<float> s = kernels::emu::dynamic_threshold_scale(ties, 0.7, 10.0).to_vector();
  CHECK(s[0] == 4.0f);
  CHECK(std::isnan(s[1]));
}

TEST_CASE("emu: the ddim and dpm steps apply the per-sample thresholds as the cpu", "[emu][threshold]") {
  DD_TEST_RANDOM(rng);
  const Shape s{3, 5, 7, 1};
  const Tensor x = rnd(rng, s, 2.0), out = rnd(rng, s), thresh = uni(rng, {3}, 1.0, 2.5);
  kernels::DdimStepCoefs c;
  c.sqrt_abar = 0.5f;
  c.sqrt_one_minus_abar = 0.8660254f;
  c.sqrt_abar_prev = 0.7f;
  c.dir = 0.6f;
  c.rederive_eps = true;
  Tensor x0e, x0c;
  const Tensor pe = kernels::emu::ddim_step(x, out, c, 3, 99, &x0e, thresh);
  const Tensor pc = kernels::cpu::ddim_step(x, out, c, 3, 99, &x0c, thresh);
  // The same float expressions (one may contract a multiply-add): 1e-6 of the terms' size (~4).
  expect_close("x0", x0e, x0c, 1e-6, 4.0);
  expect_close("prev", pe, pc, 1e-6, 4.0);
  kernels::DpmStepCoefs k{0.5f, 0.8660254f, 0.3f, 0.6f, 0.0f, 0.0f};
  Tensor me, mc;
  expect_close("dpm next", kernels::emu::dpm_solver_step(x, out, Tensor(), Tensor(), k, &me, thresh),
               kernels::cpu::dpm_solver_step(x, out, Tensor(), Tensor(), k, &mc, thresh), 1e-6, 4.0);
  expect_close("dpm m0", me, mc, 1e-6, 4.0);
}
