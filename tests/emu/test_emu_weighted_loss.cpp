// The per-sample weighted loss (min-SNR weighting) of kernels/cuda/loss.cu on the CPU emulation.
#include <catch2/catch.hpp>

#include "tests/emu/emu_ops.h"
#include "tests/emu/emu_test_util.h"

using namespace dd;
using namespace dd::test;
using namespace dd::emu_test;

TEST_CASE("emu: the weighted loss forward and backward match the cpu", "[emu][loss]") {
  DD_TEST_RANDOM(rng);
  for (const Shape& s : {Shape{1, 1, 1, 1}, Shape{3, 5, 7, 2}}) {
    const Tensor p = rnd(rng, s, 1.5), t = rnd(rng, s), w = uni(rng, {s[0]}, 0.1, 5.0);
    for (kernels::LossType type : {kernels::LossType::L1, kernels::LossType::L2, kernels::LossType::Huber}) {
      INFO(kernels::loss_type_name(type) << " " << shape_str(s));
      // Both sum in double (different order) and round once: 1e-6 (as the unweighted test).
      expect_close("forward", kernels::emu::loss_forward_weighted(p, t, type, w),
                   kernels::cpu::loss_forward_weighted(p, t, type, w), 1e-6);
      // The unweighted float expressions, then one float product: bitwise.
      expect_close("backward", kernels::emu::loss_backward_weighted(p, t, type, w, Tensor::full({}, 0.37f)),
                   kernels::cpu::loss_backward_weighted(p, t, type, w, Tensor::full({}, 0.37f)), 0.0);
    }
  }
}
