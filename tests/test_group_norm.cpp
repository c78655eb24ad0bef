#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>

#include "autograd/activation.h"
#include "autograd/elementwise.h"
#include "autograd/group_norm.h"
#include "kernels/activation.h"
#include "kernels/group_norm.h"
#include "tests/reference/group_norm.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
struct Case {
  Shape shape;
  int64_t groups;
};

struct Inputs {
  Tensor x, gamma, beta;
  std::vector<double> xd, gd, bd;
  int64_t B, S, C;
};

// Values are rounded to float before the reference sees them, so both paths
// start from identical inputs. The offset makes the mean non-trivial.
Inputs make_inputs(Random& rng, const Shape& shape, double offset) {
  Inputs in;
  in.C = shape.back();
  in.B = shape.front();
  in.S = shape_numel(shape) / (in.B * in.C);
  std::vector<double> x = rng.normal(shape_numel(shape), 2.0);
  for (double& v : x) v += offset;
  in.x = from_double(shape, x);
  in.gamma = from_double({in.C}, rng.normal(in.C, 1.0));
  in.beta = from_double({in.C}, rng.normal(in.C, 0.5));
  in.xd = to_double(in.x);
  in.gd = to_double(in.gamma);
  in.bd = to_double(in.beta);
  return in;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

std::string case_name(const Case& c) { return shape_str(c.shape) + " G=" + std::to_string(c.groups); }
}  // namespace

TEST_CASE("group_norm forward matches float64 for NHWC and other ranks", "[group_norm]") {
  DD_TEST_RANDOM(rng);
  const std::vector<Case> cases = {{{1, 1, 1, 4}, 1},    {{1, 1, 1, 4}, 4},    {{2, 3, 5, 6}, 3},
                                   {{3, 7, 13, 16}, 8},  {{2, 5, 8}, 2},       {{4, 6}, 2},
                                   {{5, 12}, 1},         {{2, 9, 9, 13}, 13},  {{2, 32, 32, 64}, 8},
                                   {{1, 16, 16, 96}, 1}, {{3, 5, 7, 1024}, 32}};
  for (const Case& c : cases) {
    SECTION("forward " + case_name(c)) {
      Inputs in = make_inputs(rng, c.shape, 1.5);
      kernels::GroupNormOut out = kernels::group_norm_forward(in.x, in.gamma, in.beta, c.groups);
      ref::GroupNormStats st = ref::group_norm_stats(in.xd, in.B, in.S, in.C, c.groups, 1e-5);
      REQUIRE(out.mean.shape() == Shape{in.B, c.groups});
      REQUIRE(out.rstd.shape() == Shape{in.B, c.groups});
      // Statistics accumulate in double and are rounded to float once: 1e-6.
      expect_close("mean", out.mean, st.mean, 1e-6);
      expect_close("rstd", out.rstd, st.rstd, 1e-6);
      // y = (x - mean) * scale + beta in fp32: a few ulp of |y|; 1e-5.
      expect_close("y", out.y, ref::group_norm(in.xd, in.gd, in.bd, in.B, in.S, in.C, c.groups), 1e-5);
    }
  }
}

TEST_CASE("group_norm backward: gradcheck of x, gamma and beta on tiny shapes", "[group_norm]") {
  DD_TEST_RANDOM(rng);
  // Every group holds >= 3 elements: with 1 or 2 the normalized output is
  // constant (up to eps) and the gradient is pure rounding noise.
  const std::vector<Case> cases = {{{1, 1, 1, 4}, 1}, {{1, 1, 2, 4}, 2}, {{2, 3, 5, 6}, 3}, {{2, 3, 1, 4}, 4},
                                   {{2, 5, 8}, 2},    {{3, 6}, 2},       {{1, 2, 3, 5}, 5}};
  for (const Case& c : cases) {
    SECTION("gradcheck " + case_name(c)) {
      // A group of nearly equal values is redrawn (fp32 normalization is ill-conditioned there).
      Inputs in = ref::draw_well_conditioned([&] { return make_inputs(rng, c.shape, -0.7); }, c.groups);
      kernels::GroupNormOut out = kernels::group_norm_forward(in.x, in.gamma, in.beta, c.groups);
      std::vector<double> dy = rng.normal_f32(in.x.numel());
      kernels::GroupNormGrads g =
          kernels::group_norm_backward(in.x, in.gamma, out.mean, out.rstd, from_double(c.shape, dy));
      REQUIRE(g.dgamma.shape() == Shape{in.C});
      REQUIRE(g.dbeta.shape() == Shape{in.C});
      auto f = [&](const std::vector<std::vector<double>>& v) {
        return ref::group_norm(v[0], v[1], v[2], in.B, in.S, in.C, c.groups);
      };
      // fp32 backward with double-accumulated sums; dx has the cancellation
      // dxhat - mean(dxhat) - xhat mean(dxhat xhat) (observed <= 3e-7): 1e-5 of the largest gradient.
      gradcheck("group_norm " + case_name(c), f, {in.xd, in.gd, in.bd}, dy,
                {g.dx.to_vector(), g.dgamma.to_vector(), g.dbeta.to_vector()}, 1e-5);
    }
  }
}

TEST_CASE("group_norm backward on U-Net-sized shapes: directional finite differences", "[group_norm]") {
  // Full gradchecks cost O(n^2); along one random direction v the check costs
  // two reference evaluations yet exercises every chunk of the parallel sums:
  //   (L(p + h v) - L(p - h v)) / 2h  ==  <dL/dp, v>,  L = sum(group_norm(p) * dy).
  DD_TEST_RANDOM(rng);
  const std::vector<Case> cases = {{{2, 32, 32, 64}, 8}, {{1, 16, 16, 96}, 1}, {{3, 9, 11, 40}, 40}};
  for (const Case& c : cases) {
    SECTION("directional " + case_name(c)) {
      Inputs in = make_inputs(rng, c.shape, 3.0);
      const int64_t n = in.x.numel();
      kernels::GroupNormOut out = kernels::group_norm_forward(in.x, in.gamma, in.beta, c.groups);
      std::vector<double> dy = rng.normal_f32(n);
      kernels::GroupNormGrads g =
          kernels::group_norm_backward(in.x, in.gamma, out.mean, out.rstd, from_double(c.shape, dy));
      std::vector<double> vx = rng.normal(n), vg = rng.normal(in.C), vb = rng.normal(in.C);
      const std::vector<double> dx = to_double(g.dx), dgamma = to_double(g.dgamma),
                                dbeta = to_double(g.dbeta);
      const double h = 1e-4;
      auto shifted = [&](double sign) {
        std::vector<double> x = in.xd, gm = in.gd, bt = in.bd;
        for (int64_t i = 0; i < n; ++i) x[i] += sign * h * vx[i];
        for (int64_t i = 0; i < in.C; ++i) gm[i] += sign * h * vg[i], bt[i] += sign * h * vb[i];
        return dot(ref::group_norm(x, gm, bt, in.B, in.S, in.C, c.groups), dy);
      };
      const double numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * h);
      const double analytic = dot(dx, vx) + dot(dgamma, vg) + dot(dbeta, vb);
      // Judge at the scale of a random-signed sum of the terms, sqrt(sum term^2):
      // fp32 gradients carry ~1e-7 relative error each, truncation is ~h^2
      // (observed ~1e-7 of the scale): 1e-5.
      double scale = 0.0;
      for (int64_t i = 0; i < n; ++i) scale += dx[i] * vx[i] * dx[i] * vx[i];
      for (int64_t i = 0; i < in.C; ++i)
        scale += dgamma[i] * vg[i] * dgamma[i] * vg[i] + dbeta[i] * vb[i] * dbeta[i] * vb[i];
      scale = std::sqrt(scale);
      INFO("numeric " << numeric << ", analytic " << analytic << ", scale " << scale << ", error/scale "
                      << std::fabs(numeric - analytic) / scale);
      CHECK(std::fabs(numeric - analytic) <= 1e-5 * scale);
    }
  }
}

TEST_CASE("group_norm is bitwise independent of the thread count", "[group_norm]") {
  DD_TEST_RANDOM(rng);
  Inputs in = make_inputs(rng, {2, 24, 24, 64}, 0.5);
  Tensor dy = from_double(in.x.shape(), rng.normal_f32(in.x.numel()));
  auto run = [&] {
    kernels::GroupNormOut f = kernels::group_norm_forward(in.x, in.gamma, in.beta, 8);
    kernels::GroupNormGrads g = kernels::group_norm_backward(in.x, in.gamma, f.mean, f.rstd, dy);
    return std::vector<std::vector<float>>{f.y.to_vector(),  f.mean.to_vector(),   f.rstd.to_vector(),
                                           g.dx.to_vector(), g.dgamma.to_vector(), g.dbeta.to_vector()};
  };
  const int threads = omp_get_max_threads();
  const auto reference = run();
  for (int t : {1, 3}) {
    omp_set_num_threads(t);
    const bool same = run() == reference;
    omp_set_num_threads(threads);
    INFO("threads " << t);
    CHECK(same);
  }
}

TEST_CASE("group_norm errors name the op and the shapes", "[group_norm]") {
  Tensor x = Tensor::zeros({2, 4, 4, 8}), g8 = Tensor::zeros({8}), g7 = Tensor::zeros({7});
  REQUIRE_THROWS_WITH(kernels::group_norm_forward(x, g8, g8, 3),
                      Catch::Contains("group_norm") && Catch::Contains("groups = 3") &&
                          Catch::Contains("C = 8") && Catch::Contains("[2,4,4,8]"));
  REQUIRE_THROWS_WITH(kernels::group_norm_forward(x, g8, g8, 0), Catch::Contains("groups = 0"));
  REQUIRE_THROWS_WITH(kernels::group_norm_forward(x, g7, g8, 2),
                      Catch::Contains("gamma") && Catch::Contains("[7]") && Catch::Contains("[2,4,4,8]"));
  REQUIRE_THROWS_WITH(kernels::group_norm_forward(x, g8, g7, 2),
                      Catch::Contains("beta") && Catch::Contains("[7]"));
  REQUIRE_THROWS_WITH(kernels::group_norm_forward(Tensor::zeros({8}), g8, g8, 2),
                      Catch::Contains("group_norm") && Catch::Contains("[8]"));
  kernels::GroupNormOut f = kernels::group_norm_forward(x, g8, g8, 2);
  REQUIRE_THROWS_WITH(
      kernels::group_norm_backward(x, g8, f.mean, f.rstd, Tensor::zeros({2, 4, 8, 4})),
      Catch::Contains("group_norm_backward") && Catch::Contains("[2,4,8,4]") && Catch::Contains("[2,4,4,8]"));
  REQUIRE_THROWS_WITH(kernels::group_norm_backward(x, g8, f.mean, Tensor::zeros({2, 4}), x),
                      Catch::Contains("group_norm_backward") && Catch::Contains("rstd [2,4]"));
}

TEST_CASE("group_norm autograd: grads equal the kernel backward through a PreNorm-style chain",
          "[group_norm]") {
  DD_TEST_RANDOM(rng);
  struct TapeGuard {
    ~TapeGuard() { ag::Tape::current().clear(); }
  } guard;
  const Shape shape{2, 5, 3, 6};
  Inputs in = make_inputs(rng, shape, 0.3);
  ag::Var x(in.x, true), gamma(in.gamma, true), beta(in.beta, true);
  ag::Var r(from_double(shape, rng.normal_f32(in.x.numel())));
  // L = sum(r * silu(group_norm(x)))
  ag::Var loss = ag::sum(ag::mul(ag::silu(ag::group_norm(x, gamma, beta, 3)), r));
  ag::Tape::current().backward(loss);

  kernels::GroupNormOut f = kernels::group_norm_forward(in.x, in.gamma, in.beta, 3);
  Tensor dy = kernels::silu_backward(f.y, r.value());
  kernels::GroupNormGrads g = kernels::group_norm_backward(in.x, in.gamma, f.mean, f.rstd, dy);
  CHECK(x.grad().to_vector() == g.dx.to_vector());
  CHECK(gamma.grad().to_vector() == g.dgamma.to_vector());
  CHECK(beta.grad().to_vector() == g.dbeta.to_vector());

  // A frozen affine (no grad) still lets the gradient reach x.
  ag::Tape::current().clear();
  ag::Var x2(in.x, true), g2(in.gamma), b2(in.beta);
  ag::Tape::current().backward(ag::sum(ag::mul(ag::group_norm(x2, g2, b2, 3), r)));
  CHECK(x2.grad().to_vector() ==
        kernels::group_norm_backward(in.x, in.gamma, f.mean, f.rstd, r.value()).dx.to_vector());
  CHECK_FALSE(g2.has_grad());
  CHECK_FALSE(b2.has_grad());
}

TEST_CASE("group_norm with eps 1e-6 and 32 groups (UNet2DModel's) matches float64", "[group_norm]") {
  DD_TEST_RANDOM(rng);
  for (const Shape& s : {Shape{2, 8, 8, 128}, Shape{1, 4, 4, 256}}) {
    Inputs in = make_inputs(rng, s, 0.5);
    kernels::GroupNormOut out = kernels::group_norm_forward(in.x, in.gamma, in.beta, 32, 1e-6f);
    ref::GroupNormStats st = ref::group_norm_stats(in.xd, in.B, in.S, in.C, 32, 1e-6);
    expect_close("rstd " + shape_str(s), out.rstd, st.rstd, 1e-6);
    expect_close("y " + shape_str(s), out.y, ref::group_norm(in.xd, in.gd, in.bd, in.B, in.S, in.C, 32, 1e-6), 1e-5);
    // eps is used: 1e-5 gives another rstd for groups of tiny variance.
    std::vector<double> tiny(static_cast<size_t>(shape_numel(s)));
    for (size_t i = 0; i < tiny.size(); ++i) tiny[i] = 1e-3 * std::sin(static_cast<double>(i));
    Tensor xt = from_double(s, tiny);
    const auto a = kernels::group_norm_forward(xt, in.gamma, in.beta, 32, 1e-6f).rstd.to_vector();
    const auto b = kernels::group_norm_forward(xt, in.gamma, in.beta, 32, 1e-5f).rstd.to_vector();
    CHECK(a != b);
  }
}
