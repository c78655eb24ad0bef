// kernels/cuda/ddim_step.cu on the CPU emulation against the CPU backend.
#include <catch2/catch.hpp>

#include "tests/emu/emu_ops.h"
#include "tests/emu/emu_test_util.h"

using namespace dd;
using namespace dd::test;
using namespace dd::emu_test;

TEST_CASE("emu: the fused ddim step matches the cpu (with and without noise and clipping)", "[emu][ddim]") {
  DD_TEST_RANDOM(rng);
  for (const Shape& s : {Shape{1, 1, 1, 1}, Shape{2, 3, 5, 3}, Shape{3, 7, 5, 1}}) {  // sizes not multiples of 4
    const Tensor x = rnd(rng, s, 2.0), eps = rnd(rng, s);
    for (float sigma : {0.0f, 0.37f}) {
      for (float clip : {0.0f, 1.0f}) {
        INFO(shape_str(s) << " sigma " << sigma << " clip " << clip);
        kernels::DdimStepCoefs c;
        c.sqrt_abar = 0.61f;
        c.sqrt_one_minus_abar = 0.79f;
        c.sqrt_abar_prev = 0.7f;
        c.dir = 0.6f;
        c.sigma = sigma;
        c.clip = clip;
        c.x_coef = clip > 0.0f ? 0.3f : 0.0f;  // the DDPM x0-form step with clipping
        c.rederive_eps = sigma > 0.0f && clip == 0.0f;
        Tensor x0e, x0c;
        const Tensor pe = kernels::emu::ddim_step(x, eps, c, 77, 1234, &x0e);
        const Tensor pc = kernels::cpu::ddim_step(x, eps, c, 77, 1234, &x0c);
        // The same float expressions (one may contract a multiply-add): 1e-6 of the terms' size (~4).
        expect_close("x0", x0e, x0c, 1e-6, 4.0);
        expect_close("prev", pe, pc, 1e-6, 4.0);
      }
    }
  }
}
