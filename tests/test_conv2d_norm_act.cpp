// The Block as one op (kernels/conv2d_norm_act.h) on the CPU: the conv's epilogue sums against a
// float64 sum of its output, on every path (im2col, F(2x2), F(4x4), 1x1) and chunkings whose
// chunks straddle images; thread-count determinism; the fused forward and backward against the
// conv and group_norm_act run apart; the autograd op's wiring; operand errors.
#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/conv2d.h"
#include "autograd/conv2d_norm_act.h"
#include "autograd/elementwise.h"
#include "autograd/group_norm_act.h"
#include "engine/context.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_norm_act.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/group_norm_act.h"
#include "tests/support/compare.h"
#include "tests/support/expect_error.h"

using namespace dd;
using namespace dd::test;
using kernels::cpu::Conv3x3Algo;
using kernels::cpu::Conv3x3AlgoScope;

namespace {
struct Shape4 {
  int64_t b, h, w, ci, co, k;
};

std::string name_of(const Shape4& s, Conv3x3Algo a, int64_t chunk) {
  const char* algo = a == Conv3x3Algo::Im2col ? "im2col" : a == Conv3x3Algo::Winograd ? "F2" : "F4";
  return std::to_string(s.b) + "x" + std::to_string(s.h) + "x" + std::to_string(s.w) + " " + std::to_string(s.ci) +
         "->" + std::to_string(s.co) + " k" + std::to_string(s.k) + " " + algo + " chunk " + std::to_string(chunk);
}

struct Operands {
  Tensor x, w, bias;
};

Operands operands(Random& rng, const Shape4& s) {
  return {from_double({s.b, s.h, s.w, s.ci}, rng.normal_f32(s.b * s.h * s.w * s.ci)),
          from_double({s.co, s.k, s.k, s.ci}, rng.normal_f32(s.co * s.k * s.k * s.ci, 0.3)),
          from_double({s.co}, rng.normal_f32(s.co, 2.0))};
}

// GroupNorm's operands for the conv's Co output channels: 8 groups where they divide Co, else 1.
struct NormOperands {
  Tensor gamma, beta, scale, shift;  // scale and shift undefined without scale_shift
  int64_t groups;
};

NormOperands norm_operands(Random& rng, const Shape4& s, bool scale_shift) {
  NormOperands n{from_double({s.co}, rng.normal_f32(s.co)), from_double({s.co}, rng.normal_f32(s.co, 0.5)), Tensor(),
                 Tensor(), s.co % 8 == 0 ? 8 : 1};
  if (scale_shift) {
    n.scale = from_double({s.b, s.co}, rng.normal_f32(s.b * s.co, 0.5));
    n.shift = from_double({s.b, s.co}, rng.normal_f32(s.b * s.co, 0.5));
  }
  return n;
}

const std::vector<Shape4> kShapes = {{3, 5, 7, 16, 24, 3}, {2, 9, 9, 20, 17, 3}, {1, 12, 10, 32, 16, 3},
                                     {3, 4, 4, 16, 16, 3}, {2, 6, 5, 8, 12, 1}};
const std::vector<Conv3x3Algo> kAlgos = {Conv3x3Algo::Im2col, Conv3x3Algo::Winograd, Conv3x3Algo::Winograd4};
}  // namespace

TEST_CASE("conv2d_forward_sums: y is the forward's and the sums are float64 sums of y", "[conv2d][conv2d_norm_act]") {
  DD_TEST_RANDOM(rng);
  for (const Shape4& s : kShapes)
    for (Conv3x3Algo a : kAlgos)
      // chunk 1: a chunk per pixel or tile; 5 and 7: chunks straddling images; 0: the default.
      for (int64_t chunk : {1, 5, 7, 0}) {
        if (s.k == 1 && a != Conv3x3Algo::Im2col) continue;  // 1x1 runs the linear layer whatever the switch
        INFO(name_of(s, a, chunk));
        Conv3x3AlgoScope force(a);
        const Operands o = operands(rng, s);
        const int pad = static_cast<int>(s.k / 2);
        std::vector<double> sums;
        const Tensor y = kernels::cpu::conv2d_forward_sums(o.x, o.w, o.bias, pad, sums, chunk);
        CHECK(y.to_vector() == kernels::cpu::conv2d_forward(o.x, o.w, o.bias, pad, chunk).to_vector());
        const int64_t px = s.h * s.w, bc = s.b * s.co;
        REQUIRE(static_cast<int64_t>(sums.size()) == 2 * bc);
        const std::vector<float> yv = y.to_vector();
        for (int64_t b = 0; b < s.b; ++b)
          for (int64_t c = 0; c < s.co; ++c) {
            double sum = 0.0, sq = 0.0, abs_sum = 0.0;
            for (int64_t p = 0; p < px; ++p) {
              const double v = yv[static_cast<std::size_t>((b * px + p) * s.co + c)];
              sum += v;
              sq += v * v;
              abs_sum += std::fabs(v);
            }
            // Both are double sums of the same px floats (squares exact in double), in different
            // orders: each within px * 2^-53 of the exact sum of magnitudes; 4 px 2^-53 covers both.
            const double u = std::ldexp(1.0, -53) * 4.0 * static_cast<double>(px);
            CHECK(std::fabs(sums[static_cast<std::size_t>(b * s.co + c)] - sum) <= u * abs_sum);
            CHECK(std::fabs(sums[static_cast<std::size_t>(bc + b * s.co + c)] - sq) <= u * sq);
          }
      }
}

TEST_CASE("conv2d_forward_sums is bitwise the same for any thread count", "[conv2d][conv2d_norm_act]") {
  DD_TEST_RANDOM(rng);
  const Shape4 s{4, 16, 15, 24, 16, 3};  // several default chunks on every path
  const Operands o = operands(rng, s);
  for (Conv3x3Algo a : kAlgos) {
    Conv3x3AlgoScope force(a);
    std::vector<double> ref;
    const auto y = kernels::cpu::conv2d_forward_sums(o.x, o.w, o.bias, 1, ref).to_vector();
    const int threads = omp_get_max_threads();
    for (int t : {1, 2, 3}) {
      omp_set_num_threads(t);
      std::vector<double> sums;
      const auto yt = kernels::cpu::conv2d_forward_sums(o.x, o.w, o.bias, 1, sums).to_vector();
      omp_set_num_threads(threads);
      CHECK(yt == y);
      CHECK(sums == ref);
    }
  }
}

TEST_CASE("conv2d_group_norm_act forward and backward equal the conv and group_norm_act run apart",
          "[conv2d][conv2d_norm_act][group_norm_act]") {
  DD_TEST_RANDOM(rng);
  for (const Shape4& s : kShapes)
    for (Conv3x3Algo a : kAlgos)
      for (bool scale_shift : {false, true}) {
        if (s.k == 1 && a != Conv3x3Algo::Im2col) continue;
        INFO(name_of(s, a, 0) << (scale_shift ? " scale/shift" : ""));
        Conv3x3AlgoScope force(a);
        const Operands o = operands(rng, s);
        const int pad = static_cast<int>(s.k / 2);
        const NormOperands no = norm_operands(rng, s, scale_shift);
        const Tensor &gamma = no.gamma, &beta = no.beta, &scale = no.scale, &shift = no.shift;
        const int64_t groups = no.groups;
        const kernels::Conv2dNormActOut f =
            kernels::conv2d_group_norm_act_forward({o.x}, o.w, o.bias, pad, gamma, beta, scale, shift, groups);
        const Tensor h = kernels::conv2d_forward(o.x, o.w, o.bias, pad);
        const kernels::GroupNormActOut n = kernels::group_norm_act_forward(h, gamma, beta, scale, shift, groups);
        CHECK(f.h.to_vector() == h.to_vector());
        // The statistics' double sums differ only in order (see the test above): the float mean and
        // rstd are the same or one rounding apart, 2^-23 relative; y then within a few ulp: 1e-6.
        expect_close("mean", f.n.mean, to_double(n.mean), 2.4e-7);
        expect_close("rstd", f.n.rstd, to_double(n.rstd), 2.4e-7);
        expect_close("y", f.n.y, to_double(n.y), 1e-6);

        // The backward for given statistics: every gradient bitwise the two ops', dbias included.
        const Tensor dy = from_double(h.shape(), rng.normal_f32(h.numel()));
        for (bool need_dbias : {true, false}) {
          const kernels::Conv2dNormActGrads g = kernels::conv2d_group_norm_act_backward(
              {o.x}, o.w, h, pad, gamma, beta, scale, shift, n.mean, n.rstd, dy, true, true, need_dbias);
          const kernels::GroupNormActGrads gn =
              kernels::group_norm_act_backward(h, gamma, beta, scale, shift, n.mean, n.rstd, dy);
          const kernels::Conv2dGrads gc = kernels::conv2d_backward(o.x, o.w, gn.dx, pad, true, true, need_dbias);
          CHECK(g.dx.at(0).to_vector() == gc.dx.to_vector());
          CHECK(g.dw.to_vector() == gc.dw.to_vector());
          REQUIRE(g.dbias.defined() == need_dbias);
          if (need_dbias) CHECK(g.dbias.to_vector() == gc.dbias.to_vector());
          CHECK(g.dgamma.to_vector() == gn.dgamma.to_vector());
          CHECK(g.dbeta.to_vector() == gn.dbeta.to_vector());
          REQUIRE(g.dscale.defined() == scale_shift);
          if (scale_shift) {
            CHECK(g.dscale.to_vector() == gn.dscale.to_vector());
            CHECK(g.dshift.to_vector() == gn.dshift.to_vector());
          }
        }
      }
}

TEST_CASE("ag::conv2d_group_norm_act hands every input its kernel gradient", "[conv2d_norm_act][autograd]") {
  DD_TEST_RANDOM(rng);
  const Shape4 s{2, 6, 7, 16, 16, 3};
  const Operands o = operands(rng, s);
  const Tensor gamma = from_double({s.co}, rng.normal_f32(s.co));
  const Tensor beta = from_double({s.co}, rng.normal_f32(s.co, 0.5));
  const Tensor scale = from_double({s.b, s.co}, rng.normal_f32(s.b * s.co, 0.5));
  const Tensor shift = from_double({s.b, s.co}, rng.normal_f32(s.b * s.co, 0.5));
  const Tensor r = from_double({s.b, s.h, s.w, s.co}, rng.normal_f32(s.b * s.h * s.w * s.co));
  ag::Tape::current().clear();
  ag::Var x(o.x, true), w(o.w, true), bias(o.bias, true), g(gamma, true), bt(beta, true), sc(scale, true),
      sh(shift, true);
  ag::Var y = ag::conv2d_group_norm_act({x}, w, bias, 1, g, bt, sc, sh, 4);
  ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
  const kernels::Conv2dNormActOut f =
      kernels::conv2d_group_norm_act_forward({o.x}, o.w, o.bias, 1, gamma, beta, scale, shift, 4);
  CHECK(y.value().to_vector() == f.n.y.to_vector());
  const kernels::Conv2dNormActGrads k = kernels::conv2d_group_norm_act_backward(
      {o.x}, o.w, f.h, 1, gamma, beta, scale, shift, f.n.mean, f.n.rstd, r, true, true, true);
  CHECK(x.grad().to_vector() == k.dx.at(0).to_vector());
  CHECK(w.grad().to_vector() == k.dw.to_vector());
  CHECK(bias.grad().to_vector() == k.dbias.to_vector());
  CHECK(g.grad().to_vector() == k.dgamma.to_vector());
  CHECK(bt.grad().to_vector() == k.dbeta.to_vector());
  CHECK(sc.grad().to_vector() == k.dscale.to_vector());
  CHECK(sh.grad().to_vector() == k.dshift.to_vector());
  ag::Tape::current().clear();
}

TEST_CASE("conv2d_group_norm_act names the operand a bad shape belongs to", "[conv2d_norm_act]") {
  DD_TEST_RANDOM(rng);
  const Shape4 s{2, 5, 5, 8, 12, 3};
  const Operands o = operands(rng, s);
  const Tensor g12 = from_double({12}, rng.normal_f32(12)), g8 = from_double({8}, rng.normal_f32(8));
  const Tensor none;
  using kernels::conv2d_group_norm_act_forward;
  expect_error([&] { conv2d_group_norm_act_forward({o.x}, o.w, o.bias, 1, g12, g12, none, none, 5); },
               {"conv2d_group_norm_act", "groups = 5", "h [2,5,5,12]"});
  expect_error([&] { conv2d_group_norm_act_forward({o.x}, o.w, o.bias, 1, g8, g8, none, none, 4); },
               {"conv2d_group_norm_act", "gamma"});
  expect_error([&] { conv2d_group_norm_act_forward({o.x}, o.w, g8, 1, g12, g12, none, none, 4); },
               {"conv2d_group_norm_act", "bias"});
  const Tensor wrong_scale = from_double({3, 12}, rng.normal_f32(36));
  expect_error([&] { conv2d_group_norm_act_forward({o.x}, o.w, o.bias, 1, g12, g12, wrong_scale, wrong_scale, 4); },
               {"conv2d_group_norm_act", "scale"});
  const Tensor x_bad = from_double({2, 5, 5, 7}, rng.normal_f32(350));
  expect_error([&] { conv2d_group_norm_act_forward({x_bad}, o.w, o.bias, 1, g12, g12, none, none, 4); },
               {"conv2d_group_norm_act", "Ci = 8"});
  const kernels::Conv2dNormActOut f = conv2d_group_norm_act_forward({o.x}, o.w, o.bias, 1, g12, g12, none, none, 4);
  const Tensor dy_bad = from_double({2, 5, 5, 11}, rng.normal_f32(550));
  expect_error([&] {
    kernels::conv2d_group_norm_act_backward({o.x}, o.w, f.h, 1, g12, g12, none, none, f.n.mean, f.n.rstd, dy_bad, true,
                                            true, true);
  },
               {"conv2d_group_norm_act_backward", "dy"});
}

TEST_CASE("conv2d_group_norm_act with bf16_h: the same y, h rounded, the backward at the rounded h",
          "[conv2d][conv2d_norm_act][group_norm_act]") {
  DD_TEST_RANDOM(rng);
  for (const Shape4& s : kShapes)
    for (bool scale_shift : {false, true}) {
      INFO(name_of(s, Conv3x3Algo::Im2col, 0) << (scale_shift ? " scale/shift" : ""));
      const Operands o = operands(rng, s);
      const int pad = static_cast<int>(s.k / 2);
      const NormOperands no = norm_operands(rng, s, scale_shift);
      const Tensor &gamma = no.gamma, &beta = no.beta, &scale = no.scale, &shift = no.shift;
      const int64_t groups = no.groups;
      using kernels::conv2d_group_norm_act_backward;
      const kernels::Conv2dNormActOut f =
          kernels::conv2d_group_norm_act_forward({o.x}, o.w, o.bias, pad, gamma, beta, scale, shift, groups);
      const kernels::Conv2dNormActOut fb =
          kernels::conv2d_group_norm_act_forward({o.x}, o.w, o.bias, pad, gamma, beta, scale, shift, groups, 1e-5f, true);
      // The statistics come from the exact h, and y from it: the same bits.
      CHECK(fb.n.y.to_vector() == f.n.y.to_vector());
      CHECK(fb.n.mean.to_vector() == f.n.mean.to_vector());
      CHECK(fb.n.rstd.to_vector() == f.n.rstd.to_vector());
      REQUIRE(fb.h.dtype() == DType::BF16);
      CHECK(fb.h.to_bytes() == f.h.to(DType::BF16).to_bytes());

      // The backward reads the bf16 h as its values: bitwise the backward given them in fp32.
      const Tensor dy = from_double(f.h.shape(), rng.normal_f32(f.h.numel()));
      const Tensor hr = fb.h.to(DType::F32);
      const kernels::Conv2dNormActGrads gb = conv2d_group_norm_act_backward(
          {o.x}, o.w, fb.h, pad, gamma, beta, scale, shift, f.n.mean, f.n.rstd, dy, true, true, true);
      const kernels::Conv2dNormActGrads gr = conv2d_group_norm_act_backward(
          {o.x}, o.w, hr, pad, gamma, beta, scale, shift, f.n.mean, f.n.rstd, dy, true, true, true);
      CHECK(gb.dx.at(0).to_vector() == gr.dx.at(0).to_vector());
      CHECK(gb.dw.to_vector() == gr.dw.to_vector());
      CHECK(gb.dbias.to_vector() == gr.dbias.to_vector());
      CHECK(gb.dgamma.to_vector() == gr.dgamma.to_vector());
      CHECK(gb.dbeta.to_vector() == gr.dbeta.to_vector());
      if (scale_shift) {
        CHECK(gb.dscale.to_vector() == gr.dscale.to_vector());
        CHECK(gb.dshift.to_vector() == gr.dshift.to_vector());
      }

      // Against the exact h. Rounding moves h by at most |h| 2^-9, so the normalized value by at
      // most d = max|h| max(rstd) 2^-9; the recomputed pre-activation, SiLU's derivative (slope
      // <= 1.1) and the group sums of dh (x - mean) each carry it once, and the errors of an
      // element's terms partly cancel. Judged at the terms' scale (dx's: |dy| |gamma| rstd
      // (1 + |scale|); dgamma's and dbeta's: |dy| (1 + |scale|) times the positions summed), each
      // gradient is within d (measured: dx up to 0.13 d, dgamma and dbeta up to 0.035 d, with d
      // from 0.005 to 0.012 here).
      const kernels::GroupNormActGrads g =
          kernels::group_norm_act_backward(f.h, gamma, beta, scale, shift, f.n.mean, f.n.rstd, dy);
      const kernels::GroupNormActGrads gn =
          kernels::group_norm_act_backward(fb.h, gamma, beta, scale, shift, f.n.mean, f.n.rstd, dy);
      auto max_abs = [](const Tensor& t) {
        double m = 0.0;
        for (float v : t.to_vector()) m = std::max(m, std::fabs(double(v)));
        return m;
      };
      const double d = max_abs(f.h) * max_abs(f.n.rstd) * std::ldexp(1.0, -9);
      const double ss = 1.0 + (scale_shift ? max_abs(scale) : 0.0);
      const double dx_terms = max_abs(dy) * max_abs(gamma) * max_abs(f.n.rstd) * ss;
      const double sum_terms = max_abs(dy) * ss * static_cast<double>(f.h.numel() / s.co);
      INFO("d = " << d);
      expect_close("dx", gn.dx, g.dx, d, dx_terms);
      expect_close("dgamma", gn.dgamma, g.dgamma, d, sum_terms);
      expect_close("dbeta", gn.dbeta, g.dbeta, d, sum_terms);
    }
}

TEST_CASE("group_norm_act_backward reads a bf16 x as its values and refuses other dtypes", "[group_norm_act]") {
  DD_TEST_RANDOM(rng);
  const Tensor x = from_double({2, 3, 5, 12}, rng.normal_f32(360, 2.0));
  const Tensor gamma = from_double({12}, rng.normal_f32(12)), beta = from_double({12}, rng.normal_f32(12));
  const Tensor dy = from_double(x.shape(), rng.normal_f32(360));
  const kernels::GroupNormActOut f = kernels::group_norm_act_forward(x, gamma, beta, Tensor(), Tensor(), 3);
  const Tensor xb = x.to(DType::BF16);
  const kernels::GroupNormActGrads a =
      kernels::group_norm_act_backward(xb, gamma, beta, Tensor(), Tensor(), f.mean, f.rstd, dy);
  const kernels::GroupNormActGrads b =
      kernels::group_norm_act_backward(xb.to(DType::F32), gamma, beta, Tensor(), Tensor(), f.mean, f.rstd, dy);
  CHECK(a.dx.dtype() == DType::F32);
  CHECK(a.dx.to_vector() == b.dx.to_vector());
  CHECK(a.dgamma.to_vector() == b.dgamma.to_vector());
  CHECK(a.dbeta.to_vector() == b.dbeta.to_vector());
  expect_error([&] {
    kernels::group_norm_act_backward(x.to(DType::F16), gamma, beta, Tensor(), Tensor(), f.mean, f.rstd, dy);
  },
               {"group_norm_act_backward", "x [2,3,5,12]", "F32 or BF16"});
}

TEST_CASE("conv2d_group_norm_act with bf16_y: y rounded, and through a conv the same loss and gradients",
          "[conv2d][conv2d_norm_act][autograd]") {
  DD_TEST_RANDOM(rng);
  // A ResnetBlock's first Block under BF16 (models/unet.cpp): its output's one reader, the second
  // Block's conv, rounds it to bf16, so the op writes it in bf16.
  const Shape4 s{2, 6, 7, 16, 12, 3};
  const Operands o = operands(rng, s);
  const NormOperands no = norm_operands(rng, s, true);
  const kernels::Conv2dNormActOut f =
      kernels::conv2d_group_norm_act_forward({o.x}, o.w, o.bias, 1, no.gamma, no.beta, no.scale, no.shift, no.groups);
  const kernels::Conv2dNormActOut fy = kernels::conv2d_group_norm_act_forward(
      {o.x}, o.w, o.bias, 1, no.gamma, no.beta, no.scale, no.shift, no.groups, 1e-5f, false, true);
  REQUIRE(fy.n.y.dtype() == DType::BF16);
  CHECK(bf16_bits(fy.n.y) == bf16_bits(f.n.y.to(DType::BF16)));
  CHECK(fy.n.mean.to_vector() == f.n.mean.to_vector());
  CHECK(fy.n.rstd.to_vector() == f.n.rstd.to_vector());

  const PrecisionScope bf16(Precision::BF16);
  const Tensor w2 = from_double({5, 3, 3, s.co}, rng.normal_f32(5 * 9 * s.co, 0.2));
  const Tensor r = from_double({s.b, s.h, s.w, 5}, rng.normal_f32(s.b * s.h * s.w * 5));
  auto run = [&](bool bf16_y) {
    ag::Tape::current().clear();
    ag::Var x(o.x, true), w(o.w, true), bias(o.bias, true), g(no.gamma, true), bt(no.beta, true),
        sc(no.scale, true), sh(no.shift, true), v2(w2, true);
    const ag::Var y = ag::conv2d_group_norm_act({x}, w, bias, 1, g, bt, sc, sh, no.groups, 1e-5f, bf16_y);
    CHECK(y.value().dtype() == (bf16_y ? DType::BF16 : DType::F32));
    const ag::Var loss = ag::sum(ag::mul(ag::conv2d(y, v2, ag::Var(), 1), ag::Var(r)));
    ag::Tape::current().backward(loss);
    std::vector<std::vector<float>> out{{static_cast<float>(loss.value().item())}};
    for (const ag::Var* v : {&x, &w, &bias, &g, &bt, &sc, &sh, &v2}) out.push_back(v->grad().to_vector());
    ag::Tape::current().clear();
    return out;
  };
  CHECK(run(true) == run(false));
}
