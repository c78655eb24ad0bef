// kernels/cuda/group_norm.cu, group_norm_act.cu and broadcast.cu (which share the two-pass
// channel sums of kernels/cuda/channel_sums.cuh; GroupNorm also runs a block per (batch, group),
// kernels/cuda/group_norm_per_group.cuh: both paths are checked), run on the CPU through the host
// emulation, vs the CPU backend.
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "tests/emu/emu_test_util.h"
#include "tests/reference/broadcast.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;

namespace {
double max_abs(const Tensor& t) {
  double m = 0.0;
  for (float v : t.to_vector()) m = std::max(m, std::fabs(double(v)));
  return m;
}
// dx is a difference of terms of size rstd * |gamma * dy| (x (1 + scale)), which
// cancel exactly in a one-channel group (dx = 0; rstd ~ 316 there, at var 0):
// judged at that scale, not at max |dx|.
void expect_dx_close(const Tensor& actual, const Tensor& expected, const Tensor& dy, const Tensor& gamma,
                     const Tensor& rstd, const Tensor& scale) {
  const double terms = max_abs(dy) * max_abs(gamma) * max_abs(rstd) * (1.0 + (scale.defined() ? max_abs(scale) : 0.0));
  // A reduction over the group (two-pass, other order): 1e-4, as tests/gpu.
  expect_close("dx", actual.to_vector(), to_double(expected), 1e-4, std::max(1e-6, terms));
}

// Forces a GroupNorm path for its scope (kernels/group_norm.h), the default (Auto) after.
struct PerGroup {
  explicit PerGroup(bool on) {
    kernels::emu::set_group_norm_path(on ? kernels::emu::GroupNormPath::PerGroup : kernels::emu::GroupNormPath::TwoPass);
  }
  ~PerGroup() { kernels::emu::set_group_norm_path(kernels::emu::GroupNormPath::Auto); }
};

struct GnCase {
  Shape shape;
  int64_t groups;
};
// Channels below, at and above the 32-wide channel tile; S = 1; several position
// chunks (S = 13 x 23 = 299 > the 8 row lanes x chunk sizes); groups of 1 channel; a group of
// more than 32 channels and more than 32 batch items (the warp-per-output folds: lanes loop);
// C % 4 == 0 (the four-at-a-time passes) and C % 4 != 0 (one at a time); B x groups of 256 (the
// per-group kernels' 256-thread blocks; below, 1024).
const std::vector<GnCase> kGnCases = {{{1, 1, 1, 4}, 1},  {{1, 1, 1, 4}, 4},  {{2, 3, 5, 6}, 3}, {{3, 7, 13, 16}, 8},
                                      {{2, 5, 8}, 2},     {{5, 12}, 4},       {{2, 9, 9, 13}, 13},
                                      {{1, 13, 23, 65}, 5}, {{2, 3, 3, 33}, 1},
                                      {{37, 2, 3, 8}, 2}, {{3, 2, 2, 72}, 1}, {{64, 3, 1, 36}, 4}};
}  // namespace

TEST_CASE("emu: group norm matches the cpu", "[emu][group_norm]") {
  DD_TEST_RANDOM(rng);
  for (const GnCase& c : kGnCases) {
    INFO(shape_str(c.shape) << " groups " << c.groups);
    const int64_t C = c.shape.back();
    Tensor x = rnd(rng, c.shape, 2.0), gamma = rnd(rng, {C}), beta = rnd(rng, {C}), dy = rnd(rng, c.shape);
    kernels::GroupNormOut fc = kernels::cpu::group_norm_forward(x, gamma, beta, c.groups, 1e-5f);
    for (const bool per_group : {true, false}) {
      INFO((per_group ? "a block per group" : "two-pass"));
      const PerGroup path(per_group);
      kernels::GroupNormOut fe = kernels::emu::group_norm_forward(x, gamma, beta, c.groups, 1e-5f);
      // Statistics in double, rounded once: 1e-6; y one elementwise pass on top: 1e-5 (as tests/gpu).
      expect_close("mean", fe.mean, fc.mean, 1e-6);
      expect_close("rstd", fe.rstd, fc.rstd, 1e-6);
      expect_close("y", fe.y, fc.y, 1e-5);
      CHECK(fe.y.to_vector() == kernels::emu::group_norm_forward(x, gamma, beta, c.groups, 1e-5f).y.to_vector());
      // y written in bf16 (the PreNorm under BF16): the fp32 y's bits rounded, the same statistics.
      kernels::GroupNormOut fb = kernels::emu::group_norm_forward(x, gamma, beta, c.groups, 1e-5f, true);
      REQUIRE(fb.y.dtype() == DType::BF16);
      CHECK(fb.y.to_bytes() == fe.y.to(DType::BF16).to_bytes());
      CHECK(fb.mean.to_vector() == fe.mean.to_vector());
      CHECK(fb.rstd.to_vector() == fe.rstd.to_vector());
    }
    CHECK(kernels::cpu::group_norm_forward(x, gamma, beta, c.groups, 1e-5f, true).y.to_bytes() ==
          fc.y.to(DType::BF16).to_bytes());
    // The backward on x, and on x's bf16 copy (what the autograd op keeps under BF16), read as its
    // values (8-byte loads on the four-at-a-time path), against the CPU on the same operand.
    // Both backward paths: a block per (batch, group), and the two-pass channel sums.
    for (const Tensor& xk : {x, x.to(DType::BF16)})
      for (const bool fused : {true, false}) {
        INFO("x " << dtype_name(xk.dtype()) << (fused ? ", a block per group" : ", two-pass"));
        const PerGroup path(fused);
        kernels::GroupNormGrads ge = kernels::emu::group_norm_backward(xk, gamma, fc.mean, fc.rstd, dy);
        kernels::GroupNormGrads gc = kernels::cpu::group_norm_backward(xk, gamma, fc.mean, fc.rstd, dy);
        // Reductions over positions: 1e-4.
        expect_dx_close(ge.dx, gc.dx, dy, gamma, fc.rstd, Tensor());
        expect_close("dgamma", ge.dgamma, gc.dgamma, 1e-4);
        expect_close("dbeta", ge.dbeta, gc.dbeta, 1e-4);
        CHECK(ge.dx.to_vector() == kernels::emu::group_norm_backward(xk, gamma, fc.mean, fc.rstd, dy).dx.to_vector());
      }
  }
}

TEST_CASE("emu: fused group norm + scale/shift + SiLU matches the cpu", "[emu][group_norm_act]") {
  DD_TEST_RANDOM(rng);
  for (const GnCase& c : kGnCases) {
    for (bool with_ss : {false, true}) {
      INFO(shape_str(c.shape) << " groups " << c.groups << (with_ss ? " scale/shift" : ""));
      const int64_t C = c.shape.back(), B = c.shape[0];
      Tensor x = rnd(rng, c.shape, 2.0), gamma = rnd(rng, {C}), beta = rnd(rng, {C}), dy = rnd(rng, c.shape);
      Tensor scale = with_ss ? rnd(rng, {B, C}, 0.5) : Tensor(), shift = with_ss ? rnd(rng, {B, C}) : Tensor();
      kernels::GroupNormActOut fc = kernels::cpu::group_norm_act_forward(x, gamma, beta, scale, shift, c.groups, 1e-5f);
      for (const bool per_group : {true, false}) {
        INFO((per_group ? "a block per group" : "two-pass"));
        const PerGroup path(per_group);
        kernels::GroupNormActOut fe =
            kernels::emu::group_norm_act_forward(x, gamma, beta, scale, shift, c.groups, 1e-5f);
        expect_close("mean", fe.mean, fc.mean, 1e-6);
        expect_close("rstd", fe.rstd, fc.rstd, 1e-6);
        expect_close("y", fe.y, fc.y, 1e-5);
      }
      // The backward on x, and on x's bf16 copy (what a Block keeps under BF16), read as its values
      // (8-byte loads on the four-at-a-time path), against the CPU on the same operand.
      for (const Tensor& xk : {x, x.to(DType::BF16)})
        for (const bool fused : {true, false}) {
        INFO("x " << dtype_name(xk.dtype()) << (fused ? ", a block per group" : ", two-pass"));
        const PerGroup path(fused);
        kernels::GroupNormActGrads ge =
            kernels::emu::group_norm_act_backward(xk, gamma, beta, scale, shift, fc.mean, fc.rstd, dy);
        kernels::GroupNormActGrads gc =
            kernels::cpu::group_norm_act_backward(xk, gamma, beta, scale, shift, fc.mean, fc.rstd, dy);
        expect_dx_close(ge.dx, gc.dx, dy, gamma, fc.rstd, scale);
        expect_close("dgamma", ge.dgamma, gc.dgamma, 1e-4);
        expect_close("dbeta", ge.dbeta, gc.dbeta, 1e-4);
        CHECK(ge.dscale.defined() == with_ss);
        CHECK(ge.dshift.defined() == with_ss);
        if (with_ss && ge.dscale.defined() && ge.dshift.defined()) {
          expect_close("dscale", ge.dscale, gc.dscale, 1e-4);
          expect_close("dshift", ge.dshift, gc.dshift, 1e-4);
        }
        CHECK(ge.dx.to_vector() ==
              kernels::emu::group_norm_act_backward(xk, gamma, beta, scale, shift, fc.mean, fc.rstd, dy).dx.to_vector());
      }
    }
  }
}

TEST_CASE("emu: per-(batch, channel) broadcasts match the cpu", "[emu][broadcast]") {
  DD_TEST_RANDOM(rng);
  for (Shape shape : {Shape{1, 1, 1, 1}, Shape{1, 1, 1, 7}, Shape{5, 12}, Shape{2, 3, 5, 6}, Shape{3, 7, 13, 33},
                      Shape{2, 5, 8}, Shape{1, 11, 29, 65}}) {
    INFO(shape_str(shape));
    const int64_t B = shape[0], C = shape.back();
    Tensor x = rnd(rng, shape), dy = rnd(rng, shape), v = rnd(rng, {B, C}), w = rnd(rng, {B, C});
    // Elementwise: 1e-6; sums over positions: 1e-5 (as tests/gpu).
    expect_close("add_bc", kernels::emu::add_bc(x, v), kernels::cpu::add_bc(x, v), 1e-6);
    expect_close("mul_bc", kernels::emu::mul_bc(x, v), kernels::cpu::mul_bc(x, v), 1e-6);
    // May cancel to near 0 (one element; the CPU may use an FMA, the emulation does not): judged at
    // the size of its terms.
    expect_close("scale_shift", kernels::emu::scale_shift(x, v, w).to_vector(),
                 to_double(kernels::cpu::scale_shift(x, v, w)), 1e-6,
                 ref::scale_shift_terms(to_double(x), to_double(v), to_double(w), B, C));
    expect_close("add_bc_backward", kernels::emu::add_bc_backward(dy), kernels::cpu::add_bc_backward(dy), 1e-5);
    kernels::MulBcGrads me = kernels::emu::mul_bc_backward(x, v, dy), mc = kernels::cpu::mul_bc_backward(x, v, dy);
    expect_close("mul_bc dx", me.dx, mc.dx, 1e-6);
    expect_close("mul_bc dv", me.dv, mc.dv, 1e-5);
    kernels::ScaleShiftGrads se = kernels::emu::scale_shift_backward(x, v, dy);
    kernels::ScaleShiftGrads sc = kernels::cpu::scale_shift_backward(x, v, dy);
    expect_close("scale_shift dx", se.dx, sc.dx, 1e-6);
    expect_close("scale_shift dscale", se.dscale, sc.dscale, 1e-5);
    expect_close("scale_shift dshift", se.dshift, sc.dshift, 1e-5);
  }
}
