// GPU vs CPU for nearest 2x upsampling. The forward is a copy and the backward
// sums each 2x2 block in the CPU's order: bitwise (tolerance 0).
#include <catch2/catch.hpp>

#include "kernels/upsample.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu: upsample2x forward and backward match the cpu", "[gpu][upsample]") {
  DD_TEST_RANDOM(rng);
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{1, 1, 3, 2}, Shape{2, 3, 5, 7}, Shape{3, 17, 9, 33}}) {
    INFO("x " << shape_str(s));
    const Tensor x = from_double(s, rng.normal(shape_numel(s)));
    expect_close("forward", kernels::upsample2x_forward(x.to(Device::CUDA)).to(Device::CPU),
                 kernels::upsample2x_forward(x), 0.0);
    const Shape ys = {s[0], 2 * s[1], 2 * s[2], s[3]};
    const Tensor dy = from_double(ys, rng.normal(shape_numel(ys)));
    expect_close("backward", kernels::upsample2x_backward(dy.to(Device::CUDA)).to(Device::CPU),
                 kernels::upsample2x_backward(dy), 0.0);
  }
}
