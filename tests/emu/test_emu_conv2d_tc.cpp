// kernels/cuda/conv2d_tc.cu (tensor-core implicit GEMMs: mma, ldmatrix, cp.async) run on the CPU
// through the host emulation, against the fp32 CPU backend, in bf16 and tf32: forward, dx, dw,
// dbias on odd shapes (Ci = 3, channel counts that are no multiple of a tile or of a 16-byte
// chunk, batch 1, 4x4 and 5x7 maps, K = 1 and 3), every tile shape, dw with and without a
// split-K fold. Outputs are NaN-poisoned by the runner (an element no kernel wrote fails), and
// each result is recomputed and must repeat bitwise. Each element is held to the bound derived
// in tests/support/conv_tc_bounds.h from sum |x_i w_i| (bf16 u = 2^-8, tf32 u = 2^-11).
// Shapes stay small: every emulated thread is a fiber (a 128x128 tile is 256 of them).
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include "tests/emu/emu_test_util.h"
#include "tests/support/conv_tc_bounds.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;
using dd::test::conv_tc::Dims;

namespace {

void check_case(Random& rng, const Dims& c, Precision prec, bool with_bias, kernels::emu::TcConvOptions opt = {}) {
  const std::string what = c.str() + (with_bias ? " bias" : "") + " tile " +
                           kernels::emu::conv2d_tc_tile_name(opt.tile) + " splits " + std::to_string(opt.splits) +
                           (opt.halo ? " halo" : "") + (opt.halo_wide ? " wide" : "");
  INFO(what << " " << precision_name(prec));
  Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  Tensor bias = with_bias ? rnd(rng, {c.co}) : Tensor();
  Tensor dy = rnd(rng, {c.b, c.ho(), c.wo(), c.co});
  const int p = static_cast<int>(c.p);
  const conv_tc::AbsSums s = conv_tc::abs_sums(c, x, w, dy);

  Tensor y = kernels::emu::conv2d_forward_tc(x, w, bias, p, prec, opt);
  REQUIRE(y.shape() == Shape{c.b, c.ho(), c.wo(), c.co});
  // Reduction over K*K*Ci taps.
  conv_tc::expect_within_bound("forward " + what, y, kernels::cpu::conv2d_forward(x, w, bias, p), s.y,
                               c.k * c.k * c.ci, prec, bias);
  CHECK(conv_tc::bitwise_equal(y, kernels::emu::conv2d_forward_tc(x, w, bias, p, prec, opt)));

  kernels::Conv2dGrads g = kernels::emu::conv2d_backward_tc(x, w, dy, p, true, true, true, prec, opt);
  kernels::Conv2dGrads e = kernels::cpu::conv2d_backward(x, w, dy, p, true, true, true);
  REQUIRE(g.dx.shape() == x.shape());
  REQUIRE(g.dw.shape() == w.shape());
  // dx: over K*K*Co taps; dw: over B*Ho*Wo pixels (plus the split fold, inside the bound's n + 2).
  conv_tc::expect_within_bound("dx " + what, g.dx, e.dx, s.dx, c.k * c.k * c.co, prec);
  conv_tc::expect_within_bound("dw " + what, g.dw, e.dw, s.dw, c.b * c.ho() * c.wo(), prec);
  conv_tc::expect_dbias("dbias " + what, g.dbias, e.dbias, dy, c.co);
  kernels::Conv2dGrads g2 = kernels::emu::conv2d_backward_tc(x, w, dy, p, true, true, true, prec, opt);
  CHECK(conv_tc::bitwise_equal(g.dx, g2.dx));
  CHECK(conv_tc::bitwise_equal(g.dw, g2.dw));
  CHECK(conv_tc::bitwise_equal(g.dbias, g2.dbias));
}

const std::vector<Dims> kCases = {
    {1, 4, 4, 3, 5, 3, 1},    // 3-channel input (one zero-padded chunk), batch 1, 4x4
    {2, 5, 7, 3, 8, 3, 1},    // 5x7 maps: rows of a tile straddle images
    {1, 5, 7, 13, 17, 1, 0},  // 1x1, odd channels on both sides
    {2, 4, 4, 19, 33, 3, 1},  // Co > 32: the rule leaves the narrow tile
    {1, 4, 4, 70, 9, 3, 1},   // K*K*Ci = 640 (bf16 chunks: 72 x 9): twenty 32-deep stages
    {1, 5, 7, 40, 12, 1, 0},  // 1x1, Ci a multiple of 8 but not of the 32-deep stage
};

}  // namespace

TEST_CASE("emu: tensor-core conv2d (bf16) matches the cpu within the bf16 bound", "[emu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  int i = 0;
  for (const Dims& c : kCases) check_case(rng, c, Precision::BF16, i++ % 2 == 0);
}

TEST_CASE("emu: tensor-core conv2d (tf32) matches the cpu within the tf32 bound", "[emu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  int i = 0;
  for (const Dims& c : kCases) check_case(rng, c, Precision::TF32, i++ % 2 == 1);
}

TEST_CASE("emu: every tensor-core conv tile shape and a dw split-K fold", "[emu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  // M = 2*5*7 = 70 pixels: a partial tile in every shape; dw over 70 pixels in 3 splits of 32
  // (bf16) or 5 of 16 (tf32) pixels, the last split partial.
  const Dims c{2, 5, 7, 11, 37, 3, 1};
  for (Precision prec : {Precision::BF16, Precision::TF32})
    for (int tile = 0; tile < kernels::emu::conv2d_tc_tile_count(); ++tile) {
      kernels::emu::TcConvOptions opt;
      opt.tile = tile;
      opt.splits = tile % 2 == 0 ? 5 : 1;
      check_case(rng, c, prec, tile % 2 == 1, opt);
    }
}

TEST_CASE("emu: the halo kernel (forward and dx) on odd shapes and patches and kernel sizes", "[emu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  // Patches of 8x16 output pixels: maps smaller than one (4x4, 5x7), larger in both dims (9x18:
  // four patches, three partial), several channel chunks with a partial last one (Ci = 70: 72
  // padded, chunks of 32 or 16), 3 channels, Co past one 64-wide block (70), K = 5 and 7 (halo
  // 12x20, 14x22), padding 0 and beyond K - 1 (dx then crops).
  const std::vector<Dims> cases = {{1, 4, 4, 3, 5, 3, 1},  {2, 5, 7, 3, 8, 3, 1},   {1, 9, 18, 5, 6, 3, 1},
                                   {1, 4, 4, 70, 9, 3, 1}, {1, 6, 5, 8, 70, 3, 1},  {1, 9, 9, 3, 6, 7, 3},
                                   {1, 7, 6, 5, 9, 3, 0},  {2, 4, 3, 6, 5, 3, 2},   {1, 6, 7, 4, 3, 5, 2}};
  kernels::emu::TcConvOptions opt;
  opt.halo = true;
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    int i = 0;
    for (const Dims& c : cases) check_case(rng, c, prec, i++ % 2 == 0, opt);
  }
  // The 128-channel blocks: Co (and dx's Ci) past one block (140: two, the second partial), below
  // it (70: one block, half idle), and 3 channels.
  kernels::emu::TcConvOptions wide = opt;
  wide.halo_wide = true;
  const std::vector<Dims> wide_cases = {{1, 6, 5, 8, 140, 3, 1}, {1, 9, 18, 140, 6, 3, 1}, {2, 4, 4, 70, 3, 3, 1}};
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    int i = 0;
    for (const Dims& c : wide_cases) check_case(rng, c, prec, i++ % 2 == 0, wide);
  }
  // K = 1 has no halo to share (and its buffers would alternate every step). The sums epilogue:
  // tests/emu/test_emu_conv2d_tc_sums.cpp.
  Tensor x = rnd(rng, {1, 4, 4, 8}), w1 = rnd(rng, {4, 1, 1, 8});
  CHECK_THROWS_WITH(kernels::emu::conv2d_forward_tc(x, w1, Tensor(), 0, Precision::BF16, opt), Catch::Contains("K >= 2"));
}

TEST_CASE("emu: conv2d_tc_plan reports the tiles and the dw split the rules run", "[emu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  // 512 pixels: 16 stages of 32 (bf16) or 32 of 16 (tf32), enough for the rule to split dw (2 or
  // 4 splits of at least 8 stages). Outputs of 6 channels and dx of 5 take the narrow 128x32
  // tile; dw's GEMM (6 rows) the 64x64 one. bench_conv2d --sweep prints this plan beside the
  // options it times, so it must be what runs: dw under the plan's explicit tile and split is
  // bitwise dw under the rule.
  const Dims c{2, 16, 16, 5, 6, 3, 1};
  Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  Tensor dy = rnd(rng, {c.b, c.ho(), c.wo(), c.co});
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    INFO(precision_name(prec));
    const kernels::emu::TcConvPlan plan = kernels::emu::conv2d_tc_plan(c.b, c.h, c.w, c.ci, c.co, c.k, 1, prec);
    CHECK(plan.fwd_tile == 3);
    CHECK(plan.dx_tile == 3);
    CHECK(plan.dw_tile == 2);
    CHECK(plan.dw_splits == (prec == Precision::BF16 ? 2 : 4));
    kernels::emu::TcConvOptions opt;
    opt.tile = plan.dw_tile;
    opt.splits = plan.dw_splits;
    CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec).dw,
                                 kernels::emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec, opt).dw));
  }
  CHECK_THROWS_WITH(kernels::emu::conv2d_tc_plan(1, 4, 4, 3, 5, 3, 1, Precision::FP32),
                    Catch::Contains("conv2d_tc_plan") && Catch::Contains("fp32"));
}

TEST_CASE("emu: tensor-core conv2d with other kernel sizes and paddings", "[emu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  // Not the U-Net's, but the kernels take any K and padding: a 7x7/p3 stem on 3 channels, an
  // unpadded 3x3, and padding beyond K-1 (dx then runs with a negative padding that crops).
  const std::vector<Dims> cases = {{1, 9, 9, 3, 6, 7, 3}, {1, 7, 6, 5, 9, 3, 0}, {2, 4, 3, 6, 5, 1, 2}};
  for (Precision prec : {Precision::BF16, Precision::TF32})
    for (const Dims& c : cases) check_case(rng, c, prec, true);
}

TEST_CASE("emu: conv2d under a BF16 / TF32 context runs the tensor-core path", "[emu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  const Dims c{1, 4, 4, 3, 5, 3, 1};
  Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  Tensor dy = rnd(rng, {c.b, c.ho(), c.wo(), c.co});
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    Context ctx;
    ctx.set_precision(prec);
    ContextScope scope(ctx);
    // The dispatch is the tensor-core call itself: bitwise the same results.
    CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_forward(x, w, Tensor(), 1),
                                 kernels::emu::conv2d_forward_tc(x, w, Tensor(), 1, prec)));
    kernels::Conv2dGrads a = kernels::emu::conv2d_backward(x, w, dy, 1, true, true, false);
    kernels::Conv2dGrads b = kernels::emu::conv2d_backward_tc(x, w, dy, 1, true, true, false, prec);
    CHECK(conv_tc::bitwise_equal(a.dx, b.dx));
    CHECK(conv_tc::bitwise_equal(a.dw, b.dw));
    CHECK_FALSE(a.dbias.defined());
  }
  // fp32 (the default context): the SIMT kernels, which differ from the bf16 rounding.
  CHECK_FALSE(conv_tc::bitwise_equal(kernels::emu::conv2d_forward(x, w, Tensor(), 1),
                                     kernels::emu::conv2d_forward_tc(x, w, Tensor(), 1, Precision::BF16)));
}

TEST_CASE("emu: tf32 reads whole-chunk fp32 tensors directly, with the same bits as through the pre-pass",
          "[emu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  // Ci = 8, Co = 12 (multiples of 4 floats): aligned tensors go straight to cp.async and are
  // rounded at the fragment loads; views one float into a buffer are not 16-byte aligned and go
  // through the rounding, padding pre-pass instead. Rounding is the same cvt.rna either way.
  const Dims c{2, 5, 7, 8, 12, 3, 1};
  auto offset_copy = [](const Tensor& t) {
    std::vector<float> v = t.to_vector();
    v.insert(v.begin(), 0.0f);
    return Tensor::view_of(Tensor::from_vector({int64_t(v.size())}, v), 1, t.shape());
  };
  Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  Tensor dy = rnd(rng, {c.b, c.ho(), c.wo(), c.co});
  Tensor xo = offset_copy(x), wo = offset_copy(w), dyo = offset_copy(dy);
  REQUIRE(reinterpret_cast<uintptr_t>(xo.data()) % 16 != 0);
  CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_forward_tc(x, w, Tensor(), 1, Precision::TF32),
                               kernels::emu::conv2d_forward_tc(xo, wo, Tensor(), 1, Precision::TF32)));
  kernels::Conv2dGrads a = kernels::emu::conv2d_backward_tc(x, w, dy, 1, true, true, false, Precision::TF32);
  kernels::Conv2dGrads b = kernels::emu::conv2d_backward_tc(xo, wo, dyo, 1, true, true, false, Precision::TF32);
  CHECK(conv_tc::bitwise_equal(a.dx, b.dx));
  CHECK(conv_tc::bitwise_equal(a.dw, b.dw));
}

TEST_CASE("emu: the tensor-core conv reads a bf16 x in place of its pack, with the fp32 x's bits",
          "[emu][conv2d][tc][conv2d_keep]") {
  DD_TEST_RANDOM(rng);
  // A bf16 x (the conv input the tape keeps under BF16) is the bf16 path's operand: read in place
  // when its channels fill whole chunks and it is 16-byte aligned (Ci = 8), copied zero-padded
  // otherwise (Ci = 3; Ci = 16 two bytes into a buffer). The tf32 path and the fp32 kernels widen it.
  auto offset_bf16 = [](const Tensor& t) {  // t's bf16 bits one element into a buffer
    Tensor base = Tensor::empty({t.numel() + 1}, Device::CPU, DType::BF16);
    Tensor v = Tensor::view_of(base, 1, t.shape());
    v.copy_from(t);
    return v;
  };
  for (const Dims& c : {Dims{2, 5, 7, 8, 12, 3, 1}, Dims{1, 4, 4, 3, 5, 3, 1}, Dims{1, 4, 6, 16, 9, 1, 0}}) {
    const Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5);
    const Tensor bias = rnd(rng, {c.co}), dy = rnd(rng, {c.b, c.ho(), c.wo(), c.co});
    const int p = static_cast<int>(c.p);
    const Tensor xb = x.to(DType::BF16), xr = xb.to(DType::F32);
    for (const Tensor& in : {xb, offset_bf16(xb)}) {
      INFO(c.str() << (in.raw_data() == xb.raw_data() ? "" : " offset view"));
      // BF16: the same operand as the fp32 x's pack, so bitwise the fp32 x's results.
      CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_forward_tc(in, w, bias, p, Precision::BF16),
                                   kernels::emu::conv2d_forward_tc(x, w, bias, p, Precision::BF16)));
      Tensor sa, sb;
      CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_forward_tc_sums(in, w, bias, p, Precision::BF16, sa),
                                   kernels::emu::conv2d_forward_tc_sums(x, w, bias, p, Precision::BF16, sb)));
      CHECK(conv_tc::bitwise_equal(sa, sb));
      kernels::Conv2dGrads a = kernels::emu::conv2d_backward_tc(in, w, dy, p, true, true, true, Precision::BF16);
      kernels::Conv2dGrads b = kernels::emu::conv2d_backward_tc(x, w, dy, p, true, true, true, Precision::BF16);
      CHECK(conv_tc::bitwise_equal(a.dx, b.dx));
      CHECK(conv_tc::bitwise_equal(a.dw, b.dw));
      CHECK(conv_tc::bitwise_equal(a.dbias, b.dbias));
      // TF32 and fp32 read its values.
      CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_forward_tc(in, w, bias, p, Precision::TF32),
                                   kernels::emu::conv2d_forward_tc(xr, w, bias, p, Precision::TF32)));
      kernels::Conv2dGrads t = kernels::emu::conv2d_backward_tc(in, w, dy, p, false, true, false, Precision::TF32);
      CHECK(conv_tc::bitwise_equal(t.dw, kernels::emu::conv2d_backward_tc(xr, w, dy, p, false, true, false,
                                                                          Precision::TF32).dw));
      CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_forward(in, w, bias, p),
                                   kernels::emu::conv2d_forward(xr, w, bias, p)));
      CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_backward(in, w, dy, p, true, true, false).dw,
                                   kernels::emu::conv2d_backward(xr, w, dy, p, true, true, false).dw));
    }
  }
}

TEST_CASE("emu: the tensor-core conv reads a bf16 w as its operand, with the fp32 w's bits",
          "[emu][conv2d][tc][conv2d_keep]") {
  DD_TEST_RANDOM(rng);
  // A bf16 w (a Block's standardised weight the tape keeps under BF16) is the bf16 path's operand:
  // read in place when Ci fills whole chunks (Ci = 8, 16), copied zero-padded otherwise (Ci = 3), and
  // flipped for dx from its bf16 values. The tf32 path and the fp32 kernels read its values widened.
  for (const Dims& c : {Dims{2, 5, 7, 8, 12, 3, 1}, Dims{1, 4, 4, 3, 5, 3, 1}, Dims{1, 4, 6, 16, 9, 1, 0}}) {
    INFO(c.str());
    const Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5);
    const Tensor bias = rnd(rng, {c.co}), dy = rnd(rng, {c.b, c.ho(), c.wo(), c.co});
    const int p = static_cast<int>(c.p);
    const Tensor wb = w.to(DType::BF16), wr = wb.to(DType::F32);
    for (const Tensor& xin : {x, x.to(DType::BF16)}) {
      INFO("x " << dtype_name(xin.dtype()));
      CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_forward_tc(xin, wb, bias, p, Precision::BF16),
                                   kernels::emu::conv2d_forward_tc(xin, w, bias, p, Precision::BF16)));
      Tensor sa, sb;
      CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_forward_tc_sums(xin, wb, bias, p, Precision::BF16, sa),
                                   kernels::emu::conv2d_forward_tc_sums(xin, w, bias, p, Precision::BF16, sb)));
      CHECK(conv_tc::bitwise_equal(sa, sb));
      kernels::Conv2dGrads a = kernels::emu::conv2d_backward_tc(xin, wb, dy, p, true, true, true, Precision::BF16);
      kernels::Conv2dGrads b = kernels::emu::conv2d_backward_tc(xin, w, dy, p, true, true, true, Precision::BF16);
      CHECK(conv_tc::bitwise_equal(a.dx, b.dx));
      CHECK(conv_tc::bitwise_equal(a.dw, b.dw));
      CHECK(conv_tc::bitwise_equal(a.dbias, b.dbias));
    }
    CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_forward_tc(x, wb, bias, p, Precision::TF32),
                                 kernels::emu::conv2d_forward_tc(x, wr, bias, p, Precision::TF32)));
    CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_backward_tc(x, wb, dy, p, true, false, false, Precision::TF32).dx,
                                 kernels::emu::conv2d_backward_tc(x, wr, dy, p, true, false, false, Precision::TF32).dx));
    CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_forward(x, wb, bias, p), kernels::emu::conv2d_forward(x, wr, bias, p)));
    CHECK(conv_tc::bitwise_equal(kernels::emu::conv2d_backward(x, wb, dy, p, true, false, false).dx,
                                 kernels::emu::conv2d_backward(x, wr, dy, p, true, false, false).dx));
  }
}

TEST_CASE("emu: the tensor-core forward's bf16 y is the fp32 y rounded, bit for bit", "[emu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  // conv2d_forward_tc_bf16 (the linear attention's qkv under BF16): the epilogue rounds what it
  // would have stored. Odd Co (a pair's second column past N: two guarded stores) and even Co (one
  // 4-byte store), partial tiles, every tile shape, the halo kernels (K = 3), both operand types.
  // The output is NaN-poisoned like every other: an element no store reached fails.
  auto bits = [](const Tensor& t) {
    REQUIRE(t.dtype() == DType::BF16);
    return bf16_bits(t);
  };
  const std::vector<Dims> cases = {{2, 5, 7, 11, 37, 3, 1}, {1, 5, 7, 13, 8, 1, 0}, {1, 6, 5, 8, 70, 3, 1}};
  for (Precision prec : {Precision::BF16, Precision::TF32})
    for (const Dims& c : cases) {
      const Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5);
      const Tensor bias = c.co % 2 ? rnd(rng, {c.co}) : Tensor();
      const int p = static_cast<int>(c.p);
      for (const auto& opt :
           conv_tc::forward_options<kernels::emu::TcConvOptions>(kernels::emu::conv2d_tc_tile_count(), c.k)) {
        INFO(c.str() << " " << precision_name(prec) << " " << kernels::emu::conv2d_tc_option_label(opt, false));
        const Tensor y = kernels::emu::conv2d_forward_tc(x, w, bias, p, prec, opt);
        const Tensor yb = kernels::emu::conv2d_forward_tc_bf16(x, w, bias, p, prec, opt);
        REQUIRE(yb.shape() == y.shape());
        CHECK(bits(yb) == bits(y.to(Device::CPU).to(DType::BF16)));
      }
      // The entry point the autograd calls: under a tensor-core policy the same kernels; under
      // FP32 the fp32 kernels' y, rounded.
      {
        const PrecisionScope scope(prec);
        CHECK(bits(kernels::emu::conv2d_forward_bf16(x, w, bias, p)) ==
              bits(kernels::emu::conv2d_forward_tc(x, w, bias, p, prec).to(Device::CPU).to(DType::BF16)));
      }
      CHECK(bits(kernels::emu::conv2d_forward_bf16(x, w, bias, p)) ==
            bits(kernels::emu::conv2d_forward(x, w, bias, p).to(Device::CPU).to(DType::BF16)));
      // And the CPU backend's: its fp32 y, rounded.
      CHECK(bits(kernels::cpu::conv2d_forward_bf16(x, w, bias, p)) ==
            bits(kernels::cpu::conv2d_forward(x, w, bias, p).to(DType::BF16)));
    }
}
