// kernels/cuda/resize.cu, run on the CPU through the host emulation, vs the CPU backend: the same
// taps (kernels/resize_math.h) and explicit FMAs in the same order, so bitwise (tolerance 0).
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include "tests/emu/emu_test_util.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;

TEST_CASE("emu: bilinear resize matches the cpu", "[emu][resize]") {
  DD_TEST_RANDOM(rng);
  struct Case {
    Shape x;
    int oh, ow;
  };
  const std::vector<Case> cases = {{{1, 1, 1, 2}, 3, 2},   {{2, 5, 7, 3}, 13, 9}, {{1, 9, 8, 3}, 4, 5},
                                   {{1, 6, 4, 1}, 1, 1},   {{2, 5, 7, 3}, 5, 11}, {{1, 28, 28, 1}, 61, 47},
                                   {{1, 17, 23, 5}, 40, 9}};
  for (const Case& c : cases) {
    INFO(shape_str(c.x) << " -> " << c.oh << "x" << c.ow);
    const Tensor x = rnd(rng, c.x);
    expect_close("resize", kernels::emu::resize_bilinear(x, c.oh, c.ow), kernels::cpu::resize_bilinear(x, c.oh, c.ow),
                 0.0);
  }
}
