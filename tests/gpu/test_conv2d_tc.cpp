// The tensor-core convolutions (kernels/cuda/conv2d_tc.cu) on the GPU vs the fp32 CPU backend, in
// bf16 and tf32: the emulator's odd shapes (tests/emu/test_emu_conv2d_tc.cpp) with every tile, and
// convolutions of the CIFAR-10 preset U-Net (dim 64, mults 1,2,4,8; bench/unet_conv_shapes.cpp
// records them all) at batch 2. Each element is held to the bound of tests/support/conv_tc_bounds.h
// (rounding of both operands, bf16 u = 2^-8 / tf32 u = 2^-11, plus fp32 sums over the reduction
// length), results must repeat bitwise, and the Context precision must route conv2d_* here.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/context.h"
#include "kernels/conv2d.h"
#include "tests/support/compare.h"
#include "tests/support/conv_tc_bounds.h"

using namespace dd;
using namespace dd::test;
using dd::test::conv_tc::Dims;

namespace {

Tensor random_tensor(Random& rng, const Shape& shape, double scale = 1.0) {
  return from_double(shape, rng.normal_f32(shape_numel(shape), scale));
}
Tensor gpu(const Tensor& t) { return t.defined() ? t.to(Device::CUDA) : Tensor(); }

void check_case(Random& rng, const Dims& c, Precision prec, bool with_bias, kernels::cuda::TcConvOptions opt = {}) {
  const std::string what = c.str() + (with_bias ? " bias" : "") + " tile " +
                           kernels::cuda::conv2d_tc_tile_name(opt.tile) + " splits " + std::to_string(opt.splits) +
                           (opt.halo ? " halo" : "") + (opt.halo_wide ? " wide" : "") + (opt.dw_halo ? " dw halo" : "");
  INFO(what << " " << precision_name(prec));
  Tensor x = random_tensor(rng, {c.b, c.h, c.w, c.ci}), w = random_tensor(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  Tensor bias = with_bias ? random_tensor(rng, {c.co}) : Tensor();
  Tensor dy = random_tensor(rng, {c.b, c.ho(), c.wo(), c.co});
  Tensor gx = gpu(x), gw = gpu(w), gb = gpu(bias), gdy = gpu(dy);
  const int p = static_cast<int>(c.p);
  const conv_tc::AbsSums s = conv_tc::abs_sums(c, x, w, dy);

  Tensor y = kernels::cuda::conv2d_forward_tc(gx, gw, gb, p, prec, opt);
  REQUIRE(y.device() == Device::CUDA);
  REQUIRE(y.shape() == Shape{c.b, c.ho(), c.wo(), c.co});
  // Reduction over K*K*Ci taps.
  conv_tc::expect_within_bound("forward " + what, y, kernels::cpu::conv2d_forward(x, w, bias, p), s.y,
                               c.k * c.k * c.ci, prec, bias);
  CHECK(conv_tc::bitwise_equal(y, kernels::cuda::conv2d_forward_tc(gx, gw, gb, p, prec, opt)));

  kernels::Conv2dGrads g = kernels::cuda::conv2d_backward_tc(gx, gw, gdy, p, true, true, true, prec, opt);
  kernels::Conv2dGrads e = kernels::cpu::conv2d_backward(x, w, dy, p, true, true, true);
  REQUIRE(g.dx.shape() == x.shape());
  REQUIRE(g.dw.shape() == w.shape());
  // dx: over K*K*Co taps; dw: over B*Ho*Wo pixels (plus the split fold, inside the bound's n + 2).
  conv_tc::expect_within_bound("dx " + what, g.dx, e.dx, s.dx, c.k * c.k * c.co, prec);
  conv_tc::expect_within_bound("dw " + what, g.dw, e.dw, s.dw, c.b * c.ho() * c.wo(), prec);
  conv_tc::expect_dbias("dbias " + what, g.dbias, e.dbias, dy, c.co);
  kernels::Conv2dGrads g2 = kernels::cuda::conv2d_backward_tc(gx, gw, gdy, p, true, true, true, prec, opt);
  CHECK(conv_tc::bitwise_equal(g.dx, g2.dx));
  CHECK(conv_tc::bitwise_equal(g.dw, g2.dw));
  CHECK(conv_tc::bitwise_equal(g.dbias, g2.dbias));
}

const std::vector<Dims> kOddCases = {
    {1, 4, 4, 3, 5, 3, 1},   {2, 5, 7, 3, 8, 3, 1},  {1, 5, 7, 13, 17, 1, 0},
    {2, 4, 4, 19, 33, 3, 1}, {1, 4, 4, 70, 9, 3, 1}, {1, 5, 7, 40, 12, 1, 0},
};

// Convolutions of the CIFAR-10 preset at batch 2 (the full batch-128 set runs in bench_conv2d).
const std::vector<Dims> kPresetCases = {
    {2, 32, 32, 3, 64, 3, 1},     // init conv (3 channels)
    {2, 32, 32, 64, 64, 3, 1},    // level 0 block
    {2, 16, 16, 64, 128, 3, 1},   // level 1 block, first conv
    {2, 16, 16, 128, 128, 3, 1},  //
    {2, 8, 8, 256, 256, 3, 1},    // level 2
    {2, 4, 4, 512, 512, 3, 1},    // level 3 / mid: 4x4 maps
    {2, 32, 32, 128, 64, 1, 0},   // a 1x1 residual projection of the up path
    {2, 4, 4, 512, 1536, 1, 0},   // an attention to_qkv-like 1x1
    {2, 32, 32, 64, 3, 1, 0},     // final conv: 3 outputs
};

}  // namespace

TEST_CASE("gpu: tensor-core conv2d on odd shapes, every tile, bf16 and tf32", "[gpu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    int i = 0;
    for (const Dims& c : kOddCases) check_case(rng, c, prec, i++ % 2 == 0);
    for (int tile = 0; tile < kernels::cuda::conv2d_tc_tile_count(); ++tile) {
      kernels::cuda::TcConvOptions opt;
      opt.tile = tile;
      opt.splits = tile % 2 == 0 ? 5 : 1;
      check_case(rng, {2, 5, 7, 11, 37, 3, 1}, prec, tile % 2 == 1, opt);
    }
  }
}

TEST_CASE("gpu: the halo kernel on odd shapes and the preset's 3x3 convolutions", "[gpu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  // As tests/emu/test_emu_conv2d_tc.cpp's halo case, plus the preset's 3x3 shapes on hardware.
  const std::vector<Dims> odd = {{1, 4, 4, 3, 5, 3, 1},  {1, 9, 18, 5, 6, 3, 1}, {1, 4, 4, 70, 9, 3, 1},
                                 {1, 6, 5, 8, 70, 3, 1}, {1, 9, 9, 3, 6, 7, 3},  {2, 4, 3, 6, 5, 3, 2}};
  kernels::cuda::TcConvOptions opt;
  opt.halo = true;
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    int i = 0;
    for (const Dims& c : odd) check_case(rng, c, prec, i++ % 2 == 0, opt);
    for (const Dims& c : kPresetCases)
      if (c.k == 3) check_case(rng, c, prec, i++ % 2 == 0, opt);
  }
  // The 128-channel blocks: odd channel counts past and below one block, and the preset's 3x3
  // shapes with more than 64 outputs either way.
  kernels::cuda::TcConvOptions wide = opt;
  wide.halo_wide = true;
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    int i = 0;
    for (const Dims& c : {Dims{1, 6, 5, 8, 140, 3, 1}, Dims{1, 9, 18, 140, 6, 3, 1}, Dims{2, 4, 4, 70, 3, 3, 1}})
      check_case(rng, c, prec, i++ % 2 == 0, wide);
    for (const Dims& c : kPresetCases)
      if (c.k == 3 && (c.co > 64 || c.ci > 64)) check_case(rng, c, prec, i++ % 2 == 0, wide);
  }
}

TEST_CASE("gpu: the dw halo kernel on odd shapes and the preset's 3x3 convolutions", "[gpu][conv2d][tc][dw_halo]") {
  DD_TEST_RANDOM(rng);
  // As tests/emu/test_emu_conv2d_tc_wgrad_halo.cpp: every patch geometry (four 4x4 maps, a whole
  // 8x8 map, 4x16 rows, patches past the output), channel blocks past 64 and 32, paddings 0 and 2,
  // forced splits; then the preset's 3x3 shapes under the halo kernel's rule split.
  const std::vector<Dims> odd = {{1, 4, 4, 3, 5, 3, 1},  {5, 4, 4, 19, 33, 3, 1}, {2, 8, 8, 40, 70, 3, 1},
                                 {1, 9, 14, 70, 9, 3, 1}, {2, 7, 6, 6, 12, 3, 0}, {1, 5, 7, 8, 10, 3, 2}};
  kernels::cuda::TcConvOptions opt;
  opt.dw_halo = true;
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    int i = 0;
    for (const Dims& c : odd) {
      opt.splits = i % 3 == 1 ? 2 : 0;
      check_case(rng, c, prec, i++ % 2 == 0, opt);
    }
    opt.splits = 0;
    for (const Dims& c : kPresetCases)
      if (c.k == 3) check_case(rng, c, prec, i++ % 2 == 0, opt);
  }
}

TEST_CASE("gpu: tensor-core conv2d on the preset's convolutions", "[gpu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    int i = 0;
    for (const Dims& c : kPresetCases) check_case(rng, c, prec, i++ % 2 == 0);
  }
}

TEST_CASE("gpu: conv2d under a BF16 / TF32 context runs the tensor-core path", "[gpu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  const Dims c{2, 8, 8, 64, 64, 3, 1};
  Tensor x = gpu(random_tensor(rng, {c.b, c.h, c.w, c.ci})), w = gpu(random_tensor(rng, {c.co, c.k, c.k, c.ci}, 0.5));
  Tensor dy = gpu(random_tensor(rng, {c.b, c.ho(), c.wo(), c.co}));
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    Context ctx;
    ctx.set_precision(prec);
    ContextScope scope(ctx);
    CHECK(conv_tc::bitwise_equal(kernels::conv2d_forward(x, w, Tensor(), 1),
                                 kernels::cuda::conv2d_forward_tc(x, w, Tensor(), 1, prec)));
    kernels::Conv2dGrads a = kernels::conv2d_backward(x, w, dy, 1, true, true, true);
    kernels::Conv2dGrads b = kernels::cuda::conv2d_backward_tc(x, w, dy, 1, true, true, true, prec);
    CHECK(conv_tc::bitwise_equal(a.dx, b.dx));
    CHECK(conv_tc::bitwise_equal(a.dw, b.dw));
    CHECK(conv_tc::bitwise_equal(a.dbias, b.dbias));
  }
}

TEST_CASE("gpu: the tensor-core conv reads bf16 x and w as its operands, with the fp32 tensors' bits",
          "[gpu][conv2d][tc][conv2d_keep]") {
  DD_TEST_RANDOM(rng);
  // Under BF16 the tape keeps the convs' inputs and the Blocks' standardised weights in bf16: read
  // in place when Ci fills whole chunks (Ci = 64), zero-padded otherwise (Ci = 3); bitwise the
  // results of the fp32 tensors, which the conv rounds to the same bf16 values.
  for (const Dims& c : {Dims{2, 8, 8, 64, 64, 3, 1}, Dims{2, 9, 7, 3, 32, 3, 1}}) {
    INFO(c.str());
    Tensor x = gpu(random_tensor(rng, {c.b, c.h, c.w, c.ci})), w = gpu(random_tensor(rng, {c.co, c.k, c.k, c.ci}, 0.5));
    Tensor bias = gpu(random_tensor(rng, {c.co})), dy = gpu(random_tensor(rng, {c.b, c.ho(), c.wo(), c.co}));
    const Tensor xb = x.to(DType::BF16), wb = w.to(DType::BF16);
    const int p = static_cast<int>(c.p);
    CHECK(conv_tc::bitwise_equal(kernels::cuda::conv2d_forward_tc(xb, wb, bias, p, Precision::BF16),
                                 kernels::cuda::conv2d_forward_tc(x, w, bias, p, Precision::BF16)));
    kernels::Conv2dGrads a = kernels::cuda::conv2d_backward_tc(xb, wb, dy, p, true, true, true, Precision::BF16);
    kernels::Conv2dGrads b = kernels::cuda::conv2d_backward_tc(x, w, dy, p, true, true, true, Precision::BF16);
    CHECK(conv_tc::bitwise_equal(a.dx, b.dx));
    CHECK(conv_tc::bitwise_equal(a.dw, b.dw));
    CHECK(conv_tc::bitwise_equal(a.dbias, b.dbias));
  }
}

TEST_CASE("gpu: the tensor-core forward's bf16 y is the fp32 y rounded, bit for bit", "[gpu][conv2d][tc]") {
  DD_TEST_RANDOM(rng);
  // conv2d_forward_tc_bf16 (the linear attention's qkv under BF16): the preset's qkv convs (1x1,
  // 64 and 128 channels to 384) at batch 2, an odd Co (two guarded stores a pair) and a 3x3 with
  // the halo kernels; every tile.
  const std::vector<Dims> cases = {{2, 32, 32, 64, 384, 1, 0}, {2, 16, 16, 128, 384, 1, 0}, {2, 9, 7, 19, 37, 3, 1}};
  for (Precision prec : {Precision::BF16, Precision::TF32})
    for (const Dims& c : cases) {
      Tensor x = gpu(random_tensor(rng, {c.b, c.h, c.w, c.ci})), w = gpu(random_tensor(rng, {c.co, c.k, c.k, c.ci}, 0.5));
      Tensor bias = c.co % 2 ? gpu(random_tensor(rng, {c.co})) : Tensor();
      const int p = static_cast<int>(c.p);
      for (const auto& opt :
           conv_tc::forward_options<kernels::cuda::TcConvOptions>(kernels::cuda::conv2d_tc_tile_count(), c.k)) {
        INFO(c.str() << " " << precision_name(prec) << " " << kernels::cuda::conv2d_tc_option_label(opt, false));
        const Tensor y = kernels::cuda::conv2d_forward_tc(x, w, bias, p, prec, opt);
        const Tensor yb = kernels::cuda::conv2d_forward_tc_bf16(x, w, bias, p, prec, opt);
        REQUIRE(yb.dtype() == DType::BF16);
        REQUIRE(yb.shape() == y.shape());
        CHECK(bf16_bits(yb) == bf16_bits(y.to(DType::BF16)));
      }
    }
}
