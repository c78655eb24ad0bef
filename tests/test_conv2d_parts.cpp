// The conv of a channel concatenation given in parts (kernels::conv2d_forward_parts and friends:
// the U-Net's skip connections, never concatenated on the CPU). Every CPU path (im2col with
// several kernel sizes, Winograd F(2x2) and F(4x4), the 1x1 convs on both weight-gradient
// branches) against the same conv of the concatenation built by kernels::concat: y, the epilogue
// sums, dx (split), dw and dbias all bitwise equal, with NaN-filled outputs (tests fill new
// tensors with NaN, so an element a scatter missed fails), multi-chunk splits, the bf16 policy's
// per-part rounding; the autograd op's wiring and the operand errors. The same for the conv of the
// nearest-2x upsampled map (kernels::conv2d_forward_up2: the U-Net's Upsample) and of the
// pixel-unshuffled one (kernels::conv2d_forward_unshuffle2: its Downsample), neither built.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "autograd/concat.h"
#include "autograd/conv2d.h"
#include "autograd/elementwise.h"
#include "autograd/pixel_unshuffle.h"
#include "autograd/upsample.h"
#include "engine/context.h"
#include "kernels/concat.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/linear.h"
#include "kernels/pixel_unshuffle.h"
#include "kernels/upsample.h"
#include "tests/support/compare.h"
#include "tests/support/expect_error.h"

using namespace dd;
using namespace dd::test;
using kernels::cpu::Conv3x3Algo;
using kernels::cpu::Conv3x3AlgoScope;

namespace {
struct Case {
  int64_t b, h, w;
  std::vector<int64_t> widths;  // the parts' channels
  int64_t co, k, p;
};

std::string name_of(const Case& c, Conv3x3Algo a, int64_t chunk) {
  std::string s = std::to_string(c.b) + "x" + std::to_string(c.h) + "x" + std::to_string(c.w) + " (";
  for (std::size_t i = 0; i < c.widths.size(); ++i) s += (i ? "+" : "") + std::to_string(c.widths[i]);
  const char* algo = a == Conv3x3Algo::Im2col ? "im2col"
                     : a == Conv3x3Algo::Winograd ? "F2"
                     : a == Conv3x3Algo::Winograd4 ? "F4"
                                                  : "auto";
  return s + ")->" + std::to_string(c.co) + " k" + std::to_string(c.k) + " p" + std::to_string(c.p) + " " + algo +
         " chunk " + std::to_string(chunk);
}

std::vector<Tensor> parts_of(Random& rng, const Case& c) {
  std::vector<Tensor> xs;
  for (int64_t ci : c.widths) xs.push_back(from_double({c.b, c.h, c.w, ci}, rng.normal_f32(c.b * c.h * c.w * ci)));
  return xs;
}

int64_t channels(const Case& c) {
  int64_t n = 0;
  for (int64_t ci : c.widths) n += ci;
  return n;
}

std::vector<float> bits(const Tensor& t) { return t.to_vector(); }

// Both forms of one conv, compared bitwise in every output.
void check_case(Random& rng, const Case& c, Conv3x3Algo algo, int64_t chunk) {
  const std::string what = name_of(c, algo, chunk);
  const Conv3x3AlgoScope force(algo);
  const std::vector<Tensor> xs = parts_of(rng, c);
  const Tensor whole = kernels::concat(xs);
  const int64_t ci = channels(c);
  const Tensor w = from_double({c.co, c.k, c.k, ci}, rng.normal_f32(c.co * c.k * c.k * ci, 0.3));
  const Tensor bias = from_double({c.co}, rng.normal_f32(c.co));
  INFO(what);

  const Tensor y = kernels::cpu::conv2d_forward_parts(xs, w, bias, int(c.p), chunk);
  CHECK(bits(y) == bits(kernels::cpu::conv2d_forward(whole, w, bias, int(c.p), chunk)));
  std::vector<double> sums, sums_whole;
  const Tensor ys = kernels::cpu::conv2d_forward_parts_sums(xs, w, Tensor(), int(c.p), sums, chunk);
  CHECK(bits(ys) == bits(kernels::cpu::conv2d_forward_sums(whole, w, Tensor(), int(c.p), sums_whole, chunk)));
  CHECK(sums == sums_whole);

  const Tensor dy = from_double(y.shape(), rng.normal_f32(y.numel()));
  const kernels::Conv2dPartsGrads g =
      kernels::cpu::conv2d_backward_parts(xs, w, dy, int(c.p), true, true, true, chunk);
  const kernels::Conv2dGrads e = kernels::cpu::conv2d_backward(whole, w, dy, int(c.p), true, true, true, chunk);
  const std::vector<Tensor> dx_parts = kernels::split(e.dx, c.widths);
  REQUIRE(g.dx.size() == xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) {
    CHECK(g.dx[i].shape() == xs[i].shape());
    CHECK(bits(g.dx[i]) == bits(dx_parts[i]));
  }
  CHECK(bits(g.dw) == bits(e.dw));
  CHECK(bits(g.dbias) == bits(e.dbias));
  // Only dw: no dx parts.
  const kernels::Conv2dPartsGrads only_dw =
      kernels::cpu::conv2d_backward_parts(xs, w, dy, int(c.p), false, true, false, chunk);
  CHECK(only_dw.dx.empty());
  CHECK(bits(only_dw.dw) == bits(e.dw));
}
}  // namespace

TEST_CASE("conv2d in channel parts equals the conv of the concatenation bitwise on every CPU path",
          "[conv2d][conv2d_parts]") {
  DD_TEST_RANDOM(rng);
  // 3x3/p1 on all three paths; odd maps and channel counts; parts of 1 to 3 tensors.
  const std::vector<Case> k3 = {{2, 5, 7, {3, 5}, 9, 3, 1},       {1, 9, 6, {16, 16}, 12, 3, 1},
                                {3, 4, 4, {7, 9, 2}, 11, 3, 1},   {2, 11, 13, {20, 12}, 16, 3, 1},
                                {1, 6, 6, {24}, 8, 3, 1}};
  for (const Case& c : k3)
    for (Conv3x3Algo a : {Conv3x3Algo::Im2col, Conv3x3Algo::Winograd, Conv3x3Algo::Winograd4})
      for (int64_t chunk : {int64_t{0}, int64_t{3}}) check_case(rng, c, a, chunk);
  // Other kernels and paddings run im2col (dx with padding K-1-p, cropping when p > K-1).
  const std::vector<Case> other = {{2, 6, 5, {4, 3}, 7, 5, 2}, {1, 9, 8, {3, 3}, 6, 7, 3},
                                   {2, 7, 6, {5, 6}, 4, 3, 0}, {1, 5, 5, {2, 3}, 5, 3, 3}};
  for (const Case& c : other)
    for (int64_t chunk : {int64_t{0}, int64_t{5}}) check_case(rng, c, Conv3x3Algo::Auto, chunk);
  // 1x1: the linear layer's paths, under 1024 pixels (dw's column blocks over all rows) and over
  // (dw's row ranges), and over 64 rows per block (several forward/dx row blocks).
  const std::vector<Case> pointwise = {{2, 6, 5, {3, 5}, 9, 1, 0}, {2, 24, 24, {12, 20}, 70, 1, 0},
                                       {3, 17, 23, {6, 1, 9}, 13, 1, 0}};
  for (const Case& c : pointwise) check_case(rng, c, Conv3x3Algo::Auto, 0);
}

TEST_CASE("conv2d in channel parts rounds each part as the concatenation under bf16 and tf32",
          "[conv2d][conv2d_parts][precision]") {
  DD_TEST_RANDOM(rng);
  for (const Precision p : {Precision::BF16, Precision::TF32}) {
    const PrecisionScope policy(p);
    check_case(rng, {2, 8, 8, {6, 10}, 12, 3, 1}, Conv3x3Algo::Winograd, 0);
    check_case(rng, {2, 8, 8, {6, 10}, 12, 3, 1}, Conv3x3Algo::Im2col, 0);
    check_case(rng, {2, 20, 30, {6, 10}, 12, 1, 0}, Conv3x3Algo::Auto, 0);
  }
}

TEST_CASE("linear in column parts equals the linear layer of the concatenation bitwise", "[linear][conv2d_parts]") {
  DD_TEST_RANDOM(rng);
  for (const int64_t m : {int64_t{7}, int64_t{200}, int64_t{1500}}) {
    INFO("m = " << m);
    const std::vector<int64_t> widths{5, 11, 2};
    std::vector<Tensor> xs;
    for (int64_t k : widths) xs.push_back(from_double({m, k}, rng.normal_f32(m * k)));
    const Tensor whole = kernels::concat(xs);
    const Tensor w = from_double({9, 18}, rng.normal_f32(9 * 18));
    const Tensor bias = from_double({9}, rng.normal_f32(9));
    CHECK(bits(kernels::cpu::linear_forward_parts(xs, w, bias)) == bits(kernels::cpu::linear_forward(whole, w, bias)));
    const Tensor dy = from_double({m, 9}, rng.normal_f32(m * 9));
    const kernels::cpu::LinearPartsGrads g = kernels::cpu::linear_backward_parts(xs, w, dy, true, true);
    const kernels::LinearGrads e = kernels::cpu::linear_backward(whole, w, dy, true, true, false);
    const std::vector<Tensor> dx = kernels::split(e.dx, widths);
    for (std::size_t i = 0; i < xs.size(); ++i) CHECK(bits(g.dx[i]) == bits(dx[i]));
    CHECK(bits(g.dw) == bits(e.dw));
  }
}

TEST_CASE("ag::conv2d in parts hands each part its slice of the concatenation's gradient",
          "[conv2d][conv2d_parts][autograd]") {
  DD_TEST_RANDOM(rng);
  const Case c{2, 6, 7, {5, 4}, 6, 3, 1};
  const std::vector<Tensor> xs = parts_of(rng, c);
  const Tensor wt = from_double({6, 3, 3, 9}, rng.normal_f32(6 * 9 * 9, 0.3));
  const Tensor bt = from_double({6}, rng.normal_f32(6));
  const Tensor r = from_double({2, 6, 7, 6}, rng.normal_f32(2 * 6 * 7 * 6));

  auto run = [&](bool parts) {
    ag::Tape::current().clear();
    std::vector<ag::Var> x{ag::Var(xs[0].clone(), true), ag::Var(xs[1].clone(), false)};
    ag::Var w(wt.clone(), true), b(bt.clone(), true);
    ag::Var y = parts ? ag::conv2d(x, w, b, 1) : ag::conv2d(ag::concat(x), w, b, 1);
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    CHECK_FALSE(x[1].has_grad());  // a part without requires_grad gets none
    std::vector<std::vector<float>> out{bits(y.value()), bits(x[0].grad()), bits(w.grad()), bits(b.grad())};
    ag::Tape::current().clear();
    return out;
  };
  CHECK(run(true) == run(false));
}

TEST_CASE("conv2d in parts names the part a bad shape belongs to", "[conv2d][conv2d_parts]") {
  DD_TEST_RANDOM(rng);
  const Tensor a = from_double({2, 5, 5, 3}, rng.normal_f32(150));
  const Tensor b = from_double({2, 5, 5, 4}, rng.normal_f32(200));
  const Tensor b_small = from_double({2, 4, 5, 4}, rng.normal_f32(160));
  const Tensor w = from_double({6, 3, 3, 7}, rng.normal_f32(378));
  const Tensor w8 = from_double({6, 3, 3, 8}, rng.normal_f32(432));
  const Tensor none;
  expect_error([&] { kernels::conv2d_forward_parts({a, b_small}, w, none, 1); },
               {"conv2d", "part 1", "[2,4,5,4]", "B, H or W"});
  expect_error([&] { kernels::conv2d_forward_parts({a, b}, w8, none, 1); }, {"conv2d", "Ci = 8", "concat("});
  expect_error([&] { kernels::conv2d_forward_parts({}, w, none, 1); }, {"conv2d", "0 channel parts"});
  expect_error([&] { kernels::conv2d_forward_parts({a, none}, w, none, 1); }, {"conv2d", "part 1", "undefined"});
  const Tensor y = kernels::conv2d_forward_parts({a, b}, w, none, 1);
  const Tensor dy_bad = from_double({2, 5, 5, 5}, rng.normal_f32(250));
  expect_error([&] { kernels::conv2d_backward_parts({a, b}, w, dy_bad, 1, true, true, false); },
               {"conv2d_backward", "dy", "[2,5,5,6]"});
  CHECK(y.shape() == Shape{2, 5, 5, 6});
}

namespace {
// conv2d_up2 against upsample2x then the conv, on one path.
void check_up2(Random& rng, int64_t b, int64_t h, int64_t w, int64_t ci, int64_t co, int64_t k, int64_t p,
               Conv3x3Algo algo, int64_t chunk) {
  const Conv3x3AlgoScope force(algo);
  INFO(b << "x" << h << "x" << w << " " << ci << "->" << co << " k" << k << " p" << p << " algo "
          << static_cast<int>(algo) << " chunk " << chunk);
  const Tensor x = from_double({b, h, w, ci}, rng.normal_f32(b * h * w * ci));
  const Tensor up = kernels::upsample2x_forward(x);
  const Tensor wt = from_double({co, k, k, ci}, rng.normal_f32(co * k * k * ci, 0.3));
  const Tensor bias = from_double({co}, rng.normal_f32(co));
  const Tensor y = kernels::cpu::conv2d_forward_up2(x, wt, bias, int(p), chunk);
  const Tensor y_ref = kernels::cpu::conv2d_forward(up, wt, bias, int(p), chunk);
  const Tensor dy = from_double(y.shape(), rng.normal_f32(y.numel()));
  const kernels::Conv2dGrads g = kernels::cpu::conv2d_backward_up2(x, wt, dy, int(p), true, true, true, chunk);
  const kernels::Conv2dGrads e = kernels::cpu::conv2d_backward(up, wt, dy, int(p), true, true, true, chunk);
  const Tensor dx_ref = kernels::upsample2x_backward(e.dx);
  if (k == 1) {  // im2col's GEMMs here, the linear layer's there: float64-scaled closeness
    expect_close("up2 1x1 y", y, y_ref, 1e-5);
    expect_close("up2 1x1 dx", g.dx, dx_ref, 1e-5);
    expect_close("up2 1x1 dw", g.dw, e.dw, 1e-5);
    return;
  }
  CHECK(bits(y) == bits(y_ref));
  CHECK(g.dx.shape() == x.shape());
  CHECK(bits(g.dx) == bits(dx_ref));
  CHECK(bits(g.dw) == bits(e.dw));
  CHECK(bits(g.dbias) == bits(e.dbias));
}
}  // namespace

TEST_CASE("conv2d of the 2x upsampled map equals upsample2x then the conv bitwise", "[conv2d][conv2d_up2]") {
  DD_TEST_RANDOM(rng);
  for (Conv3x3Algo a : {Conv3x3Algo::Im2col, Conv3x3Algo::Winograd, Conv3x3Algo::Winograd4})
    for (int64_t chunk : {int64_t{0}, int64_t{3}}) {
      check_up2(rng, 2, 3, 5, 6, 7, 3, 1, a, chunk);
      check_up2(rng, 1, 4, 4, 16, 12, 3, 1, a, chunk);
      check_up2(rng, 3, 2, 2, 9, 5, 3, 1, a, chunk);
    }
  check_up2(rng, 2, 3, 4, 5, 6, 5, 2, Conv3x3Algo::Auto, 4);
  check_up2(rng, 2, 3, 4, 5, 6, 1, 0, Conv3x3Algo::Auto, 0);
}

TEST_CASE("ag::conv2d_up2 equals ag::upsample2x then ag::conv2d bitwise", "[conv2d][conv2d_up2][autograd]") {
  DD_TEST_RANDOM(rng);
  const Tensor xt = from_double({2, 4, 3, 8}, rng.normal_f32(2 * 4 * 3 * 8));
  const Tensor wt = from_double({6, 3, 3, 8}, rng.normal_f32(6 * 9 * 8, 0.3));
  const Tensor bt = from_double({6}, rng.normal_f32(6));
  const Tensor r = from_double({2, 8, 6, 6}, rng.normal_f32(2 * 8 * 6 * 6));
  auto run = [&](bool fused) {
    ag::Tape::current().clear();
    ag::Var x(xt.clone(), true), w(wt.clone(), true), b(bt.clone(), true);
    ag::Var y = fused ? ag::conv2d_up2(x, w, b, 1) : ag::conv2d(ag::upsample2x(x), w, b, 1);
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    std::vector<std::vector<float>> out{bits(y.value()), bits(x.grad()), bits(w.grad()), bits(b.grad())};
    ag::Tape::current().clear();
    return out;
  };
  CHECK(run(true) == run(false));
}

TEST_CASE("conv2d_up2 names x's upsampled shape in its errors", "[conv2d][conv2d_up2]") {
  DD_TEST_RANDOM(rng);
  const Tensor x = from_double({2, 3, 3, 4}, rng.normal_f32(72));
  const Tensor w5 = from_double({6, 3, 3, 5}, rng.normal_f32(270));
  const Tensor w = from_double({6, 3, 3, 4}, rng.normal_f32(216));
  expect_error([&] { kernels::conv2d_forward_up2(x, w5, Tensor(), 1); },
               {"conv2d_up2", "upsample2x(", "[2,6,6,4]", "Ci = 5"});
  const Tensor dy_bad = from_double({2, 3, 3, 6}, rng.normal_f32(108));
  expect_error([&] { kernels::conv2d_backward_up2(x, w, dy_bad, 1, true, true, true); },
               {"conv2d_up2_backward", "dy", "[2,6,6,6]"});
}

namespace {
// conv2d_unshuffle2 against pixel_unshuffle then the conv.
void check_unshuffle2(Random& rng, int64_t b, int64_t h, int64_t w, int64_t ci, int64_t co, int64_t k, int64_t p,
                      Conv3x3Algo algo, int64_t chunk) {
  const Conv3x3AlgoScope force(algo);
  INFO(b << "x" << h << "x" << w << " " << ci << "->" << co << " k" << k << " p" << p << " algo "
          << static_cast<int>(algo) << " chunk " << chunk);
  const Tensor x = from_double({b, h, w, ci}, rng.normal_f32(b * h * w * ci));
  const Tensor un = kernels::pixel_unshuffle_forward(x);
  const Tensor wt = from_double({co, k, k, 4 * ci}, rng.normal_f32(co * k * k * 4 * ci, 0.3));
  const Tensor bias = from_double({co}, rng.normal_f32(co));
  const Tensor y = kernels::cpu::conv2d_forward_unshuffle2(x, wt, bias, int(p), chunk);
  CHECK(bits(y) == bits(kernels::cpu::conv2d_forward(un, wt, bias, int(p), chunk)));
  const Tensor dy = from_double(y.shape(), rng.normal_f32(y.numel()));
  const kernels::Conv2dGrads g =
      kernels::cpu::conv2d_backward_unshuffle2(x, wt, dy, int(p), true, true, true, chunk);
  const kernels::Conv2dGrads e = kernels::cpu::conv2d_backward(un, wt, dy, int(p), true, true, true, chunk);
  CHECK(g.dx.shape() == x.shape());
  CHECK(bits(g.dx) == bits(kernels::pixel_unshuffle_backward(e.dx)));
  CHECK(bits(g.dw) == bits(e.dw));
  CHECK(bits(g.dbias) == bits(e.dbias));
  const kernels::Conv2dGrads only_dx =
      kernels::cpu::conv2d_backward_unshuffle2(x, wt, dy, int(p), true, false, false, chunk);
  CHECK(bits(only_dx.dx) == bits(g.dx));
}
}  // namespace

TEST_CASE("conv2d of the pixel-unshuffled map equals pixel_unshuffle then the conv bitwise",
          "[conv2d][conv2d_unshuffle2]") {
  DD_TEST_RANDOM(rng);
  // 1x1 (the Downsample's): short and long m (the weight gradient's two branches), row blocks.
  check_unshuffle2(rng, 2, 6, 10, 3, 5, 1, 0, Conv3x3Algo::Auto, 0);
  check_unshuffle2(rng, 3, 48, 30, 5, 7, 1, 0, Conv3x3Algo::Auto, 0);
  check_unshuffle2(rng, 1, 4, 4, 16, 8, 1, 0, Conv3x3Algo::Auto, 0);
  // Other kernels take the conv paths through the same view.
  for (Conv3x3Algo a : {Conv3x3Algo::Im2col, Conv3x3Algo::Winograd, Conv3x3Algo::Winograd4})
    for (int64_t chunk : {int64_t{0}, int64_t{3}}) check_unshuffle2(rng, 2, 10, 6, 4, 6, 3, 1, a, chunk);
  for (const Precision pr : {Precision::BF16, Precision::TF32}) {
    const PrecisionScope policy(pr);
    check_unshuffle2(rng, 2, 8, 8, 6, 9, 1, 0, Conv3x3Algo::Auto, 0);
  }
}

TEST_CASE("ag::conv2d_unshuffle2 equals ag::pixel_unshuffle then ag::conv2d bitwise",
          "[conv2d][conv2d_unshuffle2][autograd]") {
  DD_TEST_RANDOM(rng);
  const Tensor xt = from_double({2, 6, 4, 5}, rng.normal_f32(2 * 6 * 4 * 5));
  const Tensor wt = from_double({7, 1, 1, 20}, rng.normal_f32(7 * 20, 0.3));
  const Tensor bt = from_double({7}, rng.normal_f32(7));
  const Tensor r = from_double({2, 3, 2, 7}, rng.normal_f32(2 * 3 * 2 * 7));
  auto run = [&](bool fused) {
    ag::Tape::current().clear();
    ag::Var x(xt.clone(), true), w(wt.clone(), true), b(bt.clone(), true);
    ag::Var y = fused ? ag::conv2d_unshuffle2(x, w, b, 0) : ag::conv2d(ag::pixel_unshuffle(x), w, b, 0);
    ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(r))));
    std::vector<std::vector<float>> out{bits(y.value()), bits(x.grad()), bits(w.grad()), bits(b.grad())};
    ag::Tape::current().clear();
    return out;
  };
  CHECK(run(true) == run(false));
}

TEST_CASE("conv2d_unshuffle2 names x's rearranged shape in its errors", "[conv2d][conv2d_unshuffle2]") {
  DD_TEST_RANDOM(rng);
  const Tensor odd = from_double({2, 3, 4, 4}, rng.normal_f32(96));
  const Tensor x = from_double({2, 4, 4, 4}, rng.normal_f32(128));
  const Tensor w = from_double({6, 1, 1, 16}, rng.normal_f32(96));
  const Tensor w4 = from_double({6, 1, 1, 4}, rng.normal_f32(24));
  expect_error([&] { kernels::conv2d_forward_unshuffle2(odd, w, Tensor(), 0); },
               {"conv2d_unshuffle2", "H and W even", "[2,3,4,4]"});
  expect_error([&] { kernels::conv2d_forward_unshuffle2(x, w4, Tensor(), 0); },
               {"conv2d_unshuffle2", "pixel_unshuffle(", "[2,2,2,16]", "Ci = 4"});
}
