// GroupNorm's statistics from the tensor-core conv's epilogue (kernels/cuda/conv2d_tc.cu,
// conv2d_forward_tc_sums) and the fused forward that uses them (group_norm_act_forward_sums), run
// on the CPU through the host emulation, in bf16 and tf32, on shapes whose row tiles straddle
// images (4x4 maps: 16 pixels, 5x7: 35, 2x3: 6 per image), Co no multiple of a tile, Ci = 3,
// batch 1, bias on and off, every tile shape. Outputs are NaN-poisoned by the runner: a sum slot
// or partial no kernel wrote reads NaN and fails the bounds.
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include "tests/emu/emu_test_util.h"
#include "tests/support/conv_tc_bounds.h"
#include "tests/support/conv_tc_sums.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;
using dd::test::conv_tc::Dims;

namespace {

void check_case(Random& rng, const Dims& c, Precision prec, bool with_bias, int64_t groups, bool with_ss,
                kernels::emu::TcConvOptions opt = {}) {
  const std::string what = c.str() + (with_bias ? " bias" : "") + (with_ss ? " scale/shift" : "") + " groups " +
                           std::to_string(groups) + " tile " + kernels::emu::conv2d_tc_tile_name(opt.tile) +
                           (opt.halo ? (opt.halo_wide ? " halo128" : " halo") : "") + " " + precision_name(prec);
  INFO(what);
  Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  Tensor bias = with_bias ? rnd(rng, {c.co}) : Tensor();
  const int p = static_cast<int>(c.p);

  Tensor sums, sums2;
  Tensor y = kernels::emu::conv2d_forward_tc_sums(x, w, bias, p, prec, sums, opt);
  Tensor y_plain = kernels::emu::conv2d_forward_tc(x, w, bias, p, prec, opt);
  CHECK(conv_tc::bitwise_equal(y, y_plain));
  conv_tc::expect_sums(what, y_plain, sums, c.b, c.ho() * c.wo(), c.co);
  Tensor y2 = kernels::emu::conv2d_forward_tc_sums(x, w, bias, p, prec, sums2, opt);
  CHECK(conv_tc::bitwise_equal(y, y2));
  CHECK(sums.to_bytes() == sums2.to_bytes());

  // The fused forward as kernels/conv2d_norm_act.cpp runs it on CUDA, against the two ops.
  Tensor gamma = rnd(rng, {c.co}), beta = rnd(rng, {c.co});
  Tensor scale = with_ss ? rnd(rng, {c.b, c.co}, 0.5) : Tensor(), shift = with_ss ? rnd(rng, {c.b, c.co}) : Tensor();
  kernels::GroupNormActOut f =
      kernels::emu::group_norm_act_forward_sums(y, gamma, beta, scale, shift, groups, 1e-5f, sums);
  kernels::GroupNormActOut r = kernels::emu::group_norm_act_forward(y_plain, gamma, beta, scale, shift, groups, 1e-5f);
  conv_tc::expect_fused_close(what, f, r, y_plain, gamma, beta, scale, shift, groups);

  // With the bf16 copy of h written in y's pass (kernels/conv2d_norm_act.h's bf16_h): the same y,
  // and the copy bitwise the CPU's rounding of h.
  Tensor yb;
  kernels::GroupNormActOut fb =
      kernels::emu::group_norm_act_forward_sums(y, gamma, beta, scale, shift, groups, 1e-5f, sums, &yb);
  CHECK(conv_tc::bitwise_equal(fb.y, f.y));
  REQUIRE(yb.dtype() == DType::BF16);
  CHECK(yb.to_bytes() == y.to(DType::BF16).to_bytes());

  // With y itself written in bf16 (kernels/conv2d_norm_act.h's bf16_y; C % 4 == 0 takes the quad
  // kernel, the other cases the scalar one): the fp32 y's bits rounded, the same statistics.
  kernels::GroupNormActOut fy =
      kernels::emu::group_norm_act_forward_sums(y, gamma, beta, scale, shift, groups, 1e-5f, sums, nullptr, true);
  REQUIRE(fy.y.dtype() == DType::BF16);
  CHECK(fy.y.to_bytes() == f.y.to(DType::BF16).to_bytes());
  CHECK(conv_tc::bitwise_equal(fy.mean, f.mean));
  CHECK(conv_tc::bitwise_equal(fy.rstd, f.rstd));
}

struct SumsCase {
  Dims d;
  int64_t groups;
};

const std::vector<SumsCase> kCases = {
    {{1, 4, 4, 3, 5, 3, 1}, 1},     // batch 1, Ci = 3, 4x4, Co = 5
    {{3, 4, 4, 3, 10, 3, 1}, 5},    // 48 rows: every tile holds all 3 images
    {{2, 5, 7, 3, 8, 3, 1}, 4},     // 5x7: 35 pixels, a tile boundary inside an image
    {{24, 2, 3, 6, 36, 3, 1}, 4},   // 2x3 maps: the 64-row tile's 2nd block holds 12 images (J's bound)
    {{2, 5, 7, 13, 40, 1, 0}, 8},   // 1x1, Co = 40: two 32-wide tiles, the second partial
    {{1, 5, 7, 40, 12, 1, 0}, 3},   // Ci a multiple of 8 but not of the stage
    {{1, 12, 12, 4, 6, 3, 1}, 3},   // 144 pixels: an image over 2 (128-row) or 3 (64-row) tiles
};

}  // namespace

TEST_CASE("emu: tensor-core conv epilogue sums (bf16) and the fused group norm from them", "[emu][conv2d][tc][tc_sums]") {
  DD_TEST_RANDOM(rng);
  int i = 0;
  for (const SumsCase& c : kCases) {
    check_case(rng, c.d, Precision::BF16, i % 2 == 0, c.groups, i % 3 != 0);
    ++i;
  }
}

TEST_CASE("emu: tensor-core conv epilogue sums (tf32) and the fused group norm from them", "[emu][conv2d][tc][tc_sums]") {
  DD_TEST_RANDOM(rng);
  int i = 0;
  for (const SumsCase& c : kCases) {
    check_case(rng, c.d, Precision::TF32, i % 2 == 1, c.groups, i % 3 == 0);
    ++i;
  }
}

TEST_CASE("emu: tensor-core conv epilogue sums with every tile shape", "[emu][conv2d][tc][tc_sums]") {
  DD_TEST_RANDOM(rng);
  // 3 images of 4x4 and of 5x7 (48 and 105 rows), 2 of 9x11 (99 pixels, 198 rows): 64- and 128-row
  // tiles straddle images, an image spans up to 3 tiles, the last tile is partial; Co = 37 leaves a
  // partial column tile in every shape.
  const std::vector<Dims> dims = {{3, 4, 4, 5, 37, 3, 1}, {3, 5, 7, 5, 37, 3, 1}, {2, 9, 11, 5, 37, 3, 1}};
  for (Precision prec : {Precision::BF16, Precision::TF32})
    for (const Dims& d : dims)
      for (int tile = 0; tile < kernels::emu::conv2d_tc_tile_count(); ++tile) {
        kernels::emu::TcConvOptions opt;
        opt.tile = tile;
        check_case(rng, d, prec, tile % 2 == 0, 37, tile % 2 == 1, opt);
      }
}

TEST_CASE("emu: the halo kernel's epilogue sums", "[emu][conv2d][tc][tc_sums]") {
  DD_TEST_RANDOM(rng);
  // A block per 8x16 patch of one image: maps smaller than a patch (4x4, batch 3), larger in both
  // dims (9x18: four patches of an image, three partial, two images), Co past one 64-channel block
  // (70) and, with 128-channel blocks, past one of those (140) and below it (70), K = 5.
  const std::vector<SumsCase> cases = {{{3, 4, 4, 5, 37, 3, 1}, 37}, {{2, 9, 18, 5, 70, 3, 1}, 7},
                                       {{1, 6, 5, 8, 12, 5, 2}, 3}};
  const std::vector<SumsCase> wide_cases = {{{2, 9, 18, 5, 140, 3, 1}, 4}, {{1, 4, 4, 3, 70, 3, 1}, 7}};
  kernels::emu::TcConvOptions opt;
  opt.halo = true;
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    int i = 0;
    for (const SumsCase& c : cases) {
      check_case(rng, c.d, prec, i % 2 == 0, c.groups, i % 3 != 1, opt);
      ++i;
    }
    kernels::emu::TcConvOptions wide = opt;
    wide.halo_wide = true;
    for (const SumsCase& c : wide_cases) {
      check_case(rng, c.d, prec, i % 2 == 0, c.groups, i % 3 != 1, wide);
      ++i;
    }
  }
}

TEST_CASE("emu: group_norm_act_forward_sums checks its sums", "[emu][group_norm_act][tc_sums]") {
  DD_TEST_RANDOM(rng);
  Tensor x = rnd(rng, {2, 3, 3, 4}), gamma = rnd(rng, {4}), beta = rnd(rng, {4});
  Tensor wrong = Tensor::zeros({2 * 2 * 4});  // B*C doubles short
  CHECK_THROWS_WITH(kernels::emu::group_norm_act_forward_sums(x, gamma, beta, Tensor(), Tensor(), 2, 1e-5f, wrong),
                    Catch::Contains("4 x B x C words"));
}
