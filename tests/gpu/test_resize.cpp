// GPU bilinear resize (kernels/cuda/resize.cu) vs the CPU backend: the same taps and explicit FMAs,
// so bitwise (tolerance 0), on pytorch-fid's resizes to 299x299 and odd up/downscales.
#include <catch2/catch.hpp>

#include "kernels/resize.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu: bilinear resize matches the cpu", "[gpu][resize]") {
  DD_TEST_RANDOM(rng);
  struct Case {
    Shape x;
    int oh, ow;
  };
  const std::vector<Case> cases = {{{8, 28, 28, 3}, 299, 299}, {{8, 32, 32, 3}, 299, 299}, {{1, 17, 23, 5}, 299, 299},
                                   {{2, 299, 299, 3}, 17, 31}, {{2, 5, 7, 3}, 5, 11},      {{1, 1, 1, 2}, 3, 2},
                                   {{1, 6, 4, 1}, 1, 1}};
  for (const Case& c : cases) {
    INFO(shape_str(c.x) << " -> " << c.oh << "x" << c.ow);
    std::vector<double> v = rng.uniform(shape_numel(c.x), 0.0, 1.0);
    for (double& e : v) e = static_cast<float>(e);
    const Tensor x = from_double(c.x, v);
    expect_close("resize", kernels::resize_bilinear(x.to(Device::CUDA), c.oh, c.ow).to(Device::CPU),
                 kernels::resize_bilinear(x, c.oh, c.ow), 0.0);
  }
}
