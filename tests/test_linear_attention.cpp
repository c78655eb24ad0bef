#include <catch2/catch.hpp>

#include <cmath>
#include <iomanip>
#include <string>

#include "autograd/linear_attention.h"
#include "autograd/conv2d.h"
#include "autograd/elementwise.h"
#include "engine/context.h"
#include "kernels/linear_attention.h"
#include "tests/reference/linear_attention.h"
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
    return ref::linear_attention(in[0], c.B, c.N(), c.heads, c.dim_head);
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

TEST_CASE("linear_attention forward matches the float64 reference", "[linear_attention]") {
  DD_TEST_RANDOM(rng);
  const Case cases[] = {
      {1, 1, 1, 1, 3}, {2, 1, 1, 4, 32}, {2, 3, 5, 1, 5}, {3, 7, 7, 4, 32}, {3, 2, 3, 2, 5}, {2, 1, 2, 4, 1},
      {1, 28, 28, 4, 32},                         // the seed's top level on 28x28 images
      {1, 3, 5, 4, 3, 30}, {2, 7, 7, 4, 32, 30},  // q, k up to ~120: exp overflows unless max-subtracted
  };
  for (const Case& c : cases) {
    SECTION(c.name()) {
      const std::vector<double> x = rng.normal_f32(shape_numel(c.qkv_shape()), c.scale);
      Tensor out = kernels::linear_attention_forward(from_double(c.qkv_shape(), x), c.heads, c.dim_head);
      REQUIRE(out.shape() == c.out_shape());
      // fp32 softmaxes and GEMMs over N and dim_head: 1e-4 relative to the largest output.
      expect_close("linear_attention forward " + c.name(), out,
                   ref::linear_attention(x, c.B, c.N(), c.heads, c.dim_head), 1e-4);
    }
  }
}

TEST_CASE("linear_attention backward: finite-difference gradcheck on tiny shapes", "[linear_attention]") {
  DD_TEST_RANDOM(rng);
  const Case cases[] = {
      {2, 1, 3, 2, 3},     {2, 2, 3, 2, 3}, {2, 1, 1, 2, 3},  // N = 1: softmax_n(k) is 1, dk = 0
      {2, 1, 5, 2, 3, 30}, {1, 2, 3, 1, 5},
  };
  for (const Case& c : cases) {
    SECTION(c.name()) {
      const std::vector<double> x = rng.normal_f32(shape_numel(c.qkv_shape()), c.scale);
      const std::vector<double> dy = rng.normal_f32(shape_numel(c.out_shape()));
      Tensor dx = kernels::linear_attention_backward(from_double(c.qkv_shape(), x),
                                                     from_double(c.out_shape(), dy), c.heads, c.dim_head);
      REQUIRE(dx.shape() == c.qkv_shape());
      // fp32 recomputed softmaxes and GEMMs vs float64 differences: 1e-4 of the largest gradient.
      gradcheck("linear_attention " + c.name(), reference(c), {x}, dy, {dx.to_vector()}, 1e-4);
    }
  }
}

TEST_CASE("linear_attention backward: directional derivatives on U-Net-sized shapes", "[linear_attention]") {
  DD_TEST_RANDOM(rng);
  const Case cases[] = {{2, 7, 7, 4, 32}, {2, 7, 7, 4, 32, 30}, {1, 28, 28, 4, 32}, {3, 3, 5, 1, 5}};
  for (const Case& c : cases) {
    SECTION(c.name()) {
      const std::vector<double> x = rng.normal_f32(shape_numel(c.qkv_shape()), c.scale);
      const std::vector<double> dy = rng.normal_f32(shape_numel(c.out_shape()));
      Tensor dx = kernels::linear_attention_backward(from_double(c.qkv_shape(), x),
                                                     from_double(c.out_shape(), dy), c.heads, c.dim_head);
      // A sum over every element of fp32 gradients: 1e-4 of the sum of |terms|.
      check_directional("linear_attention " + c.name(), c, x, dy, dx.to_vector(), rng, 1e-4);
    }
  }
}

TEST_CASE("linear_attention is bitwise repeatable", "[linear_attention]") {
  DD_TEST_RANDOM(rng);
  const Case c{4, 14, 14, 4, 32};  // large enough to run on the whole thread team
  Tensor x = from_double(c.qkv_shape(), rng.normal_f32(shape_numel(c.qkv_shape())));
  Tensor dy = from_double(c.out_shape(), rng.normal_f32(shape_numel(c.out_shape())));
  CHECK(kernels::linear_attention_forward(x, c.heads, c.dim_head).to_vector() ==
        kernels::linear_attention_forward(x, c.heads, c.dim_head).to_vector());
  CHECK(kernels::linear_attention_backward(x, dy, c.heads, c.dim_head).to_vector() ==
        kernels::linear_attention_backward(x, dy, c.heads, c.dim_head).to_vector());
}

TEST_CASE("linear_attention errors name the op and shapes", "[linear_attention]") {
  Tensor qkv = Tensor::zeros({1, 2, 2, 10});
  REQUIRE_THROWS_WITH(kernels::linear_attention_forward(qkv, 2, 2),
                      Catch::Contains("linear_attention") && Catch::Contains("[1,2,2,10]") &&
                          Catch::Contains("heads (2)") && Catch::Contains("dim_head (2)"));
  REQUIRE_THROWS_WITH(kernels::linear_attention_forward(Tensor::zeros({4, 12}), 2, 2),
                      Catch::Contains("linear_attention") && Catch::Contains("[4,12]"));
  Tensor good = Tensor::zeros({1, 2, 2, 12}), dy = Tensor::zeros({1, 2, 2, 5});
  REQUIRE_THROWS_WITH(kernels::linear_attention_backward(good, dy, 2, 2),
                      Catch::Contains("linear_attention_backward") && Catch::Contains("[1,2,2,5]") &&
                          Catch::Contains("[1,2,2,4]"));
}

TEST_CASE("linear_attention autograd records the kernel backward", "[linear_attention][autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Case c{2, 3, 5, 4, 3};
  const std::vector<double> x = rng.normal_f32(shape_numel(c.qkv_shape()));
  const std::vector<double> r = rng.normal_f32(shape_numel(c.out_shape()));
  ag::Var vx(from_double(c.qkv_shape(), x), true), vr(from_double(c.out_shape(), r));
  ag::Var loss = ag::sum(ag::mul(ag::linear_attention(vx, c.heads, c.dim_head), vr));
  ag::Tape::current().backward(loss);
  // sum and mul hand linear_attention exactly r as its output gradient, and
  // the kernel is deterministic: the recorded gradient is bitwise the kernel's.
  Tensor expect = kernels::linear_attention_backward(vx.value(), vr.value(), c.heads, c.dim_head);
  CHECK(vx.grad().to_vector() == expect.to_vector());
  CHECK_FALSE(vr.has_grad());

  ag::Tape::current().clear();
  ag::NoGrad no_grad;
  ag::Var y = ag::linear_attention(vx, c.heads, c.dim_head);
  CHECK_FALSE(y.requires_grad());
  CHECK(ag::Tape::current().size() == 0);
}

TEST_CASE("linear_attention_qkv: the composition's gradients bitwise, without keeping qkv", "[linear_attention][autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  // 3 heads of 5: qkv has 45 channels against x's 7; 9x11 positions. And 2 heads of 32, which
  // under BF16 round qkv to bf16: the conv then writes it in bf16 (conv2d_forward_bf16), with the
  // same bits as the composition's fp32 qkv rounded by the attention.
  for (const Case& c : {Case{2, 9, 11, 3, 5}, Case{1, 5, 7, 2, 32}})
  for (const Precision prec : {Precision::FP32, Precision::TF32, Precision::BF16}) {
    INFO(c.name() << " " << precision_name(prec));
    const Shape xs{c.B, c.H, c.W, 7}, ws{3 * c.hidden(), 1, 1, 7};
    const std::vector<double> x = rng.normal_f32(shape_numel(xs)), w = rng.normal_f32(shape_numel(ws), 0.4);
    const std::vector<double> r = rng.normal_f32(shape_numel(c.out_shape()));
    const PrecisionScope scope(prec);
    ag::Var vr(from_double(c.out_shape(), r));
    // The backward under another policy (here fp32) too: the recomputed qkv must still be the
    // forward's, so the conv runs again under the forward's policy.
    auto grads = [&](bool recompute, bool backward_in_fp32 = false) {
      ag::Tape::current().clear();
      ag::Var vx(from_double(xs, x), true), vw(from_double(ws, w), true);
      const std::size_t before = host_mem::stats().in_use;
      ag::Var loss;
      std::size_t kept = 0;
      {
        const ag::Var y = recompute ? ag::linear_attention_qkv(vx, vw, c.heads, c.dim_head)
                                    : ag::linear_attention(ag::conv2d(vx, vw, ag::Var(), 0), c.heads, c.dim_head);
        loss = ag::sum(ag::mul(y, vr));
      }
      kept = host_mem::stats().in_use - before;
      if (backward_in_fp32) {
        const PrecisionScope fp32(Precision::FP32);
        ag::Tape::current().backward(loss);
      } else {
        ag::Tape::current().backward(loss);
      }
      return std::make_tuple(vx.grad().to_vector(), vw.grad().to_vector(), loss.value().item(), kept);
    };
    const auto [dx, dw, loss, kept] = grads(true);
    const auto [dx_ref, dw_ref, loss_ref, kept_ref] = grads(false);
    // The same kernels on the same operands: bitwise.
    CHECK(loss == loss_ref);
    CHECK(dx == dx_ref);
    CHECK(dw == dw_ref);
    // What the tape kept past the forward: qkv ([2, 9, 11, 45] floats, 35,640 bytes) only without
    // recomputation; both keep x, a leaf allocated before, and the scalar loss.
    const std::size_t qkv_bytes = static_cast<std::size_t>(shape_numel(c.qkv_shape())) * sizeof(float);
    CHECK(kept_ref - kept == qkv_bytes);
    const auto [dx_late, dw_late, loss_late, kept_late] = grads(true, true);
    const auto [dx_late_ref, dw_late_ref, loss_late_ref, kept_late_ref] = grads(false, true);
    CHECK(dx_late == dx_late_ref);
    CHECK(dw_late == dw_late_ref);
  }
  // bf16_out (the U-Net's LinearAttention under BF16, whose to_out conv reads y rounded to bf16):
  // y is the fp32 y rounded, and through a conv the loss and gradients are bitwise the fp32 y's.
  {
    const PrecisionScope scope(Precision::BF16);
    const Case c{1, 5, 7, 2, 32};
    const Shape xs{c.B, c.H, c.W, 7}, ws{3 * c.hidden(), 1, 1, 7}, os{5, 1, 1, c.hidden()};
    const std::vector<double> x = rng.normal_f32(shape_numel(xs)), w = rng.normal_f32(shape_numel(ws), 0.4);
    const std::vector<double> wo = rng.normal_f32(shape_numel(os), 0.2), r = rng.normal_f32(c.B * c.H * c.W * 5);
    auto run = [&](bool bf16_out) {
      ag::Tape::current().clear();
      ag::Var vx(from_double(xs, x), true), vw(from_double(ws, w), true), vo(from_double(os, wo), true);
      const ag::Var y = ag::linear_attention_qkv(vx, vw, c.heads, c.dim_head, bf16_out);
      CHECK(y.value().dtype() == (bf16_out ? DType::BF16 : DType::F32));
      const ag::Var loss = ag::sum(ag::mul(ag::conv2d(y, vo, ag::Var(), 0), ag::Var(from_double({c.B, c.H, c.W, 5}, r))));
      ag::Tape::current().backward(loss);
      return std::make_tuple(y.value().to(DType::BF16), loss.value().item(), vx.grad().to_vector(),
                             vw.grad().to_vector(), vo.grad().to_vector());
    };
    const auto [y16, loss16, dx16, dw16, do16] = run(true);
    const auto [y32, loss32, dx32, dw32, do32] = run(false);
    CHECK(bf16_bits(y16) == bf16_bits(y32));
    CHECK(loss16 == loss32);
    CHECK(dx16 == dx32);
    CHECK(dw16 == dw32);
    CHECK(do16 == do32);
  }
  // Under NoGrad nothing is recorded, and the output is the composition's.
  const Case c{2, 9, 11, 3, 5};
  const Shape xs{c.B, c.H, c.W, 7};
  const std::vector<double> x = rng.normal_f32(shape_numel(xs)), w = rng.normal_f32(3 * c.hidden() * 7, 0.4);
  const Shape ws{3 * c.hidden(), 1, 1, 7};
  ag::Tape::current().clear();
  ag::NoGrad no_grad;
  ag::Var vx(from_double(xs, x)), vw(from_double(ws, w));
  CHECK(ag::linear_attention_qkv(vx, vw, c.heads, c.dim_head).value().to_vector() ==
        ag::linear_attention(ag::conv2d(vx, vw, ag::Var(), 0), c.heads, c.dim_head).value().to_vector());
  CHECK(ag::Tape::current().size() == 0);
  REQUIRE_THROWS_WITH(ag::linear_attention_qkv(vx, ag::Var(Tensor::zeros({45, 3, 3, 7})), c.heads, c.dim_head),
                      Catch::Contains("linear_attention_qkv") && Catch::Contains("[45,3,3,7]"));
}
