#include <catch2/catch.hpp>

#include <omp.h>

#include "autograd/activation.h"
#include "autograd/broadcast.h"
#include "autograd/concat.h"
#include "autograd/elementwise.h"
#include "kernels/activation.h"
#include "kernels/broadcast.h"
#include "kernels/concat.h"
#include "tests/reference/broadcast.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
struct TapeGuard {
  ~TapeGuard() { ag::Tape::current().clear(); }
};

// Sums over positions of f(i) per (b, c), in float64: the reference [B, C] gradients.
template <typename F>
std::vector<double> sum_positions(int64_t n, int64_t B, int64_t C, F f) {
  std::vector<double> s(static_cast<std::size_t>(B * C), 0.0);
  const int64_t per_b = n / B;
  for (int64_t i = 0; i < n; ++i) s[static_cast<std::size_t>((i / per_b) * C + i % C)] += f(i);
  return s;
}
}  // namespace

TEST_CASE("broadcast: add_bc, mul_bc, scale_shift and their backward against float64", "[broadcast]") {
  DD_TEST_RANDOM(rng);
  // Rank 2 (one position), rank 3, NHWC with odd sizes, and U-Net sizes whose
  // positions span several reduction chunks.
  for (Shape s : {Shape{3, 5}, Shape{1, 1, 1, 1}, Shape{2, 7, 3}, Shape{2, 5, 7, 13}, Shape{3, 1, 13, 1},
                  Shape{4, 32, 32, 64}, Shape{2, 9, 9, 700}}) {
    INFO("x " << shape_str(s));
    const int64_t B = s.front(), C = s.back(), n = shape_numel(s);
    std::vector<double> x = rng.normal_f32(n), v = rng.normal_f32(B * C), w = rng.normal_f32(B * C),
                        dy = rng.normal_f32(n);
    Tensor tx = from_double(s, x), tv = from_double({B, C}, v), tw = from_double({B, C}, w),
           tdy = from_double(s, dy);
    // At most three fp32 roundings per element: 1e-6 of the tensor's scale.
    expect_close("add_bc", kernels::add_bc(tx, tv), ref::add_bc(x, v, B, C), 1e-6);
    expect_close("mul_bc", kernels::mul_bc(tx, tv), ref::mul_bc(x, v, B, C), 1e-6);
    // scale_shift's x (scale + 1) + shift may cancel (a [1,1,1,1] input can land near 0), so it is
    // judged at the size of its terms, not of its result.
    expect_close("scale_shift", kernels::scale_shift(tx, tv, tw).to_vector(), ref::scale_shift(x, v, w, B, C), 1e-6,
                 ref::scale_shift_terms(x, v, w, B, C));

    // The [B, C] sums accumulate exact float products in double and round once: 1e-6.
    auto sum_dy = sum_positions(n, B, C, [&](int64_t i) { return dy[i]; });
    auto sum_dy_x = sum_positions(n, B, C, [&](int64_t i) { return dy[i] * x[i]; });
    std::vector<double> v1(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) v1[i] = static_cast<double>(static_cast<float>(v[i]) + 1.0f);
    expect_close("add_bc dv", kernels::add_bc_backward(tdy), sum_dy, 1e-6);
    kernels::MulBcGrads gm = kernels::mul_bc_backward(tx, tv, tdy);
    expect_close("mul_bc dx", gm.dx, ref::mul_bc(dy, v, B, C), 1e-6);
    expect_close("mul_bc dv", gm.dv, sum_dy_x, 1e-6);
    kernels::ScaleShiftGrads gs = kernels::scale_shift_backward(tx, tv, tdy);
    expect_close("scale_shift dx", gs.dx, ref::mul_bc(dy, v1, B, C), 1e-6);
    expect_close("scale_shift dscale", gs.dscale, sum_dy_x, 1e-6);
    expect_close("scale_shift dshift", gs.dshift, sum_dy, 1e-6);
  }
}

TEST_CASE("broadcast: gradchecks of every input on tiny shapes", "[broadcast]") {
  DD_TEST_RANDOM(rng);
  for (Shape s : {Shape{2, 3}, Shape{2, 3, 1, 4}, Shape{1, 2, 3, 5}}) {
    INFO("x " << shape_str(s));
    const int64_t B = s.front(), C = s.back(), n = shape_numel(s);
    std::vector<double> x = rng.normal_f32(n), v = rng.normal_f32(B * C), w = rng.normal_f32(B * C),
                        dy = rng.normal_f32(n);
    Tensor tx = from_double(s, x), tv = from_double({B, C}, v), tdy = from_double(s, dy);
    // Products and short double sums in fp32 vs float64 finite differences: 1e-5.
    gradcheck(
        "add_bc", [&](const auto& in) { return ref::add_bc(in[0], in[1], B, C); }, {x, v}, dy,
        {tdy.to_vector(), kernels::add_bc_backward(tdy).to_vector()}, 1e-5);
    kernels::MulBcGrads gm = kernels::mul_bc_backward(tx, tv, tdy);
    gradcheck(
        "mul_bc", [&](const auto& in) { return ref::mul_bc(in[0], in[1], B, C); }, {x, v}, dy,
        {gm.dx.to_vector(), gm.dv.to_vector()}, 1e-5);
    kernels::ScaleShiftGrads gs = kernels::scale_shift_backward(tx, tv, tdy);
    gradcheck(
        "scale_shift", [&](const auto& in) { return ref::scale_shift(in[0], in[1], in[2], B, C); }, {x, v, w}, dy,
        {gs.dx.to_vector(), gs.dscale.to_vector(), gs.dshift.to_vector()}, 1e-5);
  }
}

TEST_CASE("broadcast: the [B, C] gradients are bitwise the same for any thread count", "[broadcast]") {
  DD_TEST_RANDOM(rng);
  const Shape s{3, 40, 40, 96};
  const int64_t n = shape_numel(s);
  Tensor x = from_double(s, rng.normal_f32(n)), dy = from_double(s, rng.normal_f32(n)),
         v = from_double({3, 96}, rng.normal_f32(3 * 96));
  const int threads = omp_get_max_threads();
  kernels::ScaleShiftGrads first = kernels::scale_shift_backward(x, v, dy);
  omp_set_num_threads(1);
  kernels::ScaleShiftGrads serial = kernels::scale_shift_backward(x, v, dy);
  omp_set_num_threads(threads + 3);
  kernels::ScaleShiftGrads more = kernels::scale_shift_backward(x, v, dy);
  omp_set_num_threads(threads);
  for (const kernels::ScaleShiftGrads* g : {&serial, &more}) {
    CHECK(g->dscale.to_vector() == first.dscale.to_vector());
    CHECK(g->dshift.to_vector() == first.dshift.to_vector());
    CHECK(g->dx.to_vector() == first.dx.to_vector());
  }
}

TEST_CASE("broadcast: errors name the op and the shapes", "[broadcast]") {
  Tensor x = Tensor::zeros({2, 4, 4, 8});
  REQUIRE_THROWS_WITH(kernels::add_bc(x, Tensor::zeros({2, 4})),
                      Catch::Contains("add_bc") && Catch::Contains("[2,4,4,8]") && Catch::Contains("[2,4]"));
  REQUIRE_THROWS_WITH(kernels::mul_bc(x, Tensor::zeros({3, 8})),
                      Catch::Contains("mul_bc") && Catch::Contains("[3,8]") && Catch::Contains("[2,4,4,8]"));
  REQUIRE_THROWS_WITH(kernels::mul_bc(Tensor::zeros({8}), Tensor::zeros({1, 8})),
                      Catch::Contains("mul_bc") && Catch::Contains("[8]"));
  REQUIRE_THROWS_WITH(kernels::scale_shift(x, Tensor::zeros({2, 8}), Tensor::zeros({2, 8, 1})),
                      Catch::Contains("scale_shift") && Catch::Contains("shift") && Catch::Contains("[2,8,1]"));
  REQUIRE_THROWS_WITH(kernels::scale_shift_backward(x, Tensor::zeros({2, 8}), Tensor::zeros({2, 4, 8, 4})),
                      Catch::Contains("scale_shift_backward") && Catch::Contains("[2,4,8,4]"));
}

TEST_CASE("broadcast: autograd through the ResNet block's time conditioning", "[broadcast]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const int64_t B = 2, C = 5;
  const Shape s{B, 3, 4, C};
  const int64_t n = shape_numel(s);
  // emb [B, 2C] -> chunk -> scale, shift; h = silu(x * (scale + 1) + shift).
  ag::Var x(from_double(s, rng.normal_f32(n)), true), emb(from_double({B, 2 * C}, rng.normal_f32(2 * B * C)), true);
  Tensor r = from_double(s, rng.normal_f32(n));
  std::vector<ag::Var> ss = ag::chunk(emb, 2);
  ag::Var h = ag::scale_shift(x, ss[0], ss[1]);
  ag::Tape::current().backward(ag::sum(ag::mul(ag::silu(h), ag::Var(r))));
  Tensor dh = kernels::silu_backward(h.value(), r);
  kernels::ScaleShiftGrads g = kernels::scale_shift_backward(x.value(), ss[0].value(), dh);
  // The same kernels on the same inputs: the same bits.
  expect_close("x.grad", x.grad(), g.dx, 0.0);
  expect_close("emb.grad", emb.grad(), kernels::concat({g.dscale, g.dshift}), 0.0);
  ag::Tape::current().clear();

  // add_bc(mul_bc(x, v), w) with a constant v.
  ag::Var v(from_double({B, C}, rng.normal_f32(B * C))), w(from_double({B, C}, rng.normal_f32(B * C)), true);
  x.zero_grad();
  ag::Tape::current().backward(ag::sum(ag::mul(ag::add_bc(ag::mul_bc(x, v), w), ag::Var(r))));
  expect_close("x.grad (mul_bc)", x.grad(), kernels::mul_bc_backward(x.value(), v.value(), r).dx, 0.0);
  expect_close("w.grad", w.grad(), kernels::add_bc_backward(r), 0.0);
  CHECK_FALSE(v.has_grad());
}
