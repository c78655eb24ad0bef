#include <catch2/catch.hpp>

#include <cmath>
#include <iomanip>
#include <string>

#include "autograd/attention.h"
#include "autograd/elementwise.h"
#include "kernels/attention.h"
#include "tests/reference/attention.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
// One call: qkv [B, H, W, 3 * heads * dim_head] drawn from N(0, scale^2).
struct Case {
  int64_t B, H, W, heads, dim_head;
  double scale = 1.0;
  int64_t N() const { return H * W; }
  int64_t hidden() const { return heads * dim_head; }
  Shape qkv_shape() const { return {B, H, W, 3 * hidden()}; }
  Shape out_shape() const { return {B, H, W, hidden()}; }
  std::string name() const {
    return "B" + std::to_string(B) + " " + std::to_string(H) + "x" + std::to_string(W) + " heads " +
           std::to_string(heads) + " dim_head " + std::to_string(dim_head) + " scale " +
           std::to_string(scale);
  }
};

RefFn reference(const Case& c) {
  return [c](const std::vector<std::vector<double>>& in) {
    return ref::attention(in[0], c.B, c.N(), c.heads, c.dim_head);
  };
}

// The gradient along one random direction u at a time, restricted to the q, k
// or v chunk, against the central difference of sum(ref(x + t u) * dy): checks
// every element's contribution on shapes too large for an element-wise gradcheck.
void check_directional(const std::string& what, const Case& c, const std::vector<double>& x,
                       const std::vector<double>& dy, const std::vector<float>& dx, Random& rng, double tol) {
  const RefFn f = reference(c);
  for (int64_t chunk = 0; chunk < 3; ++chunk) {
    std::vector<double> u = rng.normal(static_cast<int64_t>(x.size()));
    for (std::size_t i = 0; i < u.size(); ++i)
      if (static_cast<int64_t>(i) % (3 * c.hidden()) / c.hidden() != chunk) u[i] = 0.0;
    auto loss = [&](double t) {
      std::vector<double> xt(x);
      for (std::size_t i = 0; i < xt.size(); ++i) xt[i] += t * u[i];
      const std::vector<double> y = f({xt});
      double s = 0.0;
      for (std::size_t i = 0; i < y.size(); ++i) s += y[i] * dy[i];
      return s;
    };
    const double h = 1e-6, numeric = (loss(h) - loss(-h)) / (2 * h);
    double analytic = 0.0, magnitude = 0.0;
    for (std::size_t i = 0; i < u.size(); ++i) {
      analytic += dx[i] * u[i];
      magnitude += std::fabs(dx[i] * u[i]);
    }
    INFO(std::setprecision(10) << what << " chunk "
                               << "qkv"[chunk] << ": <dx, u> = " << analytic << ", finite difference "
                               << numeric << ", sum |dx u| = " << magnitude);
    CHECK(std::fabs(analytic - numeric) <= tol * magnitude);
  }
}

struct TapeGuard {
  ~TapeGuard() { ag::Tape::current().clear(); }
};
}  // namespace

TEST_CASE("attention forward matches the float64 reference", "[attention]") {
  DD_TEST_RANDOM(rng);
  const Case cases[] = {
      {1, 1, 1, 1, 3}, {2, 1, 1, 4, 32}, {2, 3, 5, 1, 5}, {3, 7, 7, 4, 32}, {3, 2, 3, 2, 5}, {2, 1, 2, 4, 1},
      {1, 13, 11, 4, 32},                         // 143 queries: two full row blocks and a partial one
      {1, 3, 5, 4, 3, 10}, {2, 7, 7, 4, 32, 10},  // logits ~ +-100: exp overflows without the max subtraction
  };
  for (const Case& c : cases) {
    SECTION(c.name()) {
      const std::vector<double> x = rng.normal_f32(shape_numel(c.qkv_shape()), c.scale);
      Tensor out = kernels::attention_forward(from_double(c.qkv_shape(), x), c.heads, c.dim_head);
      REQUIRE(out.shape() == c.out_shape());
      // fp32 GEMMs over dim_head and N around a softmax: 1e-4 relative to the largest output.
      expect_close("attention forward " + c.name(), out, ref::attention(x, c.B, c.N(), c.heads, c.dim_head),
                   1e-4);
    }
  }
}

TEST_CASE("attention backward: finite-difference gradcheck on tiny shapes", "[attention]") {
  DD_TEST_RANDOM(rng);
  const Case cases[] = {
      {2, 1, 3, 2, 3},     {2, 2, 3, 2, 3},  {2, 1, 1, 2, 3},  // N = 1: attn is 1, dq = dk = 0
      {2, 1, 5, 2, 3, 10}, {1, 1, 67, 2, 2},                   // 67 queries: a full row block plus 3
  };
  for (const Case& c : cases) {
    SECTION(c.name()) {
      const std::vector<double> x = rng.normal_f32(shape_numel(c.qkv_shape()), c.scale);
      const std::vector<double> dy = rng.normal_f32(shape_numel(c.out_shape()));
      Tensor dx = kernels::attention_backward(from_double(c.qkv_shape(), x), from_double(c.out_shape(), dy),
                                              c.heads, c.dim_head);
      REQUIRE(dx.shape() == c.qkv_shape());
      // fp32 recomputed softmax and GEMMs vs float64 differences: 1e-4 of the largest gradient.
      gradcheck("attention " + c.name(), reference(c), {x}, dy, {dx.to_vector()}, 1e-4);
    }
  }
}

TEST_CASE("attention backward: directional derivatives on U-Net-sized shapes", "[attention]") {
  DD_TEST_RANDOM(rng);
  const Case cases[] = {{2, 7, 7, 4, 32}, {2, 7, 7, 4, 32, 10}, {1, 13, 11, 4, 32}, {3, 3, 5, 1, 5}};
  for (const Case& c : cases) {
    SECTION(c.name()) {
      const std::vector<double> x = rng.normal_f32(shape_numel(c.qkv_shape()), c.scale);
      const std::vector<double> dy = rng.normal_f32(shape_numel(c.out_shape()));
      Tensor dx = kernels::attention_backward(from_double(c.qkv_shape(), x), from_double(c.out_shape(), dy),
                                              c.heads, c.dim_head);
      // A sum over every element of fp32 gradients: 1e-4 of the sum of |terms|.
      check_directional("attention " + c.name(), c, x, dy, dx.to_vector(), rng, 1e-4);
    }
  }
}

TEST_CASE("attention is bitwise repeatable", "[attention]") {
  DD_TEST_RANDOM(rng);
  const Case c{4, 9, 9, 4, 32};  // large enough to run on the whole thread team
  Tensor x = from_double(c.qkv_shape(), rng.normal_f32(shape_numel(c.qkv_shape())));
  Tensor dy = from_double(c.out_shape(), rng.normal_f32(shape_numel(c.out_shape())));
  CHECK(kernels::attention_forward(x, c.heads, c.dim_head).to_vector() ==
        kernels::attention_forward(x, c.heads, c.dim_head).to_vector());
  CHECK(kernels::attention_backward(x, dy, c.heads, c.dim_head).to_vector() ==
        kernels::attention_backward(x, dy, c.heads, c.dim_head).to_vector());
}

TEST_CASE("attention errors name the op and shapes", "[attention]") {
  Tensor qkv = Tensor::zeros({1, 2, 2, 10});
  REQUIRE_THROWS_WITH(kernels::attention_forward(qkv, 2, 2),
                      Catch::Contains("attention") && Catch::Contains("[1,2,2,10]") &&
                          Catch::Contains("heads (2)") && Catch::Contains("dim_head (2)"));
  REQUIRE_THROWS_WITH(kernels::attention_forward(Tensor::zeros({4, 12}), 2, 2),
                      Catch::Contains("attention") && Catch::Contains("[4,12]"));
  Tensor good = Tensor::zeros({1, 2, 2, 12}), dy = Tensor::zeros({1, 2, 2, 5});
  REQUIRE_THROWS_WITH(kernels::attention_backward(good, dy, 2, 2), Catch::Contains("attention_backward") &&
                                                                       Catch::Contains("[1,2,2,5]") &&
                                                                       Catch::Contains("[1,2,2,4]"));
}

TEST_CASE("attention autograd records the kernel backward", "[attention][autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Case c{2, 3, 5, 4, 3};
  const std::vector<double> x = rng.normal_f32(shape_numel(c.qkv_shape()));
  const std::vector<double> r = rng.normal_f32(shape_numel(c.out_shape()));
  ag::Var vx(from_double(c.qkv_shape(), x), true), vr(from_double(c.out_shape(), r));
  ag::Var loss = ag::sum(ag::mul(ag::attention(vx, c.heads, c.dim_head), vr));
  ag::Tape::current().backward(loss);
  // sum and mul hand attention exactly r as its output gradient, and the
  // kernel is deterministic: the recorded gradient is bitwise the kernel's.
  Tensor expect = kernels::attention_backward(vx.value(), vr.value(), c.heads, c.dim_head);
  CHECK(vx.grad().to_vector() == expect.to_vector());
  CHECK_FALSE(vr.has_grad());

  ag::Tape::current().clear();
  ag::NoGrad no_grad;
  ag::Var y = ag::attention(vx, c.heads, c.dim_head);
  CHECK_FALSE(y.requires_grad());
  CHECK(ag::Tape::current().size() == 0);
}
