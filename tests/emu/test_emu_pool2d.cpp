// kernels/cuda/pool2d.cu, run on the CPU through the host emulation, vs the CPU backend. Both
// backends add in the same order, so every comparison is bitwise (tolerance 0).
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include <cmath>

#include "tests/emu/emu_test_util.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;

TEST_CASE("emu: max, avg and global pools match the cpu", "[emu][pool2d]") {
  DD_TEST_RANDOM(rng);
  struct Case {
    Shape x;
    kernels::Pool2dGeometry g;
  };
  const std::vector<Case> cases = {
      {{1, 1, 1, 1}, {1, 1, 0, true}},   {{2, 7, 9, 5}, {3, 2, 0, true}},  {{1, 8, 6, 3}, {3, 1, 1, false}},
      {{2, 5, 5, 3}, {2, 2, 1, true}},   {{1, 9, 7, 4}, {5, 3, 2, false}}, {{1, 13, 11, 3}, {4, 3, 2, true}},
      {{1, 6, 7, 70}, {3, 2, 1, false}},
  };
  for (const Case& c : cases) {
    INFO(shape_str(c.x) << " kernel " << c.g.kernel << " stride " << c.g.stride << " pad " << c.g.pad
                        << " count_include_pad " << c.g.count_include_pad);
    Tensor x = rnd(rng, c.x);
    const Shape ys = kernels::pool2d_out_shape("test", x, c.g);
    const Tensor dy = rnd(rng, ys);
    expect_close("max forward", kernels::emu::max_pool2d_forward(x, c.g), kernels::cpu::max_pool2d_forward(x, c.g), 0.0);
    expect_close("max backward", kernels::emu::max_pool2d_backward(x, dy, c.g),
                 kernels::cpu::max_pool2d_backward(x, dy, c.g), 0.0);
    expect_close("avg forward", kernels::emu::avg_pool2d_forward(x, c.g), kernels::cpu::avg_pool2d_forward(x, c.g), 0.0);
    expect_close("avg backward", kernels::emu::avg_pool2d_backward(x, dy, c.g),
                 kernels::cpu::avg_pool2d_backward(x, dy, c.g), 0.0);
    // Ties everywhere: both pick the first maximum.
    std::vector<float> tv = x.to_vector();
    for (float& v : tv) v = std::round(v);
    const Tensor xt = Tensor::from_vector(c.x, tv);
    expect_close("max backward, ties", kernels::emu::max_pool2d_backward(xt, dy, c.g),
                 kernels::cpu::max_pool2d_backward(xt, dy, c.g), 0.0);
    const Tensor gdy = rnd(rng, {c.x[0], c.x[3]});
    expect_close("global forward", kernels::emu::global_avg_pool_forward(x), kernels::cpu::global_avg_pool_forward(x),
                 0.0);
    expect_close("global backward", kernels::emu::global_avg_pool_backward(x, gdy),
                 kernels::cpu::global_avg_pool_backward(x, gdy), 0.0);
  }
}
