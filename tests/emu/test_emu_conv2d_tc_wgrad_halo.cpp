// The 3x3 weight gradient's halo kernel (TcConvOptions::dw_halo, kernels/cuda/conv2d_tc_wgrad_halo.cuh)
// on the emulator, against the fp32 CPU backend in bf16 and tf32: patches of every geometry the
// plan makes (4x16 rows of a wide map, a whole 8x8 map, four whole 4x4 maps, and odd maps whose
// patches run past the output), channel blocks past 64 outputs and 32 inputs, 3-channel inputs,
// images past B inside a patch, paddings 0, 1 and 2, forced splits with a partial last one. Each
// element is held to the bound of tests/support/conv_tc_bounds.h over the B*Ho*Wo pixels; the
// runner NaN-poisons outputs; a second run must repeat bitwise. The patch pixels outside the
// output must add exact zeros: an x holding infinities where no output pixel reads them leaves dw
// finite.
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>
#include <cmath>

#include "tests/emu/emu_test_util.h"
#include "tests/support/conv_tc_bounds.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;
using dd::test::conv_tc::Dims;
namespace emu = dd::kernels::emu;

namespace {

emu::TcConvOptions halo_options(int splits) {
  emu::TcConvOptions o;
  o.dw_halo = true;
  o.splits = splits;
  return o;
}

void check_dw(Random& rng, const Dims& c, Precision prec, int splits) {
  const std::string what = c.str() + " splits " + std::to_string(splits);
  INFO(what << " " << precision_name(prec));
  const Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  const Tensor dy = rnd(rng, {c.b, c.ho(), c.wo(), c.co});
  const conv_tc::AbsSums s = conv_tc::abs_sums(c, x, w, dy);
  const int p = static_cast<int>(c.p);
  const emu::TcConvOptions opt = halo_options(splits);
  const kernels::Conv2dGrads g = emu::conv2d_backward_tc(x, w, dy, p, false, true, true, prec, opt);
  const kernels::Conv2dGrads e = kernels::cpu::conv2d_backward(x, w, dy, p, false, true, true);
  REQUIRE(g.dw.shape() == w.shape());
  // A reduction over B*Ho*Wo pixels (the split fold inside the bound's n + 2).
  conv_tc::expect_within_bound("dw halo " + what, g.dw, e.dw, s.dw, c.b * c.ho() * c.wo(), prec);
  conv_tc::expect_dbias("dbias " + what, g.dbias, e.dbias, dy, c.co);
  CHECK(conv_tc::bitwise_equal(g.dw, emu::conv2d_backward_tc(x, w, dy, p, false, true, false, prec, opt).dw));
}

}  // namespace

TEST_CASE("emu: the dw halo kernel matches the cpu on every patch geometry", "[emu][conv2d][tc][dw_halo]") {
  DD_TEST_RANDOM(rng);
  const std::vector<Dims> cases = {
      {1, 4, 4, 3, 5, 3, 1},     // four 4x4 maps a patch, three of them past B; 3 channels (one chunk)
      {5, 4, 4, 19, 33, 3, 1},   // two patches of four images, the second with one
      {2, 8, 8, 40, 70, 3, 1},   // a whole 8x8 map a patch; Co 70: two 64-channel blocks; Ci 40: two 32-blocks
      {1, 9, 14, 70, 9, 3, 1},   // 4x16 patches, 3 rows of them (the last partial), 2 columns past Wo
      {2, 7, 6, 6, 12, 3, 0},    // padding 0: 5x4 outputs in an 8x4 patch, two images
      {1, 5, 7, 8, 10, 3, 2},    // padding 2: 7x9 outputs, the halo starts two pixels out
      {3, 2, 33, 5, 4, 3, 1},    // 2x33: 2x16 patches, two images each, a 33rd column alone
      {17, 2, 2, 5, 6, 3, 1},    // 2x2 maps: 16 images a patch (a 256-row halo), the second patch holds one
  };
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    int i = 0;
    for (const Dims& c : cases) check_dw(rng, c, prec, i++ % 3 == 1 ? 2 : 0);
  }
}

TEST_CASE("emu: the dw halo kernel's forced splits, and its plan", "[emu][conv2d][tc][dw_halo]") {
  DD_TEST_RANDOM(rng);
  // 2x16x16 maps: 4x16 patches, 8 of them: 3 splits of 3, 3 and 2 patches; 8 splits of one; the
  // rule's split (plan.dw_halo_splits) is what runs under splits 0.
  const Dims c{2, 16, 16, 6, 7, 3, 1};
  for (Precision prec : {Precision::BF16, Precision::TF32})
    for (int splits : {3, 8, 1}) check_dw(rng, c, prec, splits);
  const Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5);
  const Tensor dy = rnd(rng, {c.b, c.ho(), c.wo(), c.co});
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    INFO(precision_name(prec));
    const emu::TcConvPlan plan = emu::conv2d_tc_plan(c.b, c.h, c.w, c.ci, c.co, c.k, 1, prec);
    // One channel block (7 x 6 channels): about 264 blocks wanted, at least 4 patches a split: 2.
    CHECK(plan.dw_halo_splits == 2);
    CHECK(conv_tc::bitwise_equal(emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec, halo_options(0)).dw,
                                 emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec,
                                                         halo_options(plan.dw_halo_splits)).dw));
    // Different splits fold differently: not a bit pattern to rely on, but within the bound (above).
  }
  // 1x1 output maps: 64 images a patch, a 576-row halo: 166 KB of shared memory in bf16, which fits
  // and runs; tf32 needs 324 KB, past the 227 KB a block may have: no split offered, and forcing the
  // kernel is refused by name.
  {
    const Dims one{3, 1, 1, 5, 6, 3, 1};
    check_dw(rng, one, Precision::BF16, 0);
    CHECK(emu::conv2d_tc_plan(3, 1, 1, 5, 6, 3, 1, Precision::BF16).dw_halo_splits == 1);
    CHECK(emu::conv2d_tc_plan(3, 1, 1, 5, 6, 3, 1, Precision::TF32).dw_halo_splits == 0);
    const Tensor x1 = rnd(rng, {3, 1, 1, 5}), w1 = rnd(rng, {6, 3, 3, 5}), dy1 = rnd(rng, {3, 1, 1, 6});
    CHECK_THROWS_WITH(emu::conv2d_backward_tc(x1, w1, dy1, 1, false, true, false, Precision::TF32, halo_options(0)),
                      Catch::Contains("227 KB"));
  }
  // Only 3x3 kernels have a warp per tap.
  CHECK(emu::conv2d_tc_plan(1, 4, 4, 3, 5, 1, 0, Precision::BF16).dw_halo_splits == 0);
  const Tensor x1 = rnd(rng, {1, 4, 4, 8}), w1 = rnd(rng, {4, 1, 1, 8}), dy1 = rnd(rng, {1, 4, 4, 4});
  CHECK_THROWS_WITH(emu::conv2d_backward_tc(x1, w1, dy1, 0, false, true, false, Precision::BF16, halo_options(0)),
                    Catch::Contains("3x3"));
}

TEST_CASE("emu: the dw halo kernel's pixels outside the output add exact zeros", "[emu][conv2d][tc][dw_halo]") {
  DD_TEST_RANDOM(rng);
  // Padding 0 on 6x5 maps: 4x3 outputs, in 4x4 patches (four images each, three past B). x's last
  // column (iw = 4) is read only through output column 2 at tap kw = 2; the patch's column 3, past
  // Wo, would read it at kw = 1. An infinity there times that pixel's zero dy would be NaN unless
  // the pixel reads the zero row: only dw[:, :, 2, 1] may see it (inf or NaN, as on the CPU).
  const Dims c{1, 6, 5, 4, 5, 3, 0};
  Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci});
  std::vector<float> xv = x.to_vector();
  for (int64_t ih = 0; ih < c.h; ++ih) xv[(ih * c.w + 4) * c.ci + 1] = INFINITY;
  x = Tensor::from_vector(x.shape(), xv);
  const Tensor w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5), dy = rnd(rng, {c.b, c.ho(), c.wo(), c.co});
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    INFO(precision_name(prec));
    const std::vector<float> dw =
        emu::conv2d_backward_tc(x, w, dy, 0, false, true, false, prec, halo_options(0)).dw.to_vector();
    int nonfinite_outside = 0, nonfinite_inside = 0;
    for (int64_t co = 0; co < c.co; ++co)
      for (int64_t kh = 0; kh < 3; ++kh)
        for (int64_t kw = 0; kw < 3; ++kw)
          for (int64_t ci = 0; ci < c.ci; ++ci) {
            const bool finite = std::isfinite(dw[((co * 3 + kh) * 3 + kw) * c.ci + ci]);
            if (kw == 2 && ci == 1)
              nonfinite_inside += !finite;
            else
              nonfinite_outside += !finite;
          }
    CHECK(nonfinite_outside == 0);
    CHECK(nonfinite_inside == c.co * 3);
  }
}
