// GroupNorm's statistics from the tensor-core conv's epilogue on the GPU: the emulator's checks
// (tests/emu/test_emu_conv2d_tc_sums.cpp, bounds in tests/support/conv_tc_sums.h) on straddling
// small maps and on a U-Net-sized 4x4 / 8x8 block, plus the dispatch: conv2d_group_norm_act_forward
// under a BF16 / TF32 Context against the two separate ops.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/context.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_norm_act.h"
#include "tests/support/compare.h"
#include "tests/support/conv_tc_bounds.h"
#include "tests/support/conv_tc_sums.h"

using namespace dd;
using namespace dd::test;
using dd::test::conv_tc::Dims;

namespace {

Tensor random_gpu(Random& rng, const Shape& shape, double scale = 1.0) {
  return from_double(shape, rng.normal_f32(shape_numel(shape), scale)).to(Device::CUDA);
}

// halo: 0 the tiles, 1 the halo kernel, 2 its 128-channel blocks.
void check_case(Random& rng, const Dims& c, int64_t groups, Precision prec, bool with_bias, bool with_ss,
                int tile = -1, int halo = 0) {
  const std::string what = c.str() + " groups " + std::to_string(groups) + (with_bias ? " bias" : "") +
                           (with_ss ? " scale/shift" : "") + " tile " + kernels::cuda::conv2d_tc_tile_name(tile) +
                           (halo ? (halo == 2 ? " halo128" : " halo") : "") + " " + precision_name(prec);
  INFO(what);
  Tensor x = random_gpu(rng, {c.b, c.h, c.w, c.ci}), w = random_gpu(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  Tensor bias = with_bias ? random_gpu(rng, {c.co}) : Tensor();
  Tensor gamma = random_gpu(rng, {c.co}), beta = random_gpu(rng, {c.co});
  Tensor scale = with_ss ? random_gpu(rng, {c.b, c.co}, 0.5) : Tensor();
  Tensor shift = with_ss ? random_gpu(rng, {c.b, c.co}) : Tensor();
  const int p = static_cast<int>(c.p);
  kernels::cuda::TcConvOptions opt;
  opt.tile = tile;
  opt.halo = halo > 0;
  opt.halo_wide = halo == 2;

  Tensor sums, sums2;
  Tensor y = kernels::cuda::conv2d_forward_tc_sums(x, w, bias, p, prec, sums, opt);
  Tensor y_plain = kernels::cuda::conv2d_forward_tc(x, w, bias, p, prec, opt);
  CHECK(conv_tc::bitwise_equal(y, y_plain));
  conv_tc::expect_sums(what, y_plain, sums, c.b, c.ho() * c.wo(), c.co);
  kernels::cuda::conv2d_forward_tc_sums(x, w, bias, p, prec, sums2, opt);
  CHECK(sums.to(Device::CPU).to_bytes() == sums2.to(Device::CPU).to_bytes());

  kernels::GroupNormActOut r = kernels::cuda::group_norm_act_forward(y_plain, gamma, beta, scale, shift, groups, 1e-5f);
  if (tile < 0 && !halo) {  // the dispatch picks the tile itself
    Context ctx;
    ctx.set_precision(prec);
    ContextScope scope(ctx);
    kernels::Conv2dNormActOut f =
        kernels::conv2d_group_norm_act_forward({x}, w, bias, p, gamma, beta, scale, shift, groups, 1e-5f);
    CHECK(conv_tc::bitwise_equal(f.h, y_plain));
    conv_tc::expect_fused_close(what, f.n, r, y_plain, gamma, beta, scale, shift, groups);
    // bf16_h: h's bf16 rounding, written in y's pass; y itself the same bits.
    kernels::Conv2dNormActOut fb =
        kernels::conv2d_group_norm_act_forward({x}, w, bias, p, gamma, beta, scale, shift, groups, 1e-5f, true);
    CHECK(conv_tc::bitwise_equal(fb.n.y, f.n.y));
    REQUIRE(fb.h.dtype() == DType::BF16);
    CHECK(fb.h.to(Device::CPU).to_bytes() == y_plain.to(Device::CPU).to(DType::BF16).to_bytes());
    // bf16_y: y itself written in bf16, the fp32 y's bits rounded.
    kernels::Conv2dNormActOut fy = kernels::conv2d_group_norm_act_forward({x}, w, bias, p, gamma, beta, scale, shift,
                                                                          groups, 1e-5f, false, true);
    REQUIRE(fy.n.y.dtype() == DType::BF16);
    CHECK(fy.n.y.to(Device::CPU).to_bytes() == f.n.y.to(Device::CPU).to(DType::BF16).to_bytes());
  } else {
    kernels::GroupNormActOut f =
        kernels::cuda::group_norm_act_forward_sums(y, gamma, beta, scale, shift, groups, 1e-5f, sums);
    conv_tc::expect_fused_close(what, f, r, y_plain, gamma, beta, scale, shift, groups);
  }
}

}  // namespace

TEST_CASE("gpu: tensor-core conv epilogue sums and the fused conv + group norm", "[gpu][conv2d][tc][tc_sums]") {
  DD_TEST_RANDOM(rng);
  // Straddling small maps (as in the emulator), then U-Net bottom blocks at batch 8.
  const std::vector<std::pair<Dims, int64_t>> cases = {
      {{3, 4, 4, 3, 10, 3, 1}, 5},     {{2, 5, 7, 3, 8, 3, 1}, 4},       {{5, 2, 3, 6, 36, 3, 1}, 4},
      {{8, 4, 4, 256, 512, 3, 1}, 32}, {{8, 8, 8, 128, 256, 3, 1}, 32}, {{8, 8, 8, 256, 256, 1, 0}, 32},
  };
  int i = 0;
  for (Precision prec : {Precision::BF16, Precision::TF32})
    for (const auto& [d, groups] : cases) {
      check_case(rng, d, groups, prec, i % 2 == 0, i % 3 != 0);
      ++i;
    }
  for (Precision prec : {Precision::BF16, Precision::TF32})
    for (int tile = 0; tile < kernels::cuda::conv2d_tc_tile_count(); ++tile)
      check_case(rng, {3, 5, 7, 5, 37, 3, 1}, 37, prec, tile % 2 == 0, tile % 2 == 1, tile);
}

TEST_CASE("gpu: the halo kernel's epilogue sums", "[gpu][conv2d][tc][tc_sums]") {
  DD_TEST_RANDOM(rng);
  // As the emulator's halo cases (maps below and above one 8x16 patch, channel blocks past one),
  // then the preset's 3x3 Block shapes at batch 4, in both block widths.
  const std::vector<std::pair<Dims, int64_t>> cases = {
      {{3, 4, 4, 5, 37, 3, 1}, 37},     {{2, 9, 18, 5, 70, 3, 1}, 7},     {{4, 32, 32, 64, 64, 3, 1}, 8},
      {{4, 16, 16, 128, 128, 3, 1}, 8}, {{4, 8, 8, 256, 256, 3, 1}, 8},   {{4, 4, 4, 512, 512, 3, 1}, 8},
  };
  int i = 0;
  for (Precision prec : {Precision::BF16, Precision::TF32})
    for (const auto& [d, groups] : cases)
      for (int halo : {1, 2}) {
        if (halo == 2 && d.co <= 64) continue;
        check_case(rng, d, groups, prec, i % 2 == 0, i % 3 != 0, -1, halo);
        ++i;
      }
}
