#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>

#include "autograd/conv2d.h"
#include "engine/error.h"
#include "autograd/elementwise.h"
#include "autograd/weight_standardize.h"
#include "kernels/conv2d.h"
#include "kernels/weight_standardize.h"
#include "tests/reference/conv2d.h"
#include "tests/reference/weight_standardize.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;
using ref::ConvDims;

namespace {
struct TapeGuard {
  ~TapeGuard() { ag::Tape::current().clear(); }
};

std::string dims_str(const ConvDims& d, bool bias, int64_t chunk) {
  return str_cat("B", d.b, " ", d.h, "x", d.w, " Ci", d.ci, " Co", d.co, " K", d.k, " p", d.p,
                 bias ? " bias" : " no-bias", " chunk_rows ", chunk);
}

Shape x_shape(const ConvDims& d) { return {d.b, d.h, d.w, d.ci}; }
Shape w_shape(const ConvDims& d) { return {d.co, d.k, d.k, d.ci}; }
Shape y_shape(const ConvDims& d) { return {d.b, d.ho(), d.wo(), d.co}; }

struct ConvInputs {
  std::vector<double> x, w, bias;  // bias empty when absent
  Tensor xt, wt, bt;               // bt undefined when absent
};

ConvInputs random_inputs(Random& rng, const ConvDims& d, bool with_bias) {
  ConvInputs in;
  in.x = rng.normal_f32(d.x_numel());
  in.w = rng.normal_f32(d.w_numel(), 0.5);
  if (with_bias) in.bias = rng.normal_f32(d.co);
  in.xt = from_double(x_shape(d), in.x);
  in.wt = from_double(w_shape(d), in.w);
  if (with_bias) in.bt = from_double({d.co}, in.bias);
  return in;
}
}  // namespace

TEST_CASE("conv2d forward matches the float64 reference", "[conv2d]") {
  DD_TEST_RANDOM(rng);
  const std::vector<ConvDims> shapes = {
      {1, 1, 1, 1, 1, 1, 0},   {2, 5, 4, 3, 2, 1, 0},  {2, 5, 4, 3, 2, 3, 1}, {2, 5, 4, 3, 2, 3, 0},
      {3, 13, 11, 7, 5, 3, 1}, {3, 13, 11, 7, 5, 1, 0}, {2, 4, 3, 3, 2, 1, 1}, {1, 6, 7, 2, 3, 5, 2},
      {1, 1, 1, 5, 3, 3, 1},   {2, 3, 1, 4, 6, 3, 1}};
  for (const ConvDims& d : shapes)
    for (bool with_bias : {true, false}) {
      ConvInputs in = random_inputs(rng, d, with_bias);
      Tensor y = kernels::conv2d_forward(in.xt, in.wt, in.bt, static_cast<int>(d.p));
      REQUIRE(y.shape() == y_shape(d));
      // fp32 dot products of <= 175 terms and the bias vs float64: a few ulp of the terms' size,
      // sum |x w| + |b|, 1e-5 of it. Judged at that size: a one-term 1x1 conv plus its bias can
      // cancel far below it.
      const std::vector<double> size =
          ref::conv2d(d, to_double(abs_tensor(in.xt)), to_double(abs_tensor(in.wt)),
                      with_bias ? to_double(abs_tensor(in.bt)) : std::vector<double>());
      expect_close("conv2d forward " + dims_str(d, with_bias, 0), y.to_vector(), ref::conv2d(d, in.x, in.w, in.bias),
                   1e-5, *std::max_element(size.begin(), size.end()));
    }
}

TEST_CASE("conv2d forward and backward run in several im2col chunks", "[conv2d]") {
  DD_TEST_RANDOM(rng);
  // 2*9*7 = 126 output pixels: chunks of 1, 5 and 50 rows, the last one partial,
  // some starting mid image row and some spanning two images.
  const ConvDims d{2, 9, 7, 16, 8, 3, 1};
  ConvInputs in = random_inputs(rng, d, true);
  std::vector<double> dy = rng.normal_f32(d.y_numel());
  Tensor dyt = from_double(y_shape(d), dy);
  const std::vector<double> y_ref = ref::conv2d(d, in.x, in.w, in.bias);
  kernels::Conv2dGrads one = kernels::cpu::conv2d_backward(in.xt, in.wt, dyt, 1, true, true, true, 0);
  for (int64_t chunk : {1, 5, 50}) {
    const std::string what = dims_str(d, true, chunk);
    // fp32 dot products of 144 terms vs float64: 1e-5 of the output's scale.
    expect_close("forward " + what, kernels::cpu::conv2d_forward(in.xt, in.wt, in.bt, 1, chunk), y_ref, 1e-5);
    kernels::Conv2dGrads g = kernels::cpu::conv2d_backward(in.xt, in.wt, dyt, 1, true, true, true, chunk);
    // Same math with the GEMMs cut differently (dx is a conv of dy, dw sums over
    // chunks; dbias does not depend on chunks). fp32 sums of <= 126 terms: 1e-5.
    expect_close("dx " + what, g.dx, one.dx, 1e-5);
    expect_close("dw " + what, g.dw, one.dw, 1e-5);
    expect_close("dbias " + what, g.dbias, one.dbias, 1e-6);
  }
}

TEST_CASE("conv2d gradcheck of x, w and bias (K 1/3, padding 0/1, bias or not, 1 or many chunks)", "[conv2d]") {
  DD_TEST_RANDOM(rng);
  for (int64_t k : {1, 3})
    for (int64_t p : {0, 1})
      for (bool with_bias : {true, false})
        for (int64_t chunk : {0, 3}) {
          const ConvDims d{2, 5, 4, 3, 2, k, p};
          ConvInputs in = random_inputs(rng, d, with_bias);
          std::vector<double> dy = rng.normal_f32(d.y_numel());
          kernels::Conv2dGrads g = kernels::cpu::conv2d_backward(in.xt, in.wt, from_double(y_shape(d), dy),
                                                                 static_cast<int>(p), true, true, with_bias, chunk);
          CHECK(g.dbias.defined() == with_bias);
          auto f = [&](const std::vector<std::vector<double>>& v) { return ref::conv2d(d, v[0], v[1], v[2]); };
          // fp32 sums of <= 40 products vs float64 central differences: 1e-5 of the gradient's scale.
          gradcheck("conv2d " + dims_str(d, with_bias, chunk), f, {in.x, in.w, in.bias}, dy,
                    {g.dx.to_vector(), g.dw.to_vector(), with_bias ? g.dbias.to_vector() : std::vector<float>{}},
                    1e-5);
        }
}

TEST_CASE("conv2d (3x3) is bitwise deterministic, for any thread count, and computes only what is asked",
          "[conv2d]") {
  DD_TEST_RANDOM(rng);
  // Large enough that im2col/col2im and Eigen's GEMM run on several threads.
  const ConvDims d{4, 16, 16, 16, 24, 3, 1};
  ConvInputs in = random_inputs(rng, d, true);
  Tensor dyt = from_double(y_shape(d), rng.normal_f32(d.y_numel()));
  kernels::Conv2dGrads a = kernels::conv2d_backward(in.xt, in.wt, dyt, 1, true, true, true);
  kernels::Conv2dGrads b = kernels::conv2d_backward(in.xt, in.wt, dyt, 1, true, true, true);
  CHECK(a.dx.to_vector() == b.dx.to_vector());
  CHECK(a.dw.to_vector() == b.dw.to_vector());
  CHECK(a.dbias.to_vector() == b.dbias.to_vector());
  CHECK(kernels::conv2d_forward(in.xt, in.wt, in.bt, 1).to_vector() ==
        kernels::conv2d_forward(in.xt, in.wt, in.bt, 1).to_vector());
  // The chunking depends only on the shapes: one thread gives the same bits
  // (a resumed run on another machine must match).
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  kernels::Conv2dGrads serial = kernels::conv2d_backward(in.xt, in.wt, dyt, 1, true, true, true);
  Tensor y_serial = kernels::conv2d_forward(in.xt, in.wt, in.bt, 1);
  omp_set_num_threads(threads);
  CHECK(serial.dx.to_vector() == a.dx.to_vector());
  CHECK(serial.dw.to_vector() == a.dw.to_vector());
  CHECK(serial.dbias.to_vector() == a.dbias.to_vector());
  CHECK(y_serial.to_vector() == kernels::conv2d_forward(in.xt, in.wt, in.bt, 1).to_vector());

  kernels::Conv2dGrads only_w = kernels::conv2d_backward(in.xt, in.wt, dyt, 1, false, true, false);
  CHECK_FALSE(only_w.dx.defined());
  CHECK_FALSE(only_w.dbias.defined());
  CHECK(only_w.dw.to_vector() == a.dw.to_vector());
  kernels::Conv2dGrads only_x = kernels::conv2d_backward(in.xt, in.wt, dyt, 1, true, false, false);
  CHECK_FALSE(only_x.dw.defined());
  CHECK(only_x.dx.to_vector() == a.dx.to_vector());
}

TEST_CASE("conv2d errors name the op and the shapes", "[conv2d]") {
  Tensor x = Tensor::zeros({2, 5, 4, 3});
  Tensor dy = Tensor::zeros({2, 5, 4, 2});
  REQUIRE_THROWS_WITH(kernels::conv2d_forward(x, Tensor::zeros({2, 3, 3, 4}), Tensor(), 1),
                      Catch::Contains("conv2d") && Catch::Contains("[2,5,4,3]") && Catch::Contains("[2,3,3,4]"));
  REQUIRE_THROWS_WITH(kernels::conv2d_forward(x, Tensor::zeros({2, 3, 1, 3}), Tensor(), 1),
                      Catch::Contains("conv2d") && Catch::Contains("[2,3,1,3]") && Catch::Contains("square"));
  REQUIRE_THROWS_WITH(kernels::conv2d_forward(x, Tensor::zeros({2, 7, 7, 3}), Tensor(), 0),
                      Catch::Contains("conv2d") && Catch::Contains("[2,5,4,3]") && Catch::Contains("[2,7,7,3]"));
  REQUIRE_THROWS_WITH(kernels::conv2d_forward(x, Tensor::zeros({2, 3, 3, 3}), Tensor::zeros({3}), 1),
                      Catch::Contains("conv2d") && Catch::Contains("bias [3]") && Catch::Contains("[2,3,3,3]"));
  REQUIRE_THROWS_WITH(kernels::conv2d_forward(Tensor::zeros({5, 4, 3}), Tensor::zeros({2, 3, 3, 3}), Tensor(), 1),
                      Catch::Contains("conv2d") && Catch::Contains("[5,4,3]"));
  REQUIRE_THROWS_WITH(kernels::conv2d_forward(Tensor::zeros({2, 5, 4, 0}), Tensor::zeros({2, 3, 3, 0}), Tensor(), 1),
                      Catch::Contains("conv2d") && Catch::Contains("[2,5,4,0]"));
  REQUIRE_THROWS_WITH(kernels::conv2d_backward(x, Tensor::zeros({2, 3, 3, 3}), dy, 0, true, true, true),
                      Catch::Contains("conv2d_backward") && Catch::Contains("[2,5,4,2]") &&
                          Catch::Contains("[2,3,2,2]"));
}

TEST_CASE("autograd conv2d(x, weight_standardize(w), b, 1) matches the kernels and finite differences",
          "[conv2d][weight_standardize]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const ConvDims d{2, 5, 4, 3, 4, 3, 1};
  ConvInputs in = random_inputs(rng, d, true);
  std::vector<double> r = rng.normal_f32(d.y_numel());
  ag::Var x(in.xt, true), w(in.wt, true), b(in.bt, true), rv(from_double(y_shape(d), r));
  ag::Var y = ag::conv2d(x, ag::weight_standardize(w), b, 1);
  ag::Tape::current().backward(ag::sum(ag::mul(y, rv)));

  // The tape must hand each input exactly what the kernels give for dL/dy = r.
  Tensor w_hat = kernels::weight_standardize_forward(in.wt);
  CHECK(y.value().to_vector() == kernels::conv2d_forward(in.xt, w_hat, in.bt, 1).to_vector());
  kernels::Conv2dGrads g = kernels::conv2d_backward(in.xt, w_hat, rv.value(), 1, true, true, true);
  CHECK(x.grad().to_vector() == g.dx.to_vector());
  CHECK(b.grad().to_vector() == g.dbias.to_vector());
  CHECK(w.grad().to_vector() == kernels::weight_standardize_backward(in.wt, g.dw).to_vector());

  auto f = [&](const std::vector<std::vector<double>>& v) {
    return ref::conv2d(d, v[0], ref::weight_standardize(d.co, v[1]), v[2]);
  };
  // fp32 conv of 27-term dot products after a double-internal standardisation
  // vs float64 central differences: 1e-5 of each gradient's scale.
  gradcheck("conv2d(x, ws(w), b)", f, {in.x, in.w, in.bias}, r,
            {x.grad().to_vector(), w.grad().to_vector(), b.grad().to_vector()}, 1e-5);
}

TEST_CASE("autograd conv2d without bias gives gradients only to what requires them", "[conv2d]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const ConvDims d{3, 4, 5, 6, 2, 1, 0};
  ConvInputs in = random_inputs(rng, d, false);
  std::vector<double> r = rng.normal_f32(d.y_numel());
  ag::Var x(in.xt), w(in.wt, true), rv(from_double(y_shape(d), r));
  ag::Var y = ag::conv2d(x, w, ag::Var(), 0);
  ag::Tape::current().backward(ag::sum(ag::mul(y, rv)));
  CHECK_FALSE(x.has_grad());
  kernels::Conv2dGrads g = kernels::conv2d_backward(in.xt, in.wt, rv.value(), 0, false, true, false);
  CHECK(w.grad().to_vector() == g.dw.to_vector());
}
