// kernels/cuda/conv2d_strided.cu, run on the CPU through the host emulation, vs the CPU backend:
// forward, dx, dw (with and without a split reduction) and dbias on tiny odd geometries, square and
// rectangular (Inception-v3's 1x7, 7x1, 1x3, 3x1) kernels.
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include "tests/emu/emu_test_util.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;

TEST_CASE("emu: strided conv2d kernels match the cpu", "[emu][conv2d]") {
  DD_TEST_RANDOM(rng);
  struct Case {
    int64_t b, h, w, ci, co, kh, kw;
    kernels::Conv2dGeometry geo;
  };
  const std::vector<Case> cases = {
      {1, 4, 4, 3, 2, 3, 3, {2, 0, 0, 1, 1}},    // diffusers' Downsample2D(padding=0)
      {2, 5, 7, 3, 17, 3, 3, {2, 1, 1, 1, 1}},   // Co past one 16-wide tile
      {1, 7, 5, 2, 3, 3, 3, {3, 2, 0, 1, 2}},    // stride 3, every side different
      {2, 12, 12, 20, 4, 3, 3, {2, 0, 0, 1, 1}}, // dw: 72 pixels x 180 taps, dx: K*K*Co = 36
      {1, 40, 40, 2, 3, 3, 3, {2, 0, 0, 1, 1}},  // 400 pixels: dbias/dw reductions split and folded
      {1, 4, 4, 64, 5, 3, 3, {2, 0, 0, 1, 1}},   // forward: K*K*Ci = 576 split in two, the bias added by the fold
      {2, 5, 9, 3, 17, 1, 7, {1, 0, 3, 0, 3}},   // 1x7, padding (0, 3)
      {1, 9, 5, 5, 3, 7, 1, {1, 3, 0, 3, 0}},    // 7x1, padding (3, 0)
      {2, 6, 7, 3, 5, 1, 3, {1, 0, 0, 0, 0}},    // 1x3, no padding: a plain geometry with a non-square kernel
      {1, 9, 8, 5, 4, 3, 1, {2, 1, 0, 0, 0}},    // 3x1, stride 2, uneven padding
      {1, 4, 3, 40, 3, 1, 7, {1, 0, 3, 0, 3}},   // forward: KH*KW*Ci = 280 split in two
  };
  for (const Case& c : cases)
    for (bool with_bias : {true, false}) {
      const int64_t ho = (c.h + c.geo.pad_top + c.geo.pad_bottom - c.kh) / c.geo.stride + 1;
      const int64_t wo = (c.w + c.geo.pad_left + c.geo.pad_right - c.kw) / c.geo.stride + 1;
      INFO(str_cat("B", c.b, " ", c.h, "x", c.w, " Ci", c.ci, " Co", c.co, " K", c.kh, "x", c.kw, " s", c.geo.stride,
                   with_bias ? " bias" : ""));
      Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.kh, c.kw, c.ci}, 0.5);
      Tensor bias = with_bias ? rnd(rng, {c.co}) : Tensor();
      Tensor dy = rnd(rng, {c.b, ho, wo, c.co});
      // fp32 sums in another order than the CPU: 1e-4 (as tests/gpu).
      expect_close("forward", kernels::emu::conv2d_strided_forward(x, w, bias, c.geo),
                   kernels::cpu::conv2d_strided_forward(x, w, bias, c.geo), 1e-4);
      kernels::Conv2dGrads g = kernels::emu::conv2d_strided_backward(x, w, dy, c.geo, true, true, true);
      kernels::Conv2dGrads e = kernels::cpu::conv2d_strided_backward(x, w, dy, c.geo, true, true, true);
      expect_close("dx", g.dx, e.dx, 1e-4);
      expect_close("dw", g.dw, e.dw, 1e-4);
      expect_close("dbias", g.dbias, e.dbias, 1e-4);
      kernels::Conv2dGrads only = kernels::emu::conv2d_strided_backward(x, w, dy, c.geo, false, true, false);
      CHECK_FALSE(only.dx.defined());
      CHECK_FALSE(only.dbias.defined());
      CHECK(only.dw.to_vector() == g.dw.to_vector());
    }
}
