// The tensor-core convolutions' autotuning (kernels/conv_autotune.h, kernels/cuda/conv2d_tc_tune.cu)
// on the emulator: with it on, the first call of a shape times every option and the call runs the
// one chosen (bitwise what that option gives when forced), later calls reuse it without timing, a
// saved table brings the same choices back, a graph capture never times, and with it off the
// rules run untouched. Which option is fastest on the emulator means nothing; that one is run is
// what is checked.
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include "tests/emu/emu_test_util.h"
#include "tests/support/conv_autotune_on.h"
#include "tests/support/conv_tc_bounds.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;
namespace emu = dd::kernels::emu;

namespace {

// The option the table holds for the key that starts with dir (one shape per test).
std::string chosen(const std::string& dir) {
  const auto e = kernels::conv_autotune_entry(dir);
  return e ? e->option : "";
}

int table_lines() { return static_cast<int>(kernels::conv_autotune_entries().size()); }

}  // namespace

TEST_CASE("emu: conv autotune runs the option it timed fastest and remembers it", "[emu][conv2d][tc][autotune]") {
  DD_TEST_RANDOM(rng);
  // 2x6x5 maps, Ci 11 -> Co 9, K 3: forward, dx and dw each time their options once.
  const conv_tc::Dims c{2, 6, 5, 11, 9, 3, 1};
  const Tensor x = rnd(rng, {c.b, c.h, c.w, c.ci}), w = rnd(rng, {c.co, c.k, c.k, c.ci}, 0.5), bias = rnd(rng, {c.co});
  const Tensor dy = rnd(rng, {c.b, c.ho(), c.wo(), c.co});
  const int tiles = emu::conv2d_tc_tile_count();
  for (Precision prec : {Precision::BF16, Precision::TF32}) {
    INFO(precision_name(prec));
    ConvAutotuneOn on;
    const Tensor y = emu::conv2d_forward_tc(x, w, bias, 1, prec);
    // Every tile and the halo kernel, each warmed up once and timed three times.
    CHECK(kernels::conv_autotune_stats().tuned == 1);
    CHECK(kernels::conv_autotune_stats().timed_runs == 4 * (tiles + 1));
    const std::string f = chosen("fwd");
    INFO("forward ran " << f);
    REQUIRE(!f.empty());
    CHECK(conv_tc::bitwise_equal(y, emu::conv2d_forward_tc(x, w, bias, 1, prec, emu::conv2d_tc_option_from_label(f, false))));

    const kernels::Conv2dGrads g = emu::conv2d_backward_tc(x, w, dy, 1, true, true, false, prec);
    CHECK(kernels::conv_autotune_stats().tuned == 3);
    const std::string dx = chosen("dx"), dw = chosen("dw");
    INFO("dx ran " << dx << ", dw ran " << dw);
    REQUIRE((!dx.empty() && !dw.empty()));
    CHECK(conv_tc::bitwise_equal(
        g.dx, emu::conv2d_backward_tc(x, w, dy, 1, true, false, false, prec, emu::conv2d_tc_option_from_label(dx, false)).dx));
    CHECK(conv_tc::bitwise_equal(
        g.dw, emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec, emu::conv2d_tc_option_from_label(dw, true)).dw));
    // Whatever was chosen is still the convolution.
    const conv_tc::AbsSums s = conv_tc::abs_sums(c, x, w, dy);
    const kernels::Conv2dGrads e = kernels::cpu::conv2d_backward(x, w, dy, 1, true, true, false);
    conv_tc::expect_within_bound("tuned dx", g.dx, e.dx, s.dx, c.k * c.k * c.co, prec);
    conv_tc::expect_within_bound("tuned dw", g.dw, e.dw, s.dw, c.b * c.ho() * c.wo(), prec);

    // The second time, the table answers: no timing, the same bits.
    const int64_t runs = kernels::conv_autotune_stats().timed_runs;
    CHECK(conv_tc::bitwise_equal(y, emu::conv2d_forward_tc(x, w, bias, 1, prec)));
    const kernels::Conv2dGrads g2 = emu::conv2d_backward_tc(x, w, dy, 1, true, true, false, prec);
    CHECK(conv_tc::bitwise_equal(g.dx, g2.dx));
    CHECK(conv_tc::bitwise_equal(g.dw, g2.dw));
    CHECK(kernels::conv_autotune_stats().timed_runs == runs);
    CHECK(kernels::conv_autotune_stats().hits == 3);
    CHECK(table_lines() == 3);
  }
}

TEST_CASE("emu: conv autotune's saved table brings the same choices back, untimed", "[emu][conv2d][tc][autotune]") {
  DD_TEST_RANDOM(rng);
  const Tensor x = rnd(rng, {1, 5, 7, 8}), w = rnd(rng, {6, 3, 3, 8}, 0.5), dy = rnd(rng, {1, 5, 7, 6});
  std::string table;
  Tensor y, sums;
  kernels::Conv2dGrads g;
  {
    ConvAutotuneOn on;
    y = emu::conv2d_forward_tc_sums(x, w, Tensor(), 1, Precision::BF16, sums);
    // The tiles and the halo kernel (6 channels: not its 128-channel form), with the sums epilogue.
    CHECK(kernels::conv_autotune_stats().timed_runs == 4 * (emu::conv2d_tc_tile_count() + 1));
    g = emu::conv2d_backward_tc(x, w, dy, 1, true, true, false, Precision::BF16);
    table = kernels::conv_autotune_table();
  }
  ConvAutotuneOn on;
  kernels::load_conv_autotune_table(table, "conv_autotune.tsv");
  Tensor sums2;
  CHECK(conv_tc::bitwise_equal(y, emu::conv2d_forward_tc_sums(x, w, Tensor(), 1, Precision::BF16, sums2)));
  CHECK(conv_tc::bitwise_equal(sums, sums2));
  const kernels::Conv2dGrads g2 = emu::conv2d_backward_tc(x, w, dy, 1, true, true, false, Precision::BF16);
  CHECK(conv_tc::bitwise_equal(g.dx, g2.dx));
  CHECK(conv_tc::bitwise_equal(g.dw, g2.dw));
  CHECK(kernels::conv_autotune_stats().timed_runs == 0);
  CHECK(kernels::conv_autotune_stats().hits == 3);
  // Loaded choices keep -1 for their time: the table says which were timed in this process.
  CHECK(kernels::conv_autotune_table().find("\t-1\n") != std::string::npos);
}

TEST_CASE("emu: conv autotune stays out of graph captures and off by default", "[emu][conv2d][tc][autotune]") {
  DD_TEST_RANDOM(rng);
  const Tensor x = rnd(rng, {1, 4, 4, 3}), w = rnd(rng, {5, 3, 3, 3}, 0.5);
  const Tensor rule = emu::conv2d_forward_tc(x, w, Tensor(), 1, Precision::BF16);
  CHECK(emu::conv2d_tc_tuned_forward(x, w, Tensor(), 1, Precision::BF16, false).is_rule());
  CHECK(kernels::conv_autotune_stats().timed_runs == 0);
  ConvAutotuneOn on;
  current_context().set_capturing(true);
  Tensor y;
  try {
    y = emu::conv2d_forward_tc(x, w, Tensor(), 1, Precision::BF16);
  } catch (...) {
    current_context().set_capturing(false);
    throw;
  }
  current_context().set_capturing(false);
  // A shape first met inside a capture runs the rules and is not remembered.
  CHECK(conv_tc::bitwise_equal(rule, y));
  CHECK(kernels::conv_autotune_stats().timed_runs == 0);
  CHECK(table_lines() == 0);
}

TEST_CASE("emu: conv autotune's option labels round-trip and bad ones are refused", "[emu][conv2d][tc][autotune]") {
  for (int t = 0; t < emu::conv2d_tc_tile_count(); ++t) {
    emu::TcConvOptions o;
    o.tile = t;
    CHECK(emu::conv2d_tc_option_from_label(emu::conv2d_tc_option_label(o, false), false).tile == t);
    emu::TcConvOptions d;
    d.dw_tile = t;
    d.splits = 3 * t;
    const emu::TcConvOptions back = emu::conv2d_tc_option_from_label(emu::conv2d_tc_option_label(d, true), true);
    CHECK((back.dw_tile == t && back.splits == 3 * t && back.tile == -1));
  }
  CHECK(emu::conv2d_tc_option_from_label("halo", false).halo);
  CHECK_FALSE(emu::conv2d_tc_option_from_label("halo", false).halo_wide);
  const emu::TcConvOptions wide = emu::conv2d_tc_option_from_label("halo128", false);
  CHECK((wide.halo && wide.halo_wide && emu::conv2d_tc_option_label(wide, false) == "halo128"));
  emu::TcConvOptions h;
  h.dw_halo = true;
  h.splits = 5;
  CHECK(emu::conv2d_tc_option_label(h, true) == "halo s5");
  const emu::TcConvOptions hb = emu::conv2d_tc_option_from_label("halo s5", true);
  CHECK((hb.dw_halo && hb.splits == 5 && hb.dw_tile == -1 && hb.tile == -1 && !hb.halo));
  for (const char* bad : {"t", "t99", "t1 s2", "halo ", "x3", "t-1", "halo s2", "halo64", "halo128 "})
    CHECK_THROWS_WITH(emu::conv2d_tc_option_from_label(bad, false), Catch::Contains("names no tensor-core conv option"));
  for (const char* bad : {"t1", "halo", "halo128", "t1 s", "t1 s-2", "t1 s2 x", "halo s", "halo s-1", "halo s2 x"})
    CHECK_THROWS_WITH(emu::conv2d_tc_option_from_label(bad, true), Catch::Contains("names no tensor-core conv option"));
}

TEST_CASE("emu: conv autotune runs the option its table names, not the rule's", "[emu][conv2d][tc][autotune]") {
  DD_TEST_RANDOM(rng);
  // 1x9x14 maps, 8 -> 6 channels: dw reduces 126 pixels in 4 bf16 stages, which the rule does not
  // split; a table that names 4 splits must get 4 splits' bits (a fold of four 32-pixel sums:
  // with 2 splits of 35 pixels, one of 3, the two orders rounded alike for every element of some
  // draws). With 8 input channels (one chunk) the forward's options (tiles, the halo kernel) all
  // sum the taps in one order: the same bits whichever runs (with more channels the halo kernel
  // sums chunk by chunk, and its bits differ).
  const Tensor x = rnd(rng, {1, 9, 14, 8}), w = rnd(rng, {6, 3, 3, 8}, 0.5), dy = rnd(rng, {1, 9, 14, 6});
  const Precision prec = Precision::BF16;
  const emu::TcConvPlan plan = emu::conv2d_tc_plan(1, 9, 14, 8, 6, 3, 1, prec);
  REQUIRE(plan.dw_splits == 1);
  const std::string dw_label = "t" + std::to_string(plan.dw_tile) + " s4";
  const Tensor dw_named =
      emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec, emu::conv2d_tc_option_from_label(dw_label, true)).dw;
  const Tensor dw_rule = emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec).dw;
  emu::TcConvOptions halo;
  halo.halo = true;
  const Tensor y_named = emu::conv2d_forward_tc(x, w, Tensor(), 1, prec, halo);
  const Tensor y_rule = emu::conv2d_forward_tc(x, w, Tensor(), 1, prec);
  // Else the check below could not tell the named option from the rule's.
  REQUIRE_FALSE(conv_tc::bitwise_equal(dw_named, dw_rule));

  std::string table;
  {  // The keys of this shape, as tuning writes them.
    ConvAutotuneOn on;
    emu::conv2d_forward_tc(x, w, Tensor(), 1, prec);
    emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec);
    const auto f = kernels::conv_autotune_entry("fwd"), d = kernels::conv_autotune_entry("dw");
    REQUIRE((f && d));
    table = f->key + "\thalo\t-1\n" + d->key + "\t" + dw_label + "\t-1\n";
  }
  ConvAutotuneOn on;
  kernels::load_conv_autotune_table(table, "named.tsv");
  CHECK(conv_tc::bitwise_equal(emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec).dw, dw_named));
  CHECK(conv_tc::bitwise_equal(emu::conv2d_forward_tc(x, w, Tensor(), 1, prec), y_named));
  CHECK(kernels::conv_autotune_stats().timed_runs == 0);
  CHECK(conv_tc::bitwise_equal(y_named, y_rule));
}

TEST_CASE("emu: conv autotune times the dw halo kernel for 3x3 kernels and runs it when named",
          "[emu][conv2d][tc][autotune][dw_halo]") {
  DD_TEST_RANDOM(rng);
  // 2x16x16 maps, 6 -> 7 channels: eight 4x16 patches, which the halo kernel's rule splits in 2;
  // its options are "halo s0" and the rule's half, twice and four times ("halo s1", "s4", "s8"; a
  // quarter would be 0). The tiled rule also splits in 2: six tiles and "t2 s1", "t2 s4", "t2 s8".
  // A table naming "halo s4" gets its bits.
  const Tensor x = rnd(rng, {2, 16, 16, 6}), w = rnd(rng, {7, 3, 3, 6}, 0.5), dy = rnd(rng, {2, 16, 16, 7});
  const Precision prec = Precision::BF16;
  const emu::TcConvPlan plan = emu::conv2d_tc_plan(2, 16, 16, 6, 7, 3, 1, prec);
  REQUIRE((plan.dw_halo_splits == 2 && plan.dw_splits == 2 && plan.dw_tile == 2));
  std::string key;
  {
    ConvAutotuneOn on;
    emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec);
    const auto d = kernels::conv_autotune_entry("dw");
    REQUIRE(d);
    key = d->key;
    // Each option warmed up once and timed three times.
    CHECK(kernels::conv_autotune_stats().timed_runs == 4 * (emu::conv2d_tc_tile_count() + 3 + 4));
  }
  emu::TcConvOptions h4;
  h4.dw_halo = true;
  h4.splits = 4;
  const Tensor dw_named = emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec, h4).dw;
  ConvAutotuneOn on;
  kernels::load_conv_autotune_table(key + "\thalo s4\t-1\n", "halo.tsv");
  CHECK(conv_tc::bitwise_equal(emu::conv2d_backward_tc(x, w, dy, 1, false, true, false, prec).dw, dw_named));
  CHECK(kernels::conv_autotune_stats().timed_runs == 0);
}
