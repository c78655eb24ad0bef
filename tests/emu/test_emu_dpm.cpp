// kernels/cuda/dpm_solver_step.cu on the CPU emulation against the CPU backend.
#include <catch2/catch.hpp>

#include "tests/emu/emu_ops.h"
#include "tests/emu/emu_test_util.h"

using namespace dd;
using namespace dd::test;
using namespace dd::emu_test;

TEST_CASE("emu: the fused dpm-solver step matches the cpu for orders 1 to 3", "[emu][dpm]") {
  DD_TEST_RANDOM(rng);
  for (const Shape& s : {Shape{1, 1, 1, 1}, Shape{2, 5, 3, 3}}) {
    const Tensor x = rnd(rng, s), eps = rnd(rng, s), m1 = rnd(rng, s), m2 = rnd(rng, s);
    for (int order : {1, 2, 3}) {
      INFO(shape_str(s) << " order " << order);
      kernels::DpmStepCoefs k{0.8f, 0.6f, 0.7f, 0.9f, order >= 2 ? -0.45f : 0.0f, order >= 3 ? 0.1f : 0.0f};
      Tensor me, mc;
      const Tensor pe = kernels::emu::dpm_solver_step(x, eps, order >= 2 ? m1 : Tensor(), order >= 3 ? m2 : Tensor(), k, &me);
      const Tensor pc = kernels::cpu::dpm_solver_step(x, eps, order >= 2 ? m1 : Tensor(), order >= 3 ? m2 : Tensor(), k, &mc);
      // The same float expressions (one may contract a multiply-add): 1e-6 of the terms' size (~4).
      expect_close("m0", me, mc, 1e-6, 4.0);
      expect_close("next", pe, pc, 1e-6, 4.0);
    }
  }
}
