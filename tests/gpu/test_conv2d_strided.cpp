// GPU strided conv (kernels/cuda/conv2d_strided.cu) vs the CPU backend, including the
// ddpm-cifar10-32 downsamplers' shapes and Inception-v3's rectangular kernels, and bitwise repeatability.
#include <catch2/catch.hpp>

#include "engine/error.h"
#include "kernels/conv2d.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("gpu strided conv2d matches the cpu", "[gpu][conv2d]") {
  DD_TEST_RANDOM(rng);
  struct Case {
    int64_t b, h, w, ci, co, kh, kw;
    kernels::Conv2dGeometry geo;
  };
  const std::vector<Case> cases = {
      {2, 32, 32, 128, 128, 3, 3, {2, 0, 0, 1, 1}},  // ddpm-cifar10-32's first Downsample2D
      {3, 16, 16, 256, 256, 3, 3, {2, 0, 0, 1, 1}},
      {2, 5, 7, 3, 17, 3, 3, {2, 1, 1, 1, 1}},
      {1, 7, 5, 2, 3, 3, 3, {3, 2, 0, 1, 2}},
      {2, 17, 17, 128, 192, 1, 7, {1, 0, 3, 0, 3}},  // Inception-v3 Mixed_6b's 1x7 and 7x1
      {2, 17, 17, 128, 192, 7, 1, {1, 3, 0, 3, 0}},
      {2, 8, 8, 384, 384, 1, 3, {1, 0, 1, 0, 1}},    // Mixed_7b's 1x3 and 3x1
      {2, 8, 8, 384, 384, 3, 1, {1, 1, 0, 1, 0}},
      {2, 35, 35, 288, 384, 3, 3, {2, 0, 0, 0, 0}},  // Mixed_6a's 3x3 stride 2
      {1, 9, 11, 5, 7, 1, 3, {1, 0, 0, 0, 0}},       // a plain geometry with a non-square kernel
  };
  for (const Case& c : cases) {
    const int64_t ho = (c.h + c.geo.pad_top + c.geo.pad_bottom - c.kh) / c.geo.stride + 1;
    const int64_t wo = (c.w + c.geo.pad_left + c.geo.pad_right - c.kw) / c.geo.stride + 1;
    INFO(str_cat("B", c.b, " ", c.h, "x", c.w, " Ci", c.ci, " Co", c.co, " K", c.kh, "x", c.kw, " s", c.geo.stride));
    Tensor x = from_double({c.b, c.h, c.w, c.ci}, rng.normal_f32(c.b * c.h * c.w * c.ci));
    Tensor w = from_double({c.co, c.kh, c.kw, c.ci}, rng.normal_f32(c.co * c.kh * c.kw * c.ci, 0.1));
    Tensor bias = from_double({c.co}, rng.normal_f32(c.co));
    Tensor dy = from_double({c.b, ho, wo, c.co}, rng.normal_f32(c.b * ho * wo * c.co));
    Tensor gx = x.to(Device::CUDA), gw = w.to(Device::CUDA), gb = bias.to(Device::CUDA), gdy = dy.to(Device::CUDA);
    Tensor y = kernels::conv2d_forward(gx, gw, gb, c.geo);
    REQUIRE(y.device() == Device::CUDA);
    // fp32 sums of up to 2592 terms in another order: 1e-4.
    expect_close("forward", y.to(Device::CPU), kernels::conv2d_forward(x, w, bias, c.geo), 1e-4);
    kernels::Conv2dGrads g = kernels::conv2d_backward(gx, gw, gdy, c.geo, true, true, true);
    kernels::Conv2dGrads e = kernels::conv2d_backward(x, w, dy, c.geo, true, true, true);
    expect_close("dx", g.dx.to(Device::CPU), e.dx, 1e-4);
    expect_close("dw", g.dw.to(Device::CPU), e.dw, 1e-4);
    expect_close("dbias", g.dbias.to(Device::CPU), e.dbias, 1e-4);
    kernels::Conv2dGrads g2 = kernels::conv2d_backward(gx, gw, gdy, c.geo, true, true, true);
    CHECK(g2.dw.to(Device::CPU).to_vector() == g.dw.to(Device::CPU).to_vector());
    CHECK(g2.dx.to(Device::CPU).to_vector() == g.dx.to(Device::CPU).to_vector());
  }
}
