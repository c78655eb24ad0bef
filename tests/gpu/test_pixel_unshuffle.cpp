// GPU vs CPU for the Downsample rearrange: permutations, so bitwise (tolerance 0).
#include <catch2/catch.hpp>

#include "kernels/pixel_unshuffle.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu: pixel_unshuffle forward and backward match the cpu", "[gpu][pixel_unshuffle]") {
  DD_TEST_RANDOM(rng);
  for (Shape s : {Shape{1, 2, 2, 1}, Shape{1, 2, 6, 3}, Shape{2, 6, 4, 3}, Shape{3, 18, 10, 33}}) {
    INFO("x " << shape_str(s));
    const Tensor x = from_double(s, rng.normal(shape_numel(s)));
    expect_close("forward", kernels::pixel_unshuffle_forward(x.to(Device::CUDA)).to(Device::CPU),
                 kernels::pixel_unshuffle_forward(x), 0.0);
    const Shape ys = {s[0], s[1] / 2, s[2] / 2, 4 * s[3]};
    const Tensor dy = from_double(ys, rng.normal(shape_numel(ys)));
    expect_close("backward", kernels::pixel_unshuffle_backward(dy.to(Device::CUDA)).to(Device::CPU),
                 kernels::pixel_unshuffle_backward(dy), 0.0);
  }
}
