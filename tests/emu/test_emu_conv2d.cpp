// kernels/cuda/conv2d.cu, run on the CPU through the host emulation, vs the CPU
// backend: every kernel variant the host code picks (1x1/p0 plain GEMM or
// im2col gather, float4 or scalar loads; dw with and without a split-K fold;
// dbias with one or several row splits; dx through the flipped weights) and every
// need_* mask. Shapes are tiny and odd (256-thread blocks cost 256 fibers each).
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include "tests/emu/emu_test_util.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;

namespace {
struct Case {
  int64_t b, h, w, ci, co, k, p;
  int64_t ho() const { return h + 2 * p - k + 1; }
  int64_t wo() const { return w + 2 * p - k + 1; }
  std::string str() const { return str_cat("B", b, " ", h, "x", w, " Ci", ci, " Co", co, " K", k, " p", p); }
};

void check_case(Random& rng, const Case& c, bool with_bias, int mask) {
  const bool ndx = mask & 1, ndw = mask & 2, ndb = mask & 4;
  const std::string what = c.str() + (with_bias ? " bias" : "") + " mask " + std::to_string(mask);
  INFO(what);
  Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  Tensor bias = with_bias ? rnd(rng, {c.co}) : Tensor();
  Tensor dy = rnd(rng, {c.b, c.ho(), c.wo(), c.co});
  const int p = static_cast<int>(c.p);
  // fp32 sums of K*K*Ci terms in another order than the CPU: 1e-4 (as tests/gpu) of the terms'
  // size (the same sums over |x|, |w|, |b|, |dy|): one pixel plus a bias can cancel far below it.
  const Tensor x_abs = abs_tensor(x), w_abs = abs_tensor(w);
  expect_close("forward " + what, kernels::emu::conv2d_forward(x, w, bias, p),
               kernels::cpu::conv2d_forward(x, w, bias, p), 1e-4,
               max_element_of(kernels::cpu::conv2d_forward(x_abs, w_abs, abs_tensor(bias), p)));
  kernels::Conv2dGrads g = kernels::emu::conv2d_backward(x, w, dy, p, ndx, ndw, ndb);
  kernels::Conv2dGrads e = kernels::cpu::conv2d_backward(x, w, dy, p, ndx, ndw, ndb);
  const kernels::Conv2dGrads size = kernels::cpu::conv2d_backward(x_abs, w_abs, abs_tensor(dy), p, ndx, ndw, ndb);
  CHECK(g.dx.defined() == ndx);
  CHECK(g.dw.defined() == ndw);
  CHECK(g.dbias.defined() == ndb);
  // Sums over K*K*Co taps (dx) or B*Ho*Wo pixels (dw, dbias), fp32, other order: 1e-4, as above.
  if (ndx && g.dx.defined()) expect_close("dx " + what, g.dx, e.dx, 1e-4, max_element_of(size.dx));
  if (ndw && g.dw.defined()) expect_close("dw " + what, g.dw, e.dw, 1e-4, max_element_of(size.dw));
  if (ndb && g.dbias.defined()) expect_close("dbias " + what, g.dbias, e.dbias, 1e-4, max_element_of(size.dbias));
}
}  // namespace

TEST_CASE("emu: conv2d kernels match the cpu on small odd shapes", "[emu][conv2d]") {
  DD_TEST_RANDOM(rng);
  const std::vector<Case> cases = {
      {1, 1, 1, 1, 1, 1, 0},   // smallest: one pixel, one channel
      {1, 1, 1, 3, 5, 3, 1},   // 1x1 spatial under a 3x3 kernel: all but the centre tap padded
      {3, 5, 7, 5, 3, 3, 1},   // generic gather, scalar loads
      {1, 5, 7, 3, 70, 1, 0},  // 1x1 plain GEMM, scalar; Co > one 64-wide tile
      {3, 5, 7, 70, 5, 1, 0},  // 1x1 plain GEMM, Kd = 70: several 16-deep k steps, partial last
      {2, 5, 7, 4, 8, 3, 1},   // float4 gather (Ci, Co multiples of 4)
      {1, 3, 3, 12, 4, 1, 0},  // float4 plain GEMM
      {2, 4, 3, 8, 12, 1, 2},  // float4 with padding beyond K-1 on a 1x1 (dx crops)
      {1, 9, 9, 33, 3, 7, 3},  // 7x7 stem-like, odd channels
      {2, 6, 5, 7, 9, 3, 3},   // padding beyond K-1 (dx runs with a negative padding)
      {1, 17, 13, 5, 1, 3, 0}, // unpadded 3x3, Co = 1
      {2, 12, 11, 5, 6, 3, 1}, // M = 264: dw split in two and folded, dbias in two row splits
      {2, 12, 11, 8, 4, 3, 1}, // the same with float4 loads
      {1, 2, 2, 16, 1, 3, 1},
  };
  int index = 0;
  for (const Case& c : cases) check_case(rng, c, index++ % 2 == 0, 7);
}

TEST_CASE("emu: conv2d backward computes only what is asked for", "[emu][conv2d]") {
  DD_TEST_RANDOM(rng);
  for (const Case& c : std::vector<Case>{{2, 5, 7, 5, 3, 3, 1}, {1, 4, 3, 4, 8, 1, 0}})
    for (int mask = 0; mask < 8; ++mask) check_case(rng, c, mask % 2 == 1, mask);
}

TEST_CASE("emu: weight standardization matches the cpu", "[emu][weight_standardize]") {
  DD_TEST_RANDOM(rng);
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{3, 3, 3, 5}, Shape{7, 1, 1, 33}, Shape{2, 7, 7, 3}, Shape{5, 300}}) {
    INFO(shape_str(s));
    Tensor w = rnd(rng, s, 0.3), g = rnd(rng, s);
    // Per-row mean and variance (double sums) then one elementwise pass: 1e-5 (as tests/gpu).
    expect_close("forward", kernels::emu::weight_standardize_forward(w, 1e-5f),
                 kernels::cpu::weight_standardize_forward(w, 1e-5f), 1e-5);
    expect_close("backward", kernels::emu::weight_standardize_backward(w, g, 1e-5f),
                 kernels::cpu::weight_standardize_backward(w, g, 1e-5f), 1e-5);
  }
}
