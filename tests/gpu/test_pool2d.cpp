// GPU pools (kernels/cuda/pool2d.cu) vs the CPU backend, on odd shapes and Inception-v3's: both
// add in the same order (float for max/avg, double for the global mean), so bitwise (tolerance 0).
#include <catch2/catch.hpp>

#include <cmath>

#include "kernels/pool2d.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu: max, avg and global pools match the cpu", "[gpu][pool2d]") {
  DD_TEST_RANDOM(rng);
  struct Case {
    Shape x;
    kernels::Pool2dGeometry g;
  };
  const std::vector<Case> cases = {
      {{1, 1, 1, 1}, {1, 1, 0, true}},      {{2, 7, 9, 5}, {3, 2, 0, true}},   {{1, 8, 6, 3}, {3, 1, 1, false}},
      {{2, 5, 5, 3}, {2, 2, 1, true}},      {{1, 9, 7, 4}, {5, 3, 2, false}},  {{1, 13, 11, 3}, {4, 3, 2, true}},
      {{4, 147, 147, 64}, {3, 2, 0, true}},  // Inception's MaxPool_3a (after Conv2d_2b)
      {{4, 35, 35, 192}, {3, 1, 1, false}},  // FIDInceptionA's branch_pool
      {{4, 8, 8, 1280}, {3, 1, 1, false}},   // FIDInceptionE's branch_pool (E_1: avg)
      {{4, 8, 8, 2048}, {3, 1, 1, true}},    // E_2's max pool
  };
  for (const Case& c : cases) {
    INFO(shape_str(c.x) << " kernel " << c.g.kernel << " stride " << c.g.stride << " pad " << c.g.pad
                        << " count_include_pad " << c.g.count_include_pad);
    const Tensor x = from_double(c.x, rng.normal_f32(shape_numel(c.x)));
    const Shape ys = kernels::pool2d_out_shape("test", x, c.g);
    const Tensor dy = from_double(ys, rng.normal_f32(shape_numel(ys)));
    const Tensor gx = x.to(Device::CUDA), gdy = dy.to(Device::CUDA);
    expect_close("max forward", kernels::max_pool2d_forward(gx, c.g).to(Device::CPU),
                 kernels::max_pool2d_forward(x, c.g), 0.0);
    expect_close("max backward", kernels::max_pool2d_backward(gx, gdy, c.g).to(Device::CPU),
                 kernels::max_pool2d_backward(x, dy, c.g), 0.0);
    expect_close("avg forward", kernels::avg_pool2d_forward(gx, c.g).to(Device::CPU),
                 kernels::avg_pool2d_forward(x, c.g), 0.0);
    expect_close("avg backward", kernels::avg_pool2d_backward(gx, gdy, c.g).to(Device::CPU),
                 kernels::avg_pool2d_backward(x, dy, c.g), 0.0);
    std::vector<float> tv = x.to_vector();
    for (float& v : tv) v = std::round(v);
    const Tensor xt = Tensor::from_vector(c.x, tv);
    expect_close("max backward, ties", kernels::max_pool2d_backward(xt.to(Device::CUDA), gdy, c.g).to(Device::CPU),
                 kernels::max_pool2d_backward(xt, dy, c.g), 0.0);
    const Tensor gy = from_double({c.x[0], c.x[3]}, rng.normal_f32(c.x[0] * c.x[3]));
    expect_close("global forward", kernels::global_avg_pool_forward(gx).to(Device::CPU),
                 kernels::global_avg_pool_forward(x), 0.0);
    expect_close("global backward", kernels::global_avg_pool_backward(gx, gy.to(Device::CUDA)).to(Device::CPU),
                 kernels::global_avg_pool_backward(x, gy), 0.0);
  }
}
